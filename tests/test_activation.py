"""Layer 5: activation by the .pth startup hook, in real subprocesses of a venv where the
built wheel is installed, and the early errors of a real training-script run."""

import os
import shutil
import site
import subprocess
import textwrap

import pytest

from conftest import HOST_DIR, REPO, host_env, run_driver

FORBIDDEN_AT_STARTUP = ("torch", "diffusers", "importlib.metadata", "importlib.abc", "importlib.util", "logging")


def run(python, code, **env):
    environment = {k: v for k, v in os.environ.items() if k != "SDSCHED_PLUGIN_DISABLE"}
    environment.update(env)
    # run outside the checkout: `python -c` puts the working directory first on sys.path
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=environment, timeout=300, cwd=python.parent)


def test_the_pth_hook_is_active_in_every_process(wheel_venv):
    out = run(wheel_venv, "import sys, sdsched_plugin; print(sdsched_plugin.__file__); print('_sdsched_plugin_boot' in sys.modules, getattr(sys.meta_path[0], 'is_sdsched_finder', False))")
    assert out.returncode == 0, out.stderr
    file, active = out.stdout.splitlines()
    assert str(wheel_venv.parent.parent) in file  # the wheel's copy, not the checkout's
    assert active == "True True"


def startup_imports(python, **env):
    """(depth, module) per line of -X importtime; a module's own imports come just before it, deeper."""
    out = run(python, "pass", PYTHONPROFILEIMPORTTIME="1", **env)
    lines = [line.split("|")[-1] for line in out.stderr.splitlines() if line.startswith("import time:")][1:]  # skip the header
    return [((len(name) - len(name.lstrip())) // 2, name.strip()) for name in lines]


def imported_by(imports, module):
    index = [name for _, name in imports].index(module)
    depth, children = imports[index][0], []
    for child_depth, child in reversed(imports[:index]):
        if child_depth <= depth:
            break
        children.append(child)
    return children


@pytest.mark.parametrize("off_switch", ["", "1"])
def test_the_startup_hook_imports_nothing_heavy(wheel_venv, off_switch):
    imports = startup_imports(wheel_venv, SDSCHED_PLUGIN_DISABLE=off_switch)
    names = {name for _, name in imports}
    assert "_sdsched_plugin_boot" in names and "sdsched_plugin" not in names  # one small module, not the package
    assert imported_by(imports, "_sdsched_plugin_boot") == []  # os and sys are loaded by site already
    assert not set(FORBIDDEN_AT_STARTUP) & names


def test_the_boot_module_imports_only_os_and_sys():
    import ast

    tree = ast.parse((REPO / "_sdsched_plugin_boot.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    assert imported == {"os", "sys"}
    assert (REPO / "sdsched_plugin.pth").read_text() == "import _sdsched_plugin_boot\n"


def test_off_switch_leaves_python_untouched(wheel_venv):
    out = run(wheel_venv, "import sys; print('sdsched_plugin' in sys.modules, any(getattr(f, 'is_sdsched_finder', False) for f in sys.meta_path))", SDSCHED_PLUGIN_DISABLE="1")
    assert out.stdout.strip() == "False False"


def test_training_script_is_patched_at_import_with_no_edit(wheel_venv):
    process, traces = run_driver(
        ["--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_min_value", "0.5", "--lr_scheduler_num_cycles", "2",
         "--max_train_steps", "8", "--learning_rate", "1e-3"],
        python=wheel_venv,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    record = traces[0]
    assert record["scheduler"] == "CosineWithRestartsFloor"
    unet = [step["lrs"][0] for step in record["trace"]]
    assert unet[0] == pytest.approx(1e-3) and unet[4] == pytest.approx(1e-3)  # the restart
    assert unet[2] == pytest.approx(1e-3 * 0.75) and unet[7] > 0.5e-3


def test_with_the_off_switch_sd_scripts_does_not_know_the_flag(wheel_venv):
    env = host_env(SDSCHED_PLUGIN_DISABLE="1")
    process, _ = run_driver(["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.5"], python=wheel_venv, env=env)
    assert process.returncode == 2 and "unrecognized arguments: --lr_scheduler_min_value" in process.stderr


def test_a_library_that_is_not_sd_scripts_gets_one_warning_line(wheel_venv, tmp_path):
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "__init__.py").write_text("")
    (tmp_path / "library" / "train_util.py").write_text("def get_scheduler_fix(name):\n    return name\n")
    out = run(wheel_venv, "import logging; logging.basicConfig(); import library.train_util as t; print(t.get_scheduler_fix('x'))", PYTHONPATH=str(tmp_path))
    assert out.returncode == 0 and out.stdout.strip() == "x"
    lines = [line for line in out.stderr.splitlines() if "sdsched" in line]
    assert len(lines) == 1 and "not sd-scripts' train_util" in lines[0], out.stderr


def test_a_failing_hook_prints_one_line_and_never_stops_python(wheel_venv, tmp_path):
    (tmp_path / "fakehost.py").write_text("VALUE = 42\n")
    code = textwrap.dedent(
        """
        import _sdsched_plugin_boot as boot
        boot.HOOKS["fakehost"] = ("sdsched_no_such_module", "activate")
        import fakehost
        print(fakehost.VALUE)
        """
    )
    out = run(wheel_venv, code, PYTHONPATH=str(tmp_path))
    assert out.returncode == 0 and out.stdout.strip() == "42"
    assert len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("sdsched-plugin: could not patch fakehost") and "SDSCHED_PLUGIN_DISABLE=1" in out.stderr


def test_a_broken_install_is_one_line_per_process_whatever_it_hooks(wheel_venv, tmp_path):
    """A package that fails to import (half removed, a dependency missing) fails the hook of
    every host module alike: sd-scripts' train_util and config_util, and a reload of one, give
    one line, not one per module."""
    shadow = tmp_path / "sdsched_plugin"  # first on sys.path: the plugin's package, broken
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('simulated broken install')\n")
    code = "import importlib, library.train_util, library.config_util as c; importlib.reload(c); print('trained on')"
    out = run(wheel_venv, code, PYTHONPATH=os.pathsep.join([str(tmp_path), str(HOST_DIR)]))
    assert out.returncode == 0 and out.stdout.strip() == "trained on", out.stderr
    assert out.stderr.splitlines() == [
        "sdsched-plugin: could not patch library.train_util (ImportError('simulated broken install')); training goes on"
        " without the floored schedulers. Set SDSCHED_PLUGIN_DISABLE=1 to switch the plugin off."
    ]


def test_a_host_already_imported_is_patched_at_once(wheel_venv):
    code = "import sys; sys.path.insert(0, %r); import library.train_util as t; import _sdsched_plugin_boot as b; from sdsched_plugin.hosts import sd_scripts; sd_scripts.uninstall(); print(sd_scripts.is_installed(t)); b.activate(); print(sd_scripts.is_installed(t))" % str(HOST_DIR)
    out = run(wheel_venv, code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


def test_bad_values_stop_a_training_script_before_the_model_loads(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('lr_scheduler = "cosine_floor"\nlr_scheduler_min_value = "1.5"\n')
    for argv in (["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "2"], ["--config_file", str(config)]):
        process, _ = run_driver(argv)
        assert process.returncode == 2
        assert "MODEL LOADING" not in process.stdout
        assert "--lr_scheduler_min_value" in process.stderr and "0 から 1" in process.stderr


PATCH = REPO / "patches" / "sd-scripts-activate-sdsched-plugin.patch"


@pytest.mark.skipif(not os.environ.get("SD_SCRIPTS_DIR"), reason="needs SD_SCRIPTS_DIR (a real sd-scripts checkout)")
def test_the_patch_applies_to_the_real_checkout():
    check = subprocess.run(["git", "apply", "--check", str(PATCH)], cwd=os.environ["SD_SCRIPTS_DIR"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_the_patch_activates_the_plugin_where_pth_files_are_skipped(wheel_venv, tmp_path):
    host = tmp_path / "host"
    shutil.copytree(HOST_DIR / "library", host / "library", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "apply", str(PATCH)], cwd=host, check=True)
    purelib = next(wheel_venv.parent.parent.glob("lib/python*/site-packages"))
    # python -S: no site module, so no .pth file runs, as in an embeddable build with a ._pth file
    path = os.pathsep.join([str(host), str(purelib), *site.getsitepackages()])
    code = "import sys, library.train_util as t; from sdsched_plugin.hosts import sd_scripts; print(sd_scripts.is_installed(t), sys.flags.no_site)"
    out = subprocess.run([str(wheel_venv), "-S", "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path}, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "1"]


def test_a_reload_is_patched_again_without_double_wrapping(wheel_venv):
    code = (
        "import importlib, sys; sys.path.insert(0, %r); import library.train_util as t; from sdsched_plugin.hosts import sd_scripts;"
        " first = t.get_scheduler_fix; importlib.reload(t);"
        " print(sd_scripts.is_installed(t), t.get_scheduler_fix is not first,"
        " getattr(t.get_scheduler_fix.__wrapped__, 'sdsched_patched', False)); sd_scripts.uninstall();"
        " print(getattr(t.get_scheduler_fix, 'sdsched_patched', False))"
    ) % str(HOST_DIR)
    out = run(wheel_venv, code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "False", "False"]
