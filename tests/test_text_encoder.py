"""The text encoder on its own schedule (sd-scripts #861, #1320; kohya_ss #2679): its own floor
(--lr_scheduler_te_min_value) and a stop at LR exactly 0 (--lr_scheduler_te_stop_steps, a ratio of
the run, or --lr_scheduler_te_stop_epochs), the U-Net's groups untouched: pinned multipliers, a
real optimizer's LRs and weights, resume after the stop, N processes, the preview's per-group
curves, a training run against the preview, and the errors."""

import dataclasses
import json
import math
import subprocess
import sys

import pytest
import torch

from conftest import SD_SCRIPTS_DIR, host_env, lr_trace, run_driver
from sdsched_plugin.schedule import arguments, options, text_encoder
from sdsched_plugin.schedulers import CosineFloor, CosineWithRestartsFloor, RexFloor


def cos(step, total):
    return 0.5 * (1 + math.cos(math.pi * step / total))


def network_args(*flags):
    """A LoRA run as train_network.py parses it: text encoder group first, then the U-Net's."""
    import argparse

    values = dict(lr_scheduler="cosine_floor", lr_scheduler_type="", lr_scheduler_args=[], lr_warmup_steps=0, max_train_steps=20,
                  max_train_epochs=None, optimizer_type="AdamW", learning_rate=1e-4, network_module="networks.lora", text_encoder_lr=None)  # fmt: skip
    for flag in flags:
        key, _, value = flag.removeprefix("--").partition("=")
        values[key] = value
    return argparse.Namespace(**values)


def three_group_optimizer():
    """train_network.py's groups with LoRA+: textencoder, textencoder plus, unet."""
    layers = [torch.nn.Linear(3, 3) for _ in range(3)]
    return torch.optim.AdamW(
        [{"params": layers[0].parameters(), "lr": 5e-5}, {"params": layers[1].parameters(), "lr": 8e-4}, {"params": layers[2].parameters(), "lr": 1e-4}],
        weight_decay=0.1,
    ), layers


def build(args, optimizer, te_groups, num_processes=1, updates_per_epoch=None):
    request = arguments.read_request(args)
    request = dataclasses.replace(request, te_groups=te_groups, updates_per_epoch=updates_per_epoch)
    return request.build(optimizer, num_processes)


def test_the_text_encoder_takes_its_floor_and_stops_the_unet_keeps_its_curve():
    args = network_args("--lr_scheduler_min_value=0.5", "--lr_scheduler_te_min_value=0.1", "--lr_scheduler_te_stop_steps=12", "--lr_warmup_steps=2")
    optimizer, _ = three_group_optimizer()
    trace = lr_trace(build(args, optimizer, (0, 1)), optimizer, 20)
    for step, (te, te_plus, unet) in enumerate(trace):
        if step < 2:
            expected_unet = expected_te = step / 2
        else:
            expected_unet = 0.5 + 0.5 * cos(step - 2, 18)
            expected_te = 0.1 + 0.9 * cos(step - 2, 18) if step < 12 else 0.0
        assert unet == pytest.approx(1e-4 * expected_unet, rel=1e-12, abs=0)
        assert te == pytest.approx(5e-5 * expected_te, rel=1e-12, abs=0) and te_plus == pytest.approx(8e-4 * expected_te, rel=1e-12, abs=0)
    assert [step for step, lrs in enumerate(trace) if lrs[0] == 0.0 and lrs[1] == 0.0] == [0, *range(12, 20)]  # exactly 0: 12 updates trained


def test_after_the_stop_the_text_encoders_weights_do_not_move():
    """LR exactly 0: AdamW's update and its weight decay (lr x wd) both vanish; the U-Net goes on."""
    args = network_args("--lr_scheduler_min_value=0.5", "--lr_scheduler_te_stop_steps=3")
    optimizer, layers = three_group_optimizer()
    scheduler = build(args, optimizer, (0, 1))
    for step in range(8):
        if step == 3:
            frozen = [p.detach().clone() for layer in layers[:2] for p in layer.parameters()]
            unet_before = [p.detach().clone() for p in layers[2].parameters()]
        loss = sum((layer(torch.ones(1, 3)) ** 2).sum() for layer in layers)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    assert all(torch.equal(a, b) for a, b in zip(frozen, [p for layer in layers[:2] for p in layer.parameters()]))
    assert not all(torch.equal(a, b) for a, b in zip(unet_before, layers[2].parameters()))


@pytest.mark.parametrize("cls, extra", [(CosineWithRestartsFloor, ["--lr_scheduler_num_cycles=2"]), (RexFloor, ["--lr_scheduler_num_cycles=2"])])
def test_epochs_ratio_and_processes_set_the_stop(cls, extra):
    """te_stop_epochs=2 of 5-update epochs: 10 updates trained; on 2 processes the scheduler steps twice
    an update, so the stop is scheduler step 20; a ratio of the run is of the scaled total, truncated."""
    name = cls.name
    args = network_args(f"--lr_scheduler={name}", "--lr_scheduler_min_value=0.3", "--lr_scheduler_te_stop_epochs=2", *extra)
    request = dataclasses.replace(arguments.read_request(args), te_groups=(0,), updates_per_epoch=5)
    assert request.kwargs(1)["te_stop_at"] == 10 and request.kwargs(2)["te_stop_at"] == 20
    ratio = dataclasses.replace(arguments.read_request(network_args("--lr_scheduler_min_value=0.3", "--lr_scheduler_te_stop_steps=0.55")), te_groups=(0,))
    assert ratio.kwargs(1)["te_stop_at"] == 11 and ratio.kwargs(3)["te_stop_at"] == 33  # int(0.55 x 20), int(0.55 x 60)
    steps = dataclasses.replace(arguments.read_request(network_args("--lr_scheduler_min_value=0.3", "--lr_scheduler_te_stop_steps=7")), te_groups=(0,))
    assert steps.kwargs(2)["te_stop_at"] == 14  # updates, as --stop_text_encoder_training counts them


def test_a_resume_after_the_stop_goes_on_bit_for_bit():
    args = network_args("--lr_scheduler=cosine_with_restarts_floor", "--lr_scheduler_min_value=0.4", "--lr_scheduler_num_cycles=2",
                        "--lr_scheduler_te_min_value=0.2", "--lr_scheduler_te_stop_steps=9", "--max_train_steps=24", "--lr_warmup_steps=2")  # fmt: skip
    first, _ = three_group_optimizer()
    original = build(args, first, (0, 1))
    lr_trace(original, first, 14)  # past the restart (step 13) and the stop (9)
    again, _ = three_group_optimizer()
    resumed = build(args, again, (0, 1))
    again.load_state_dict(first.state_dict())
    resumed.load_state_dict(original.state_dict())
    assert resumed.sdsched == original.sdsched and resumed.sdsched["te_stop_at"] == 9
    assert lr_trace(resumed, again, 10) == lr_trace(original, first, 10)


def test_a_stock_name_with_only_the_text_encoders_flags_keeps_its_own_curve():
    """--lr_scheduler=cosine with a text encoder stop: the U-Net's curve is stock cosine (its _floor twin
    at floor 0 is the same floats), the text encoder's the same until the stop."""
    request = arguments.read_request(network_args("--lr_scheduler=cosine", "--lr_scheduler_te_stop_steps=5"))
    assert request.cls is CosineFloor and request.values["min_value"] == 0.0 and request.label == "cosine (text encoder on its own)"
    optimizer, _ = three_group_optimizer()
    trace = lr_trace(build(network_args("--lr_scheduler=cosine", "--lr_scheduler_te_stop_steps=5"), optimizer, (0,)), optimizer, 20)
    from diffusers.optimization import get_cosine_schedule_with_warmup

    scratch = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    stock = get_cosine_schedule_with_warmup(scratch, 0, 20).lr_lambdas[0]
    assert [lrs[2] for lrs in trace] == [1e-4 * stock(step) for step in range(20)]
    assert [lrs[0] for lrs in trace] == [5e-5 * stock(step) if step < 5 else 0.0 for step in range(20)]


@pytest.mark.parametrize("name, warmup", [("constant", 0), ("constant_with_warmup", 3)])
def test_constant_sd_scripts_default_keeps_its_curve_and_stops_the_text_encoder(name, warmup):
    """sd-scripts' default --lr_scheduler=constant (and constant_with_warmup): the U-Net's LRs are
    diffusers' constant curve, float for float; the text encoder's the same until its stop."""
    from diffusers.optimization import get_constant_schedule_with_warmup

    args = network_args(f"--lr_scheduler={name}", "--lr_scheduler_te_stop_steps=7", f"--lr_warmup_steps={warmup}")
    request = arguments.read_request(args)
    assert request.label == f"{name} (text encoder on its own)" and request.values["min_value"] == 1.0
    optimizer, _ = three_group_optimizer()
    trace = lr_trace(build(args, optimizer, (0, 1)), optimizer, 20)
    scratch = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    stock = get_constant_schedule_with_warmup(scratch, warmup).lr_lambdas[0]
    assert [lrs[2] for lrs in trace] == [1e-4 * stock(step) for step in range(20)]
    assert [lrs[0] for lrs in trace] == [5e-5 * stock(step) if step < 7 else 0.0 for step in range(20)]


def test_group_names_say_which_groups_train_a_text_encoder():
    names = ["textencoder", "textencoder plus", "unet", "unet plus"]
    assert text_encoder.group_indices(names) == (0, 1)
    assert text_encoder.group_indices(["textencoder 1 ", "textencoder 2 ", "unet"]) == (0, 1)  # lora_flux's descriptions
    assert text_encoder.group_indices(["mmdit", "clip_l", "clip_g", "t5xxl"]) == (1, 2, 3)
    assert text_encoder.group_indices(["unet block0", "unet block1"]) == ()
    with pytest.raises(options.OptionError, match="--learning_rate_te"):
        text_encoder.group_indices(["unet+textencoder"])


def preview(argv, cwd):
    return subprocess.run([sys.executable, "-m", "sdsched_plugin.cli", "preview", *argv], capture_output=True, text=True,
                          env=host_env(PYTHONPATH=""), cwd=cwd, timeout=300)  # fmt: skip


LORA = ["--network_module=networks.lora", "--learning_rate=1e-4", "--text_encoder_lr=5e-5"]


def test_the_preview_draws_each_groups_curve_and_says_the_stop(tmp_path):
    argv = [*LORA, "--lr_scheduler=cosine_floor", "--lr_scheduler_min_value=0.5", "--lr_scheduler_te_min_value=0.1",
            "--lr_scheduler_te_stop_epochs=2", "--max_train_epochs=4", "--steps_per_epoch=5", "--network_args", "loraplus_lr_ratio=4"]  # fmt: skip
    shown = preview([*argv, "--json", "--trace"], tmp_path)
    assert shown.returncode == 0, shown.stderr
    result = json.loads(shown.stdout)
    schedule = result["schedules"][0]
    assert result["groups"] == ["textencoder", "textencoder plus", "unet", "unet plus"]
    assert schedule["text_encoder"] == {"groups": [0, 1], "names": ["textencoder", "textencoder plus"], "floor": 0.1, "stop_update": 11, "stop_epoch": 3}
    unet = [0.5 + 0.5 * cos(k, 20) for k in range(20)]
    te = [0.1 + 0.9 * cos(k, 20) if k < 10 else 0.0 for k in range(20)]
    assert schedule["multipliers"] == pytest.approx(unet, rel=1e-12)
    groups = schedule["group_multipliers"]
    assert groups[0] == groups[1] and groups[2] == groups[3] == schedule["multipliers"]
    assert groups[0] == pytest.approx(te, rel=1e-12, abs=0) and groups[0][10:] == [0.0] * 10
    text = preview(argv, tmp_path).stdout
    assert "text encoder groups (textencoder, textencoder plus): floor 0.1; LR 0 from update 11 (epoch 3) on / " in text
    assert "epoch 3 mean LR" in text and "0.000e+00 / 0.000e+00 / 6.746e-05" in text  # the text encoder's epochs at 0, the U-Net's not


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lr_scheduler=cosine_floor", "--lr_scheduler_min_value=0.5", "--lr_scheduler_te_stop_steps=5", "--lr_scheduler_te_stop_epochs=1", "--steps_per_epoch=5"],
         "--lr_scheduler_te_stop_epochs: got 1; allowed: one stop: --lr_scheduler_te_stop_steps=5 is given too; leave one out"),
        (["--lr_scheduler=inverse_sqrt", "--lr_scheduler_te_stop_steps=5"],
         "--lr_scheduler_te_stop_steps: got '--lr_scheduler=inverse_sqrt'; allowed: a schedule the plugin builds: linear, cosine"),
        (["--lr_scheduler=constant", "--lr_scheduler_te_stop_steps=5", "--lr_scheduler_te_min_value=0.2"],
         "--lr_scheduler_te_min_value: got '--lr_scheduler=constant'; allowed: a decaying schedule"),
        (["--lr_scheduler=constant", "--lr_scheduler_te_stop_steps=5", "--lr_warmup_steps=2"],
         "--lr_warmup_steps: got 2; allowed: 0 with --lr_scheduler=constant"),
        (["--lr_scheduler=cosine_floor", "--lr_scheduler_min_value=0.5", "--lr_scheduler_te_stop_steps=0"],
         "--lr_scheduler_te_stop_steps: got '0'; allowed: a step >= 1"),
        (["--lr_scheduler=cosine_floor", "--lr_scheduler_min_value=0.5", "--lr_scheduler_te_min_value=1.5"],
         "argument --lr_scheduler_te_min_value: got '1.5'; allowed: a number from 0 to 1"),
        (["--lr_scheduler=cosine_floor", "--lr_scheduler_min_value=0.5", "--lr_scheduler_te_stop_epochs=1"],
         "--lr_scheduler_te_stop_epochs: got 1; allowed: a run whose epoch length is known"),
    ],
    ids=["two-stops", "inverse_sqrt", "constant-floor", "constant-warmup", "zero", "floor-above-1", "epochs-unknown"],
)
def test_mistakes_stop_the_preview_with_one_line_in_both_languages(argv, message, tmp_path):
    out = preview([*LORA, "--max_train_steps=20", *argv], tmp_path)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert message in last, last


def test_one_group_for_u_net_and_text_encoder_is_refused_with_the_cure(tmp_path):
    """train_db.py without --learning_rate_te trains both in one group: the stop cannot be given to one of them."""
    args = network_args("--lr_scheduler_min_value=0.5", "--lr_scheduler_te_stop_steps=5")
    del args.network_module, args.text_encoder_lr
    args.stop_text_encoder_training = None
    with pytest.raises(options.OptionError, match=r"^--lr_scheduler_te_stop_steps: got 'unet\+textencoder'; .*give --learning_rate_te"):
        arguments.check_args(args)
    args.learning_rate_te = 5e-5
    assert arguments.check_args(args) is not None


def test_no_text_encoder_group_is_a_warning_not_an_error(tmp_path):
    out = preview(["--learning_rate=1e-4", "--network_module=networks.lora", "--network_train_unet_only", "--max_train_steps=20",
                   "--lr_scheduler=cosine_floor", "--lr_scheduler_min_value=0.5", "--lr_scheduler_te_stop_steps=5", "--json"], tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["groups"] == ["unet"] and "group_multipliers" not in result["schedules"][0]
    assert any("no param group trains a text encoder" in warning for warning in result["warnings"])


def test_a_training_run_stops_the_text_encoder_where_the_preview_says(tmp_path):
    """The tiny script names its groups as train_network.py does (unet, textencoder); 7 batches an epoch,
    the stop after 2 epochs: every update's LR of both groups is the preview's."""
    if SD_SCRIPTS_DIR is not None:
        pytest.skip("the stand-in's dataset group; a real checkout is checked by a real training")
    flags = ["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.4", "--lr_scheduler_te_min_value", "0.1",
             "--lr_scheduler_te_stop_epochs", "2", "--lr_warmup_steps", "3", "--learning_rate", "1e-4", "--max_train_epochs", "5"]  # fmt: skip
    process, traces = run_driver([*flags, "--samples", "7"])
    assert process.returncode == 0, process.stderr[-3000:]
    shown = preview([*flags, "--steps_per_epoch=7", "--network_module=networks.lora", "--text_encoder_lr=5e-5", "--json", "--trace"], tmp_path)
    groups = json.loads(shown.stdout)["schedules"][0]["group_multipliers"]  # textencoder, unet
    trace = traces[0]["trace"]
    assert len(trace) == 35
    assert [step["lrs"][0] for step in trace] == pytest.approx([1e-4 * m for m in groups[1]], rel=1e-12)
    assert [step["lrs"][1] for step in trace] == pytest.approx([5e-5 * m for m in groups[0]], rel=1e-12, abs=0)
    assert [step["lrs"][1] for step in trace][14:] == [0.0] * 21


def test_two_processes_stop_the_text_encoder_at_the_same_update_as_the_preview_says(tmp_path):
    """accelerate launch with 2 processes: 8 batches, 4 updates an epoch per process, the stop after 2
    epochs. Both ranks log the preview's LRs of both groups (the scheduler steps twice an update)."""
    if SD_SCRIPTS_DIR is not None:
        pytest.skip("the stand-in's dataset group; a real checkout is checked by a real training")
    from test_resume_and_processes import launch_two_processes

    flags = ["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.4", "--lr_scheduler_te_min_value", "0.2",
             "--lr_scheduler_te_stop_epochs", "2", "--lr_warmup_steps", "0.125", "--learning_rate", "1e-4", "--max_train_epochs", "4"]  # fmt: skip
    process, traces = launch_two_processes([*flags, "--samples", "8"])
    assert process.returncode == 0 and sorted(traces) == [0, 1], process.stderr[-3000:]
    shown = preview([*flags, "--steps_per_epoch=4", "--num_processes=2", "--network_module=networks.lora", "--text_encoder_lr=5e-5",
                     "--json", "--trace"], tmp_path)  # fmt: skip
    result = json.loads(shown.stdout)
    te, unet = result["schedules"][0]["group_multipliers"]
    assert result["schedules"][0]["text_encoder"]["stop_update"] == 9
    for rank in (0, 1):
        trace = traces[rank]["trace"]
        assert [step["lrs"][0] for step in trace] == pytest.approx([1e-4 * m for m in unet], rel=1e-12)
        assert [step["lrs"][1] for step in trace] == pytest.approx([5e-5 * m for m in te], rel=1e-12, abs=0)
        assert [step["lrs"][1] for step in trace][8:] == [0.0] * 8 and min(step["lrs"][0] for step in trace[1:]) > 0


def test_toml_and_the_hook_form_give_the_same_request_as_the_flags(sd_parse, tmp_path):
    """Through sd-scripts' own parser: the flags, a --config_file TOML (values as TOML types) and the
    sdsched_plugin:NAME form with --lr_scheduler_args read into the same text encoder settings."""
    flags = sd_parse(["--lr_scheduler=cosine_floor", "--lr_scheduler_min_value=0.5", "--lr_scheduler_te_min_value=0.2",
                      "--lr_scheduler_te_stop_steps=0.25", "--max_train_steps=40"])  # fmt: skip
    config = tmp_path / "c.toml"
    config.write_text('lr_scheduler = "cosine_floor"\nlr_scheduler_min_value = 0.5\nlr_scheduler_te_min_value = "0.2"\n'
                      "lr_scheduler_te_stop_steps = 0.25\nmax_train_steps = 40\n")  # fmt: skip
    toml = sd_parse(["--config_file", str(config)])
    hook = sd_parse(["--lr_scheduler_type=sdsched_plugin:cosine_floor", "--lr_scheduler_args", "min_value=0.5", "te_min_value=0.2",
                     "te_stop_steps=0.25", "--max_train_steps=40"])  # fmt: skip
    kwargs = [dataclasses.replace(arguments.read_request(args), te_groups=(0,)).kwargs(1) for args in (flags, toml, hook)]
    assert kwargs[0] == kwargs[1] == kwargs[2]
    assert {key: kwargs[0][key] for key in ("te_min_value", "te_stop_steps", "te_stop_at", "te_groups")} == {
        "te_min_value": 0.2, "te_stop_steps": 0.25, "te_stop_at": 10, "te_groups": (0,)}


def test_compared_stock_names_show_the_stock_curve_for_every_group(tmp_path):
    """--compare cosine,constant beside a run with a text encoder stop: sd-scripts' own curves, one for all
    groups; a compared schedule of ours may take its own stop."""
    out = preview([*LORA, "--max_train_steps=20", "--lr_scheduler=cosine_floor", "--lr_scheduler_min_value=0.5",
                   "--lr_scheduler_te_stop_steps=10", "--compare=cosine,constant,rex:te_stop_steps=5", "--json", "--trace"], tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    main, cosine, constant, rex = json.loads(out.stdout)["schedules"]
    assert main["text_encoder"]["stop_update"] == 11 and rex["text_encoder"]["stop_update"] == 6
    assert "text_encoder" not in cosine and "group_multipliers" not in cosine and cosine["multipliers"] == pytest.approx([cos(k, 20) for k in range(20)], rel=1e-12)
    assert "group_multipliers" not in constant and constant["multipliers"] == [1.0] * 20
