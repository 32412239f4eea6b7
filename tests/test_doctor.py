"""``sdsched doctor`` and ``sdsched --version``: real subprocesses of a venv with the built wheel,
where the exit status and the lines are the point; the .git reading and the embeddable-Python
check in process."""

import os
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from conftest import HOST_DIR, MUSUBI_DIR, REPO
from sdsched_plugin.commands import doctor

# variables that would make the doctor look elsewhere than the test says
LEAVE_OUT = ("SDSCHED_PLUGIN_DISABLE", "SD_SCRIPTS_DIR", "MUSUBI_TUNER_DIR", "VIRTUAL_ENV", "PYTHONPATH")


def sdsched(python, argv, cwd, flags=(), **env):
    environment = {k: v for k, v in os.environ.items() if k not in LEAVE_OUT}
    environment.update(env)
    code = "import sys; from sdsched_plugin import cli; sys.exit(cli.main(sys.argv[1:]))"
    return subprocess.run([str(python), *flags, "-c", code, *argv], capture_output=True, text=True, env=environment, cwd=cwd, timeout=900)


def line(out, start):
    """The check line that starts with ``start`` (e.g. '[OK] sd-scripts:') and the lines under it."""
    text = out.stdout
    index = text.find(start)
    assert index >= 0, f"no line starting {start!r} in:\n{text}"
    return re.split(r"\n(?=\[)", text[index:])[0]


def test_active_with_sd_scripts_in_the_current_folder(wheel_venv):
    out = sdsched(wheel_venv, ["doctor"], cwd=HOST_DIR)
    assert out.returncode == 0, out.stdout + out.stderr
    sd = line(out, "[OK] sd-scripts:")
    assert str(HOST_DIR) in sd and "library.train_util.get_scheduler_fix is the plugin's" in sd
    assert line(out, "[OK] startup hook:").startswith(f"[OK] startup hook: {wheel_venv.parent.parent}")
    assert "[--] musubi-tuner: not found" in out.stdout
    assert "cosine_with_restarts_floor" in line(out, "[OK] schedules:")
    assert re.search(r"\[OK\] torch \S+, diffusers \S+", out.stdout)
    assert "[NG]" not in out.stdout
    assert out.stdout.rstrip().endswith("見つかった学習スクリプトでプラグインが有効になります")


def test_sd_scripts_dir_is_found_from_anywhere(wheel_venv, tmp_path):
    out = sdsched(wheel_venv, ["doctor"], cwd=tmp_path, SD_SCRIPTS_DIR=str(HOST_DIR))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SD_SCRIPTS_DIR" in line(out, "[OK] sd-scripts:")


def test_the_off_switch_is_named_and_fails_the_check(wheel_venv):
    out = sdsched(wheel_venv, ["doctor"], cwd=HOST_DIR, SDSCHED_PLUGIN_DISABLE="1")
    assert out.returncode == 1
    assert line(out, "[NG] SDSCHED_PLUGIN_DISABLE=1 switches the plugin off").count("unset SDSCHED_PLUGIN_DISABLE") == 1
    sd = line(out, "[NG] sd-scripts:")
    assert "NOT patched" in sd and "the off switch SDSCHED_PLUGIN_DISABLE is set" in sd
    assert "プラグインは有効になりません" in out.stdout


def test_no_trainer_found(wheel_venv, tmp_path):
    out = sdsched(wheel_venv, ["doctor"], cwd=tmp_path)
    assert out.returncode == 1
    assert "[--] sd-scripts: not found" in out.stdout and "[--] musubi-tuner: not found" in out.stdout
    assert "set SD_SCRIPTS_DIR=/path/to/sd-scripts" in out.stdout
    assert "no trainer found" in out.stdout


def test_an_impostor_train_util_is_named_with_the_reason(wheel_venv, tmp_path):
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "__init__.py").write_text("")
    (tmp_path / "library" / "train_util.py").write_text("def get_scheduler_fix(name):\n    return name\n")
    out = sdsched(wheel_venv, ["doctor"], cwd=tmp_path)
    assert out.returncode == 1
    sd = line(out, "[NG] sd-scripts:")
    assert "NOT patched" in sd
    assert "get_scheduler_fix('name',) does not take ('args', 'optimizer', 'num_processes')" in sd
    assert "it has no function read_config_from_file()" in sd


def test_a_missing_dependency_of_the_trainer_says_which_and_what_to_do(wheel_venv, tmp_path):
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "__init__.py").write_text("")
    (tmp_path / "library" / "train_util.py").write_text("import imagesize_not_installed_here\n")
    out = sdsched(wheel_venv, ["doctor"], cwd=tmp_path)
    assert out.returncode == 1
    sd = line(out, "[NG] sd-scripts:")
    assert "importing it fails: ModuleNotFoundError: No module named 'imagesize_not_installed_here'" in sd
    assert "run doctor with the venv that trains" in sd and "pip install -r requirements.txt" in sd


def test_musubi_tuner_found_and_a_broken_schedule_reported_apart(wheel_venv, tmp_path):
    # a third-party package whose schedule cannot load: listed apart with its reason, and it does
    # not make the plugin inactive for the trainer
    dist = tmp_path / "plugins" / "broken_sched-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-sched\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[sdsched_plugin.schedules]\nbad_floor = no_such_module_for_sdsched:Bad\n")
    musubi = MUSUBI_DIR.parent if MUSUBI_DIR.name == "src" else MUSUBI_DIR
    out = sdsched(wheel_venv, ["doctor"], cwd=tmp_path, MUSUBI_TUNER_DIR=str(musubi), PYTHONPATH=str(tmp_path / "plugins"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "NetworkTrainer.get_lr_scheduler is the plugin's" in line(out, "[OK] musubi-tuner:")
    assert "bad_floor" not in line(out, "[OK] schedules:")
    assert "No module named 'no_such_module_for_sdsched'" in line(out, "[NG] schedule 'bad_floor' is broken")
    assert "(1 other problem(s) above" in out.stdout


def test_python_minus_S_runs_no_startup_hook(wheel_venv):
    purelib = next(wheel_venv.parent.parent.glob("lib/python*/site-packages"))
    path = os.pathsep.join([str(purelib), *__import__("site").getsitepackages()])
    out = sdsched(wheel_venv, ["doctor"], cwd=HOST_DIR, flags=["-S"], PYTHONPATH=path)
    assert out.returncode == 1
    assert "[NG] this Python runs with -S" in out.stdout
    assert "the startup hook did not run in this Python" in line(out, "[NG] sd-scripts:")


def test_the_doctor_process_imports_no_torch_and_no_trainer(wheel_venv):
    code = (
        "import sys, contextlib, io; from sdsched_plugin import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()): rc = cli.main(['doctor'])\n"
        "print(rc, [m for m in ('torch', 'diffusers', 'transformers', 'library', 'library.train_util') if m in sys.modules])"
    )
    environment = {k: v for k, v in os.environ.items() if k not in LEAVE_OUT}
    out = subprocess.run([str(wheel_venv), "-c", code], capture_output=True, text=True, env=environment, cwd=HOST_DIR, timeout=900)
    assert out.stdout.split() == ["0", "[]"], out.stderr


def test_version(wheel_venv, tmp_path):
    out = sdsched(wheel_venv, ["--version"], cwd=tmp_path)
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert out.returncode == 0 and out.stdout.strip() == f"sdsched-plugin {version}"


# ---- in process: the embeddable Python, and reading .git without git


def test_an_embeddable_python_is_pointed_to_the_patch(tmp_path, monkeypatch):
    dot_pth = tmp_path / "python311._pth"
    dot_pth.write_text("python311.zip\n.\n#import site\n")
    monkeypatch.setattr(doctor, "dot_pth_files", lambda: [dot_pth])
    check = doctor.startup_hook_check()
    assert check.mark == "NG" and "python311._pth" in check.text
    assert any(doctor.PATCH_FILE in fix for fix in check.fix)
    dot_pth.write_text("python311.zip\n.\nimport site\n")  # site on: .pth files run again
    assert doctor.startup_hook_check().mark == "OK"


def commit_ids():
    return "a" * 40, "b" * 40, "c" * 40


def test_git_version_of_a_detached_submodule_with_a_packed_annotated_tag(tmp_path):
    commit, tag_object, _ = commit_ids()
    gitdir = tmp_path / "kohya_ss" / ".git" / "modules" / "sd-scripts"
    gitdir.mkdir(parents=True)
    (gitdir / "HEAD").write_text(commit + "\n")
    (gitdir / "packed-refs").write_text(f"# pack-refs with: peeled fully-peeled sorted\n{tag_object} refs/tags/v0.8.7\n^{commit}\n{'d' * 40} refs/tags/v0.8.6\n")
    checkout = tmp_path / "kohya_ss" / "sd-scripts"
    checkout.mkdir()
    (checkout / ".git").write_text("gitdir: ../.git/modules/sd-scripts\n")
    assert doctor.git_files_version(checkout) == "commit aaaaaaaa (v0.8.7)"


def test_git_version_of_a_branch_and_of_a_loose_annotated_tag(tmp_path):
    commit, tag_object, _ = commit_ids()
    gitdir = tmp_path / ".git"
    (gitdir / "refs" / "heads").mkdir(parents=True)
    (gitdir / "HEAD").write_text("ref: refs/heads/main\n")
    (gitdir / "refs" / "heads" / "main").write_text(commit + "\n")
    assert doctor.git_files_version(tmp_path) == "commit aaaaaaaa on main"
    (gitdir / "refs" / "tags").mkdir()
    (gitdir / "refs" / "tags" / "v0.9.1").write_text(tag_object + "\n")
    body = f"object {commit}\ntype commit\ntag v0.9.1\n".encode()
    objects = gitdir / "objects" / tag_object[:2]
    objects.mkdir(parents=True)
    (objects / tag_object[2:]).write_bytes(zlib.compress(b"tag %d\x00" % len(body) + body))
    assert doctor.git_files_version(tmp_path) == "commit aaaaaaaa (v0.9.1)"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_and_the_files_in_dot_git_say_the_same(tmp_path, monkeypatch):
    """The doctor asks git first; the reader of .git's files (for a Python without git, or a folder git
    refuses) gives the same line on a branch, an annotated tag, a light tag, and a detached head."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")

    def git(*argv):
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
        return subprocess.run(["git", "-C", str(tmp_path), *argv], check=True, capture_output=True, text=True, env=env).stdout.strip()

    git("init", "-q", "-b", "main")
    git("commit", "-q", "--allow-empty", "-m", "one")
    first = git("rev-parse", "HEAD")[:8]
    assert doctor.git_version(tmp_path) == doctor.git_files_version(tmp_path) == f"commit {first} on main"
    git("tag", "-a", "v0.9.1", "-m", "release")
    git("tag", "light")
    assert doctor.git_version(tmp_path) == doctor.git_files_version(tmp_path) == f"commit {first} (light, v0.9.1)"
    git("commit", "-q", "--allow-empty", "-m", "two")
    git("pack-refs", "--all")
    git("checkout", "-q", "--detach", "v0.9.1")
    assert doctor.git_version(tmp_path) == doctor.git_files_version(tmp_path) == f"commit {first} (light, v0.9.1)"
    git("checkout", "-q", "main")
    second = git("rev-parse", "HEAD")[:8]
    assert doctor.git_version(tmp_path) == doctor.git_files_version(tmp_path) == f"commit {second} on main"
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))  # no git: the files still tell
    assert doctor.git_command_version(tmp_path) is None and doctor.git_version(tmp_path) == f"commit {second} on main"

def test_no_git_folder_says_so(tmp_path):
    assert doctor.git_version(tmp_path) is None
    host = doctor.Host("sd-scripts", tmp_path, "the current folder", tmp_path)
    assert doctor.version_of(host) == "version unknown: no .git folder"


OLD_MUSUBI = '''
import argparse


def setup_parser_common():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr_scheduler", default="constant")
    return parser


def read_config_from_file(args, parser):
    return args


class NetworkTrainer:
    def get_lr_scheduler(self, args, optimizer, num_processes):
        return None
'''


def test_musubi_tuner_before_v0_3_is_reported_by_its_layout(wheel_venv, tmp_path):
    """The old layout (everything in musubi_tuner/hv_train_network.py): patched where the plugin
    supports it (sdsched_plugin.hosts.musubi.old_layout_patches), otherwise a line saying so, never OK."""
    from sdsched_plugin.hosts import musubi

    (tmp_path / "musubi_tuner").mkdir()
    (tmp_path / "musubi_tuner" / "__init__.py").write_text("")
    (tmp_path / "musubi_tuner" / "hv_train_network.py").write_text(OLD_MUSUBI)
    out = sdsched(wheel_venv, ["doctor"], cwd=tmp_path)
    if hasattr(musubi, "old_layout_patches"):
        assert out.returncode == 0, out.stdout + out.stderr
        found = line(out, "[OK] musubi-tuner:")
        assert "musubi_tuner.hv_train_network.NetworkTrainer.get_lr_scheduler is the plugin's" in found
    else:
        assert out.returncode == 1
        assert "does not patch musubi-tuner before v0.3.0" in line(out, "[NG] musubi-tuner:")


def test_the_plugin_line_names_the_package_folder():
    """The folder of the package users installed, not of the module that runs the doctor."""
    import sdsched_plugin

    check = doctor.plugin_check()
    assert f"({Path(sdsched_plugin.__file__).resolve().parent})" in check.text
