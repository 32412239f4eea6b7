"""``sdsched doctor``: will the floored schedules really be active when this venv trains?

One job: look, and say what to do. One line per check, a mark (``OK`` / ``NG`` / ``--`` for
"not found" or "for your information", as ``flutter doctor`` does), English / 日本語, and under
every problem what to do about it. Exit status 0 when the plugin will be active for every
trainer found (and at least one was found), 1 otherwise.

It asks the real host modules rather than guessing from files: each trainer found is imported in
a fresh subprocess of this same interpreter and environment (``commands.probe``), as
``train_network.py`` imports it (its folder first on ``sys.path``), and the subprocess reports
whether the startup hook patched it. The doctor's own process stays cheap: no torch, no diffusers, no host module (versions come
from ``importlib.metadata``; the registry's entry points are loaded in a subprocess too, because
loading a schedule imports torch).

Must not import: torch, diffusers, the host trainers, ``schedulers``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..run import locate
from .probe import MARKER

OFF_SWITCH = "SDSCHED_PLUGIN_DISABLE"  # the same name as _sdsched_plugin_boot.OFF_SWITCH
PTH_NAME = "sdsched_plugin.pth"
PATCH_FILE = "patches/sd-scripts-activate-sdsched-plugin.patch"
PROBE_TIMEOUT = 600  # seconds; a real sd-scripts import on a slow disk takes tens of seconds

OK, NG, INFO = "OK", "NG", "--"
INSTALL_HINT = "pip install sdsched-plugin into the venv that trains / 学習に使う venv に pip install してください"
REINSTALL_HINT = "reinstall: pip install --force-reinstall --no-deps sdsched-plugin / 入れ直してください"


@dataclass
class Check:
    mark: str
    text: str  # "English / 日本語", one line
    fix: list[str] = field(default_factory=list)  # what to do, one line each

    def render(self) -> str:
        return "\n".join([f"[{self.mark}] {self.text}", *(f"     -> {line}" for line in self.fix)])


# ---------------------------------------------------------------- the plugin and this Python


def plugin_check() -> Check:
    from .. import __version__

    where = Path(__file__).resolve().parent.parent  # the package, not this subpackage
    try:
        from importlib.metadata import PackageNotFoundError, version

        installed = version("sdsched-plugin")
    except PackageNotFoundError:
        return Check(
            NG,
            f"sdsched-plugin {__version__} at {where} is not installed in this Python / この Python にインストールされていません",
            [INSTALL_HINT],
        )
    if installed != __version__:
        return Check(
            NG,
            f"sdsched-plugin: {where} is {__version__} but pip has {installed} / インストール情報と実体の版が違います",
            [REINSTALL_HINT],
        )
    return Check(OK, f"sdsched-plugin {__version__} ({where})")


def python_check() -> Check:
    text = f"Python {sys.version.split()[0]}: {sys.executable}"
    active = os.environ.get("VIRTUAL_ENV")
    if active and Path(active).resolve() != Path(sys.prefix).resolve():
        return Check(
            INFO,
            f"{text}, but the activated venv is {active} / 有効化されている venv は {active} です",
            [
                "run the sdsched of the venv that trains: <venv>/bin/sdsched doctor (Windows: <venv>\\Scripts\\sdsched doctor)"
                " / 学習に使う venv の sdsched を実行してください"
            ],
        )
    return Check(OK, text)


def dot_pth_files() -> list[Path]:
    """``._pth`` files next to the interpreter: an embeddable (Windows) Python reads one instead of
    the usual search path and skips ``.pth`` files unless it says ``import site``."""
    dirs = {Path(sys.executable).resolve().parent, Path(sys.prefix), Path(getattr(sys, "_base_executable", sys.executable)).resolve().parent}
    return sorted({path for folder in dirs if folder.is_dir() for path in folder.glob("*._pth")})


def imports_site(dot_pth: Path) -> bool:
    try:
        lines = dot_pth.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    return any(line.strip() == "import site" for line in lines)


def site_dirs() -> list[Path]:
    """The folders whose ``.pth`` files ``site`` runs at startup."""
    import site

    dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [Path(d) for d in dirs]


def startup_hook_check() -> Check:
    patch_hint = (
        f"apply the one-file patch in the sd-scripts folder: git apply /path/to/sdsched-plugin/{PATCH_FILE}"
        f" / sd-scripts のフォルダで {PATCH_FILE} を git apply してください"
    )
    embeddable = [path for path in dot_pth_files() if not imports_site(path)]
    if embeddable:
        return Check(
            NG,
            f"this Python reads {embeddable[0].name} (an embeddable Python), which skips .pth files: no startup hook"
            f" / 埋め込み版 Python ({embeddable[0].name}) は .pth を読まないため起動フックが動きません",
            [patch_hint, f"or add a line 'import site' to {embeddable[0]} / または {embeddable[0].name} に 'import site' の行を足してください"],
        )
    if sys.flags.no_site:
        return Check(
            NG,
            "this Python runs with -S (no site module): no .pth file runs / -S 付きのため .pth が実行されません",
            ["train without -S, or " + patch_hint],
        )
    dirs = site_dirs()
    found = [d / PTH_NAME for d in dirs if (d / PTH_NAME).is_file()]
    if not found:
        return Check(
            NG,
            f"{PTH_NAME} is in none of this Python's site-packages ({', '.join(map(str, dirs))}) / どの site-packages にも {PTH_NAME} がありません",
            [INSTALL_HINT.replace(" /", " (not with --target) /", 1)],
        )
    if "_sdsched_plugin_boot" not in sys.modules:  # this very process started without running it
        return Check(
            NG,
            f"{found[0]} is there but did not run at this start / {PTH_NAME} はありますが起動時に実行されていません",
            [REINSTALL_HINT],
        )
    return Check(OK, f"startup hook: {found[0]} runs at every start of this Python / 起動フックは毎回実行されます")


def switched_off() -> bool:
    return os.environ.get(OFF_SWITCH, "") not in ("", "0")


def off_switch_check() -> Check:
    if switched_off():
        return Check(
            NG,
            f"{OFF_SWITCH}={os.environ[OFF_SWITCH]} switches the plugin off: nothing is patched / プラグインは無効化されています",
            [
                f"unset it: unset {OFF_SWITCH} (Windows: set {OFF_SWITCH}=) / 環境変数 {OFF_SWITCH} を消してください",
            ],
        )
    return Check(OK, f"{OFF_SWITCH} is not set / 無効化スイッチは未設定です")


def versions_check() -> list[Check]:
    from importlib.metadata import PackageNotFoundError, version

    checks = []
    for name, needed in (("torch", True), ("diffusers", True), ("transformers", False), ("accelerate", False), ("matplotlib", False)):
        try:
            checks.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            if needed:
                return [
                    Check(
                        NG,
                        f"{name} is not installed in this Python / {name} がインストールされていません",
                        [f"run doctor with the venv that trains; the plugin needs {name} there / 学習用 venv で実行してください"],
                    )
                ]
            checks.append(f"{name} -")
    return [Check(OK, ", ".join(checks))]


# ---------------------------------------------------------------- finding the trainers


@dataclass
class Host:
    kind: str  # "sd-scripts" or "musubi-tuner"
    root: Path | None  # the folder put first on sys.path (None: importable as installed)
    how: str  # where it was found
    home: Path | None = None  # the checkout (for its version), when known


BAD_VARIABLE = {
    "SD_SCRIPTS_DIR": (
        "has no library/train_util.py / SD_SCRIPTS_DIR に library/train_util.py がありません",
        "point it at the sd-scripts folder (the one with train_network.py) / sd-scripts のフォルダを指定してください",
    ),
    "MUSUBI_TUNER_DIR": (
        "has no src/musubi_tuner / MUSUBI_TUNER_DIR に src/musubi_tuner がありません",
        "point it at the musubi-tuner folder / musubi-tuner のフォルダを指定してください",
    ),
}


def _host(found: locate.Found | None, bad: list[locate.BadVariable]) -> tuple[Host | None, list[Check]]:
    """The finders of ``run.locate`` (the preview's too), in the doctor's terms."""
    notes = [Check(NG, f"{b.variable}={b.value} {BAD_VARIABLE[b.variable][0]}", [BAD_VARIABLE[b.variable][1]]) for b in bad]
    host = Host(found.kind, found.root, found.how, found.home) if found is not None else None
    return host, notes


def find_sd_scripts() -> tuple[Host | None, list[Check]]:
    return _host(*locate.find_sd_scripts())


def find_musubi() -> tuple[Host | None, list[Check]]:
    return _host(*locate.find_musubi())


# ---------------------------------------------------------------- versions of a checkout


def git_dir(folder: Path) -> Path | None:
    dot_git = folder / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():  # a submodule (kohya_ss' sd-scripts/) or a worktree: "gitdir: <path>"
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            target = Path(text[len("gitdir:") :].strip())
            return target if target.is_absolute() else (folder / target).resolve()
    return None


def git_version(folder: Path) -> str | None:
    """'commit 48d368fa (v0.9.1)' or 'commit 48d368fa on main'. A tag is named only when it points at
    that very commit. Asked of git first; where git is missing or refuses the folder (another
    owner: "dubious ownership"), read from the files in .git."""
    if git_dir(folder) is None:
        return None
    return git_command_version(folder) or git_files_version(folder)


def git_command_version(folder: Path) -> str | None:
    def git(*argv: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(folder), *argv], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--verify", "-q", "HEAD")
    if not commit:
        return None
    tags = sorted((git("tag", "--points-at", "HEAD") or "").split())
    branch = git("symbolic-ref", "-q", "--short", "HEAD")
    return f"commit {commit[:8]}" + (f" ({', '.join(tags)})" if tags else f" on {branch}" if branch else "")


def git_files_version(folder: Path) -> str | None:
    """The same from the files in .git (no git needed): loose and packed refs, annotated tags."""
    gdir = git_dir(folder)
    if gdir is None or not (gdir / "HEAD").is_file():
        return None
    common = gdir
    if (gdir / "commondir").is_file():  # a worktree keeps its refs in the main .git
        common = (gdir / (gdir / "commondir").read_text().strip()).resolve()
    refs = read_refs(common)
    head = (gdir / "HEAD").read_text().strip()
    branch = None
    if head.startswith("ref:"):
        ref = head[4:].strip()
        branch = ref.rsplit("/", 1)[-1]
        loose = [d / ref for d in (gdir, common) if (d / ref).is_file()]
        commit = loose[0].read_text().strip() if loose else refs.get(ref, (None, None))[0]
        if commit is None:
            return f"branch {branch}, no commit yet"
    else:
        commit = head
    tags = sorted(name[len("refs/tags/") :] for name, (sha, peeled) in refs.items() if name.startswith("refs/tags/") and commit in (sha, peeled))
    text = f"commit {commit[:8]}"
    if tags:
        text += f" ({', '.join(tags)})"
    elif branch:
        text += f" on {branch}"
    return text


def read_refs(common: Path) -> dict[str, tuple[str, str | None]]:
    """ref name -> (sha, the commit an annotated tag points at, when known)."""
    refs: dict[str, tuple[str, str | None]] = {}
    packed = common / "packed-refs"
    if packed.is_file():
        last = None
        for line in packed.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("^") and last:  # the peeled commit of the annotated tag above
                refs[last] = (refs[last][0], line[1:].strip())
            elif line and not line.startswith("#"):
                sha, _, name = line.partition(" ")
                refs[name] = (sha, None)
                last = name
    tags = common / "refs" / "tags"
    if tags.is_dir():
        for path in tags.rglob("*"):
            if path.is_file():
                sha = path.read_text().strip()
                refs["refs/tags/" + path.relative_to(tags).as_posix()] = (sha, loose_tag_target(common, sha))
    return refs


def loose_tag_target(common: Path, sha: str) -> str | None:
    """The commit an annotated tag object points at, when the object is loose (zlib, stdlib)."""
    import zlib

    path = common / "objects" / sha[:2] / sha[2:]
    try:
        data = zlib.decompress(path.read_bytes())
    except (OSError, zlib.error):
        return None
    match = re.search(rb"\x00object ([0-9a-f]{40})\n", data)
    return match.group(1).decode() if match and data.startswith(b"tag ") else None


def version_of(host: Host) -> str:
    parts = []
    if host.kind == "musubi-tuner":
        dist = dist_version("musubi-tuner")
        pyproject = host.home / "pyproject.toml" if host.home else None
        if pyproject and pyproject.is_file():
            match = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8", errors="replace"), re.M)
            if match:
                parts.append(f"version {match.group(1)}")
        elif dist:
            parts.append(f"version {dist}")
    git = git_version(host.home) if host.home else None
    if git:
        parts.append(git)
    return ", ".join(parts) or "version unknown: no .git folder"


def dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


# ---------------------------------------------------------------- asking the trainers themselves

@dataclass
class Probe:
    report: dict
    stderr: str


def start_probe(kind: str, root: Path | None, cwd: Path | None, with_schedules: bool) -> subprocess.Popen:
    return start_python(["host", kind, str(root or ""), "1" if with_schedules else "0"], cwd)


def start_python(argv: list[str], cwd: Path | None) -> subprocess.Popen:
    """A fresh process of this Python running ``commands.probe``, whose last line ``finish_probe`` reads."""
    env = dict(os.environ)
    env.setdefault("COLUMNS", "200")  # sd-scripts logs through rich, which wraps at the terminal width
    flags = ["-S"] if sys.flags.no_site else []  # start as this Python was started
    return subprocess.Popen(
        [sys.executable, *flags, "-m", "sdsched_plugin.commands.probe", *argv],
        cwd=str(cwd or Path.cwd()),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        errors="replace",
    )


def finish_probe(process: subprocess.Popen) -> Probe:
    try:
        stdout, stderr = process.communicate(timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return Probe({"error": f"no answer in {PROBE_TIMEOUT} s"}, "")
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            return Probe(json.loads(line[len(MARKER) :]), stderr)
    tail = (stderr.strip().splitlines() or [f"exit status {process.returncode}"])[-1]
    return Probe({"error": f"the Python process ended without an answer: {tail}"}, stderr)


def host_checks(host: Host, probe: Probe) -> tuple[Check, bool]:
    """(the check line, whether the plugin is active there)."""
    report, where = probe.report, host.home or host.root
    head = f"{host.kind}: {where} [{host.how}; {version_of(host)}]"
    if "error" in report:
        return import_failed(host, head, report), False
    if report.get("file") and host.root and not Path(report["file"]).resolve().is_relative_to(host.root):
        return (
            Check(
                NG,
                f"{head}: but this Python imports {report['file']} / 別の場所のモジュールが読み込まれます",
                ["uninstall the other copy, or run from the trainer's folder / もう一方を削除するか、学習に使うフォルダで実行してください"],
            ),
            False,
        )
    if report.get("patched") and report.get("complete", True):
        layout = f", {report['layout']}" if report.get("layout") else ""
        return Check(OK, f"{head}: patched ({report['target']} is the plugin's{layout}) / パッチが有効です"), True
    return Check(NG, f"{head}: NOT patched ({report.get('target')}) / パッチされていません", why_not_patched(host, report, probe.stderr)), False


def import_failed(host: Host, head: str, report: dict) -> Check:
    error, missing = report["error"], report.get("missing")
    host_modules = {"library", "library.train_util", "musubi_tuner", "musubi_tuner.training", "hv_train_network"}
    if missing and missing.split(".")[0] not in ("library", "musubi_tuner", "hv_train_network", "sdsched_plugin"):
        home = host.home or host.root
        install = "pip install -e ." if home and (home / "pyproject.toml").is_file() else "pip install -r requirements.txt"
        fix = [
            f"this Python lacks {possessive(host.kind)} own dependencies ({missing}): run doctor with the venv that trains,"
            " <venv>/bin/sdsched doctor (Windows: <venv>\\Scripts\\sdsched doctor)"
            f" / {host.kind} の依存パッケージ({missing})がありません。学習に使う venv の sdsched で実行してください",
            f"or install them into this venv: cd {home} && {install} / またはこの venv に依存パッケージを入れてください",
        ]
    elif missing and missing in host_modules:
        fix = [f"{host.kind} is incomplete or is not what it looks like: {missing} is missing / {missing} が見つかりません"]
    else:
        fix = [
            f"import it yourself to see the full error: cd {host.root or '.'} && {Path(sys.executable).name} -c \"import "
            + ("library.train_util" if host.kind == "sd-scripts" else "musubi_tuner")
            + "\" / 上のコマンドで全体のエラーを確認してください"
        ]
    return Check(NG, f"{head}: importing it fails: {error} / 読み込みに失敗します", fix)


def possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


def why_not_patched(host: Host, report: dict, stderr: str) -> list[str]:
    if report.get("mismatch"):
        return [
            f"{report.get('file')} is not {possessive(host.kind)} module as the plugin knows it: {'; '.join(report['mismatch'])}"
            f" / {host.kind} のモジュールではないか、対応していない版です",
            f"if it is {host.kind}, report this output and its version to sdsched-plugin / {host.kind} なら、この出力と版を報告してください",
        ]
    if switched_off():
        return [f"the off switch {OFF_SWITCH} is set: unset it / 無効化スイッチを消してください"]
    if not report.get("boot"):
        return ["the startup hook did not run in this Python: see the startup hook line above / 起動フックが実行されていません(上の行を参照)"]
    lines = [line.strip() for line in stderr.splitlines() if "sdsched-plugin" in line]
    return lines[-3:] or ["unknown: please report this output / 原因不明です。この出力を添えて報告してください"]


def schedule_checks(probe: Probe) -> list[Check]:
    report = probe.report.get("schedules") or {"error": probe.report.get("error", "no answer")}
    if "error" in report:
        return [Check(NG, f"schedules: the registry fails to load: {report['error']} / スケジューラ一覧を読めません", ["reinstall sdsched-plugin / 入れ直してください"])]
    checks = [Check(OK, f"schedules: {', '.join(report['available'])} / 使えるスケジューラ")]
    for name, why in sorted(report.get("broken", {}).items()):
        checks.append(
            Check(
                NG,
                f"schedule {name!r} is broken and left out: {why} / スケジューラ {name!r} は壊れているため使えません",
                ["update or uninstall the package that registers it (pip show -f; entry-point group sdsched_plugin.schedules) / それを登録しているパッケージを更新または削除してください"],
            )
        )
    return checks


# ---------------------------------------------------------------- the kohya_ss GUI

def find_kohya_gui() -> tuple[Path | None, list[Check]]:
    """The kohya_ss folder: the current folder, or KOHYA_SS_DIR."""
    env = os.environ.get("KOHYA_SS_DIR")
    candidates = [Path(env)] if env else []
    for folder in [*candidates, Path.cwd()]:
        if (folder / "kohya_gui" / "class_basic_training.py").is_file():
            return folder.resolve(), []
    if env:
        return None, [
            Check(
                NG,
                f"KOHYA_SS_DIR={env} has no kohya_gui/class_basic_training.py / KOHYA_SS_DIR に kohya_gui がありません",
                ["point it at the kohya_ss folder (the one with kohya_gui.py) / kohya_ss のフォルダを指定してください"],
            )
        ]
    return None, []


def gui_check(root: Path, probe: Probe) -> tuple[Check, bool]:
    """(the line for the kohya_ss GUI, whether its LR Scheduler menu gets the plugin's names)."""
    report = probe.report
    gradio = f", Gradio {report['gradio']}" if report.get("gradio") else ""
    head = f"kohya_ss GUI: {root} [{report.get('version', 'unknown')}{gradio}]"
    if report.get("names") and report.get("floor") and report.get("plot"):
        names = ", ".join(report["names"])
        return Check(OK, f"{head}: patched (LR Scheduler menu + {names}; Min LR (floor); the plot) / GUI にパッチが有効です"), True
    if "error" in report:
        missing = report.get("missing")
        fix = (
            [f"this Python lacks the GUI's {missing}: run doctor with the GUI's venv (kohya_ss/venv or .venv) / GUI の venv の sdsched で実行してください"]
            if missing and missing.split(".")[0] != "kohya_gui"
            else [f"import it yourself to see the error: cd {root} && python -c \"import kohya_gui.class_basic_training\" / 上のコマンドでエラーを確認してください"]
        )
        return Check(NG, f"{head}: building its training settings fails: {report['error']} / GUI の画面を作れません", fix), False
    if switched_off():
        fix = [f"the off switch {OFF_SWITCH} is set: unset it / 無効化スイッチを消してください"]
    elif not report.get("hooked"):
        fix = ["the startup hook did not run in this Python: see the startup hook line above / 起動フックが実行されていません(上の行を参照)"]
    else:
        fix = report.get("warnings")[-2:] or ["unknown: please report this output / 原因不明です。この出力を添えて報告してください"]
    return Check(NG, f"{head}: NOT patched: the LR Scheduler menu keeps its own names / パッチされていません", fix), False


# ---------------------------------------------------------------- the command


def run() -> tuple[list[Check], list[bool]]:
    """The checks, and for each trainer found whether the plugin will be active there."""
    checks = [plugin_check(), python_check(), startup_hook_check(), off_switch_check()]
    sd_host, sd_notes = find_sd_scripts()
    musubi_host, musubi_notes = find_musubi()
    hosts = [h for h in (sd_host, musubi_host) if h is not None]
    # every probe imports torch: the first one also loads the schedules, and they run together
    running = [(host, start_probe(host.kind, host.root, host.home or host.root, index == 0)) for index, host in enumerate(hosts)]
    if not running:
        running = [(None, start_probe("none", None, None, True))]
    gui_root, gui_notes = find_kohya_gui()
    gui_process = start_python(["gui", str(gui_root)], gui_root) if gui_root else None
    probes = [finish_probe(process) for _, process in running]
    active = []
    for kind, notes, host in (("sd-scripts", sd_notes, sd_host), ("musubi-tuner", musubi_notes, musubi_host)):
        checks += notes
        if host is None:
            env = "SD_SCRIPTS_DIR" if kind == "sd-scripts" else "MUSUBI_TUNER_DIR"
            checks.append(
                Check(
                    INFO,
                    f"{kind}: not found (the current folder, {env}, installed packages) / 見つかりません",
                    [f"run doctor in the {kind} folder, or set {env}=/path/to/{kind} / {kind} のフォルダで実行するか {env} を設定してください"],
                )
            )
            continue
        check, ok = host_checks(host, probes[[h for h, _ in running].index(host)])
        checks.append(check)
        active.append(ok)
    checks += gui_notes
    if gui_process is not None:
        check, ok = gui_check(gui_root, finish_probe(gui_process))
        checks.append(check)
        active.append(ok)
    checks += schedule_checks(probes[0])
    checks += versions_check()
    return checks, active


def main(args=None) -> int:
    checks, active = run()
    for check in checks:
        print(check.render())
    print()
    problems = sum(check.mark == NG for check in checks)
    if active and all(active):
        summary = "the plugin will be active for the trainer found / 見つかった学習スクリプトでプラグインが有効になります"
        if problems:
            summary += f" ({problems} other problem(s) above / 他に {problems} 件の問題があります)"
        print(summary)
        return 0
    if not active:
        print(
            "no trainer found: the plugin has nothing to patch here / 学習スクリプトが見つからないため、ここでは何もパッチされません"
        )
    else:
        print("the plugin will NOT be active: see the NG lines above / プラグインは有効になりません: 上の NG の行を見てください")
    return 1
