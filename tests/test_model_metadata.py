"""The schedule travels with the model: the key every saved model carries when the plugin built
its schedule, ``sdsched preview --from`` reading it back (or sd-scripts' ss_ keys, with what they
lack named), ``--to-toml``, and the one-line errors for files that are not such models.

The tiny training script saves its model as train_network.py does (its ss_ keys, then
``train_util.get_sai_model_spec`` merged in), in a real subprocess with the real startup hook.
"""

import argparse
import dataclasses
import json
import struct
import subprocess
import sys

import pytest

from conftest import SD_SCRIPTS_DIR, host_env, run_driver
from sdsched_plugin.hosts import patching
from sdsched_plugin.schedule import saved

RUN = ["--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_min_value", "0.4", "--lr_scheduler_num_cycles", "2",
       "--lr_warmup_steps", "0.1", "--max_train_epochs", "3", "--samples", "8", "--learning_rate", "1e-4"]  # fmt: skip


def metadata_of(path) -> dict:
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(size))["__metadata__"]


def sdsched(argv, cwd, **env):
    environment = {key: value for key, value in host_env(**env).items() if value is not None}
    return subprocess.run([sys.executable, "-m", "sdsched_plugin.cli", *argv], capture_output=True, text=True, env=environment, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model file, the trace of its training): cosine_with_restarts_floor, 3 epochs of 8 updates."""
    if SD_SCRIPTS_DIR is not None:
        pytest.skip("the tiny script saves through the stand-in's get_sai_model_spec; a real checkout is checked by a real training")
    folder = tmp_path_factory.mktemp("model")
    process, traces = run_driver([*RUN, "--save_model", str(folder / "lora.safetensors")])
    assert process.returncode == 0, process.stderr[-3000:]
    return folder / "lora.safetensors", traces[0]["trace"]


def test_the_saved_model_carries_the_schedule_beside_sd_scripts_keys(trained):
    path, _ = trained
    metadata = metadata_of(path)
    record = json.loads(metadata[saved.KEY])
    assert record["schedule"] == {"name": "cosine_with_restarts_floor", "min_value": 0.4, "num_cycles": 2, "num_training_steps": 24,
                                  "num_warmup_steps": 2, "cycle_decay": 1.0, "cycle_mul": 1.0, "restart_warmup_steps": 0, "floor_mode": "rescale"}  # fmt: skip
    assert record["flags"]["max_train_steps"] == 24 and record["flags"]["lr_scheduler_min_value"] == 0.4 and record["num_processes"] == 1
    assert record["made_by"].startswith("sdsched-plugin ")
    # sd-scripts' own keys are as sd-scripts wrote them
    assert metadata["ss_lr_scheduler"] == "cosine_with_restarts_floor" and metadata["ss_max_train_steps"] == "24"
    assert metadata["modelspec.title"] == "untitled"


def test_from_previews_exactly_what_trained(trained, tmp_path):
    """The preview read back from the model: every update's LR equals the LR the training used."""
    path, trace = trained
    out = sdsched(["preview", "--from", str(path), "--json", "--trace"], tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["steps"] == 24 and result["steps_per_epoch"] == 8 and result["epochs"] == 3
    assert result["read_by"].startswith("lora.safetensors (sdsched_schedule, sdsched-plugin ")
    multipliers = result["schedules"][0]["multipliers"]
    # the driver's groups: unet at the LR, the text encoder at half of it
    for step in trace:
        assert step["lrs"] == pytest.approx([1e-4 * multipliers[step["step"]], 0.5e-4 * multipliers[step["step"]]], rel=1e-12, abs=1e-18)
    assert out.stderr == ""  # nothing assumed


def test_flags_given_with_from_override_what_was_read(trained, tmp_path):
    path, _ = trained
    out = sdsched(["preview", "--from", str(path), "--json", "--lr_scheduler_min_value=0.6"], tmp_path)
    assert out.returncode == 0, out.stderr
    settings = json.loads(out.stdout)["schedules"][0]["settings"]
    assert settings["min_value"] == 0.6 and settings["num_cycles"] == 2 and settings["num_training_steps"] == 24


def test_to_toml_writes_flags_that_preview_the_same(trained, tmp_path):
    path, _ = trained
    toml_file = tmp_path / "schedule.toml"
    out = sdsched(["preview", "--from", str(path), "--json", "--trace", "--to-toml", str(toml_file)], tmp_path)
    assert out.returncode == 0 and f"wrote the schedule's flags to {toml_file}" in out.stderr
    text = toml_file.read_text()
    assert 'lr_scheduler = "cosine_with_restarts_floor"' in text and "lr_scheduler_min_value = 0.4" in text and "max_train_steps = 24" in text
    again = sdsched(["preview", "--config_file", str(toml_file), "--json", "--trace", "--steps_per_epoch=8"], tmp_path, SD_SCRIPTS_DIR=None, PYTHONPATH="")
    assert again.returncode == 0, again.stderr
    first, second = json.loads(out.stdout), json.loads(again.stdout)
    assert first["schedules"] == second["schedules"] and first["lrs"] == second["lrs"]


def test_with_the_plugin_off_a_model_has_no_key_and_previews_from_sd_scripts_keys(tmp_path):
    if SD_SCRIPTS_DIR is not None:
        pytest.skip("the stand-in's save path")
    stock = [token if token != "cosine_with_restarts_floor" else "cosine_with_restarts" for token in RUN if token not in ("--lr_scheduler_min_value", "0.4")]
    process, _ = run_driver([*stock, "--save_model", str(tmp_path / "stock.safetensors")], env=host_env(SDSCHED_PLUGIN_DISABLE="1"))
    assert process.returncode == 0, process.stderr[-3000:]
    metadata = metadata_of(tmp_path / "stock.safetensors")
    assert saved.KEY not in metadata and metadata["ss_lr_scheduler"] == "cosine_with_restarts"
    out = sdsched(["preview", "--from", str(tmp_path / "stock.safetensors"), "--json", "--lr_scheduler_min_value=0.5"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [
        "sdsched preview: not recorded by sd-scripts, assumed: --lr_scheduler_num_cycles=1, --num_processes=1, no --lr_scheduler_args"
        " / sd-scripts の記録にないため次を仮定します: --lr_scheduler_num_cycles=1, --num_processes=1, no --lr_scheduler_args"
    ]
    result = json.loads(out.stdout)
    assert result["schedules"][0]["label"] == "cosine_with_restarts (floored)"
    assert result["schedules"][0]["settings"]["num_cycles"] == 1 and result["schedules"][0]["settings"]["num_warmup_steps"] == 2


def write_safetensors(path, metadata: dict | None):
    header = {"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"\0\0\0\0")


def test_files_that_are_not_such_models_are_one_line(tmp_path):
    (tmp_path / "notes.safetensors").write_text("not a model")
    write_safetensors(tmp_path / "bare.safetensors", None)
    write_safetensors(tmp_path / "other.safetensors", {"format": "pt"})
    cases = {
        "notes.safetensors": "allowed: a .safetensors model file; this is not one",
        "bare.safetensors": "allowed: a model saved with its training metadata; this one has none",
        "other.safetensors": "allowed: a model trained by sd-scripts (ss_ keys) or with sdsched-plugin (sdsched_schedule); this one has neither",
        "missing.safetensors": "allowed: a model file that can be read (No such file or directory)",
    }
    for name, message in cases.items():
        out = sdsched(["preview", "--from", name], tmp_path)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.splitlines()[-1].startswith(f"sdsched preview: error: --from: got '{name}'; {message} / 指定値"), out.stderr


def test_reading_a_model_imports_no_torch(trained, tmp_path):
    path, _ = trained
    code = (
        "import sys; from sdsched_plugin import cli; import contextlib, io\n"
        f"with contextlib.redirect_stdout(io.StringIO()): cli.main(['preview', '--from', {str(path)!r}])\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=host_env(), timeout=300)
    assert out.stdout.strip() == "False", out.stderr


# --- the hook itself, in process ------------------------------------------------------------


def test_the_key_joins_only_a_schedule_of_ours_and_never_with_no_metadata(monkeypatch):
    def builder(state_dict, args, *rest):
        return {"modelspec.title": "x"}

    monkeypatch.setattr(patching, "_built", [])
    assert patching.add_schedule_to_metadata(builder, None, argparse.Namespace()) == {"modelspec.title": "x"}
    monkeypatch.setattr(patching, "_built", ['{"format": 1}'])
    assert patching.add_schedule_to_metadata(builder, None, argparse.Namespace(no_metadata=False)) == {"modelspec.title": "x", saved.KEY: '{"format": 1}'}
    assert patching.add_schedule_to_metadata(builder, None, argparse.Namespace(no_metadata=True)) == {"modelspec.title": "x"}


def test_the_metadata_object_of_newer_sd_scripts_gets_the_key_as_its_own(monkeypatch):
    """sd-scripts v0.10's ModelSpecMetadata prefixes its fields with "modelspec.": the key is added by
    its to_metadata_dict, under our own name, and the object stays what it was otherwise."""

    @dataclasses.dataclass
    class ModelSpecMetadata:
        title: str
        additional_fields: dict = dataclasses.field(default_factory=dict)

        def to_metadata_dict(self):
            return {f"modelspec.{name}": value for name, value in self.__dict__.items() if name != "additional_fields"}

    monkeypatch.setattr(patching, "_built", ['{"format": 1}'])
    spec = patching.add_schedule_to_metadata_object(lambda state_dict, args: ModelSpecMetadata("x"), None, argparse.Namespace())
    assert spec.to_metadata_dict() == {"modelspec.title": "x", saved.KEY: '{"format": 1}'}
    assert isinstance(spec, ModelSpecMetadata) and dataclasses.asdict(spec) == {"title": "x", "additional_fields": {}}


# --- the resumed run --------------------------------------------------------------------------

SAVED_AT = ["--save_state", "--save_state_at", "10"]


def preview_json(argv, cwd):
    out = sdsched(["preview", "--json", "--trace", *argv], cwd, SD_SCRIPTS_DIR=None, PYTHONPATH="")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_preview_of_a_resumed_run_is_where_the_resumed_training_continues(tmp_path):
    """A state saved at update 10 of 24: the preview says update 10 (epoch 2), 14 left, the same
    settings; resumed with a higher floor and a longer run, it names the changes, and the LR it
    says the run continues with is the LR the resumed training uses, update for update."""
    if SD_SCRIPTS_DIR is not None:
        pytest.skip("the tiny script's own resume")
    first, _ = run_driver([*RUN, *SAVED_AT, "--output_dir", str(tmp_path)])
    assert first.returncode == 0, first.stderr[-3000:]
    state = tmp_path / "state-10"
    flags = [token for token in RUN if token not in ("--samples", "8")] + ["--steps_per_epoch=8"]
    same = preview_json([*flags, "--resume", str(state)], tmp_path)["resume"]
    assert (same["update"], same["epoch"], same["steps_left"], same["saved_by"], same["changes"]) == (10, 2, 14, "sdsched-plugin", [])
    # train_network.py without --skip_until_initial_step: epochs 2 and 3 again from step 0 (16 updates), the
    # scheduler on from 10: the last 2 past the end, at the floor; sd-scripts' own cosine_with_restarts: 0
    assert (same["updates_trained"], same["past_the_end"], same["past_the_end_multiplier"], same["without_the_plugin"]) == (16, 2, 0.4, 0.0)
    assert same["multipliers"][-2:] == [0.4, 0.4]

    changed = [*RUN[:3], "0.6", *RUN[4:]]
    changed[changed.index("--max_train_epochs") + 1] = "4"
    preview = preview_json([*[t for t in changed if t not in ("--samples", "8")], "--steps_per_epoch=8", "--resume", str(state),
                            "--skip_until_initial_step"], tmp_path)  # the tiny script resumes so: at update 10, to the end
    resume = preview["resume"]
    assert resume["changes"] == ["min_value: 0.4 (saved) -> 0.6 (now)", "num_training_steps: 24 (saved) -> 32 (now)", "num_warmup_steps: 2 (saved) -> 3 (now)"]
    assert resume["saved_multiplier"] == pytest.approx(same["multiplier"], abs=1e-15) and resume["steps_left"] == 22
    process, traces = run_driver([*changed, "--resume", str(state), "--start_at", "10"])
    assert process.returncode == 0, process.stderr[-3000:]
    trace = traces[0]["trace"]
    assert resume["updates_trained"] == len(trace) == 22 and trace[0]["lrs"][0] == pytest.approx(1e-4 * resume["multiplier"], rel=1e-12)
    assert [step["lrs"][0] for step in trace] == pytest.approx([1e-4 * m for m in resume["multipliers"]], rel=1e-12)


def test_a_resume_outside_the_run_is_one_line(tmp_path):
    for value, message in (("99", "allowed: a state inside this run of 24 updates (it is at update 99)"),
                           (str(tmp_path / "nope"), "allowed: a state folder saved with --save_state, or the update to resume at")):  # fmt: skip
        out = sdsched(["preview", *RUN[:6], "--max_train_steps=24", "--resume", value], tmp_path, SD_SCRIPTS_DIR=None, PYTHONPATH="")
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert f"error: --resume: got '{value}'; {message}" in out.stderr.splitlines()[-1]


def test_a_musubi_tuner_model_carries_the_schedule_too(tmp_path):
    """musubi-tuner's trainers merge utils.sai_model_spec.build_metadata into every saved model:
    the key joins there, and --from previews it."""
    from conftest import MUSUBI_IS_NEW, MUSUBI_TUNER_DIR

    if MUSUBI_TUNER_DIR is not None or not MUSUBI_IS_NEW:
        pytest.skip("the stand-in's save path")
    argv = ["--lr_scheduler", "rex_floor", "--lr_scheduler_min_value", "0.3", "--max_train_steps", "12", "--learning_rate", "1e-4"]
    process, traces = run_driver([*argv, "--save_model", str(tmp_path / "m.safetensors")], env=host_env(TINY_HOST="musubi"))
    assert process.returncode == 0, process.stderr[-3000:]
    metadata = metadata_of(tmp_path / "m.safetensors")
    assert json.loads(metadata[saved.KEY])["schedule"]["name"] == "rex_floor" and metadata["modelspec.architecture"] == "hv/lora"
    out = sdsched(["preview", "--from", str(tmp_path / "m.safetensors"), "--json", "--trace"], tmp_path)
    multipliers = json.loads(out.stdout)["schedules"][0]["multipliers"]
    assert [step["lrs"][0] for step in traces[0]["trace"]] == pytest.approx([1e-4 * m for m in multipliers], rel=1e-12)
