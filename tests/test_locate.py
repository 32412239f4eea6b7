"""One finder for the trainers: the preview and ``sdsched doctor`` pick the same checkout, in the
order run/locate.py documents."""

import pytest

from sdsched_plugin.commands import doctor
from sdsched_plugin.run import command, locate


def sd_scripts_at(folder):
    (folder / "library").mkdir(parents=True)
    (folder / "library" / "train_util.py").write_text("")
    (folder / "train_network.py").write_text("")
    return folder


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No sd-scripts importable, no variable set, an empty current folder."""
    monkeypatch.delenv("SD_SCRIPTS_DIR", raising=False)
    monkeypatch.setattr(locate, "package_dir", lambda name: None)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


def both(script=None):
    host, notes = doctor.find_sd_scripts()
    preview = command.find_sd_scripts(script)
    return (host.home if host else None), preview, host.how if host else None, [n.text for n in notes]


def test_the_kohya_ss_folder_finds_its_sd_scripts_for_both(nowhere):
    home = sd_scripts_at(nowhere / "cwd" / "sd-scripts").resolve()
    assert both() == (home, home, "the current folder's sd-scripts/", [])


def test_sd_scripts_dir_comes_before_the_current_folder_for_both(nowhere, monkeypatch):
    sd_scripts_at(nowhere / "cwd")
    other = sd_scripts_at(nowhere / "other").resolve()
    monkeypatch.setenv("SD_SCRIPTS_DIR", str(other))
    assert both() == (other, other, "SD_SCRIPTS_DIR", [])


def test_a_pasted_script_s_folder_comes_first_for_the_preview(nowhere, monkeypatch):
    monkeypatch.setenv("SD_SCRIPTS_DIR", str(sd_scripts_at(nowhere / "other")))
    pasted = sd_scripts_at(nowhere / "pasted").resolve()
    assert command.find_sd_scripts(pasted / "train_network.py") == pasted


def test_a_wrong_sd_scripts_dir_is_named_and_the_search_goes_on(nowhere, monkeypatch):
    monkeypatch.setenv("SD_SCRIPTS_DIR", str(nowhere / "not-it"))
    home = sd_scripts_at(nowhere / "cwd").resolve()
    found, notes = both()[0], both()[3]
    assert found == home == command.find_sd_scripts()
    assert notes == [f"SD_SCRIPTS_DIR={nowhere / 'not-it'} has no library/train_util.py / SD_SCRIPTS_DIR に library/train_util.py がありません"]


def test_an_installed_library_is_the_last_resort_for_both(nowhere, monkeypatch):
    installed = sd_scripts_at(nowhere / "site" / "sd-scripts")
    monkeypatch.setattr(locate, "package_dir", lambda name: installed / "library" if name == "library" else None)
    assert both() == (installed, installed, "installed in this Python", [])


def test_nothing_found_is_none_for_both(nowhere):
    assert both() == (None, None, None, [])
