"""The Markdown report of ``run.py``: one table per item, each target with its verdict.

Cells read ``median (IQR q1–q3, min–max)``; ratios are ratios of medians.
"""

from __future__ import annotations

TARGETS = {"startup_ratio": 1.03, "hook_ms": 5.0, "step_ratio": 1.2}


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def cell(stats: dict, digits: int = 2) -> str:
    f = f"{{:.{digits}f}}"
    return (
        f"{f.format(stats['median'])} ({f.format(stats['q1'])}–{f.format(stats['q3'])}, "
        f"{f.format(stats['min'])}–{f.format(stats['max'])})"
    )


def meta(m: dict) -> list[str]:
    load = ", ".join(f"{item} {before} → {after}" for item, (before, after) in m["load"].items())
    return [
        f"- date: {m['date']}; command: `{m['command']}`; source: {m['source']} ({m['wheel']})",
        f"- machine: {m['cores']} cores ({m['cpu']}), {m['system']}, no GPU; torch threads: {m['torch_threads']}",
        f"- Python {m['python']}, torch {m['torch']}, diffusers {m['diffusers']}, transformers {m['transformers']}, "
        f"sdsched-plugin {m['sdsched_plugin']} (from {m['plugin_file']})",
        f"- load average (1/5/15 min) before → after each item: {load}",
    ]


def startup(r: dict) -> list[str]:
    lines = [
        "### 1. Interpreter start: `python -c pass`",
        "",
        "| venv | wall ms | ratio | added ms | CPU ms | ratio | added ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in r["variants"].items():
        lines.append(
            f"| {name} | {cell(v['wall'])} | {v['wall_ratio']:.3f} | {v['wall_added_ms']:+.2f} "
            f"| {cell(v['cpu'])} | {v['cpu_ratio']:.3f} | {v['cpu_added_ms']:+.2f} |"
        )
    imports, with_ = r["importtime"], r["variants"]["with"]
    ok = with_["wall_ratio"] <= TARGETS["startup_ratio"] and with_["cpu_ratio"] <= TARGETS["startup_ratio"]
    lines += [
        "",
        f"`-X importtime`: the hook imports {', '.join(imports['added_modules'])} "
        f"(own import time {cell(imports['self_ms'])} ms); heavy modules imported: "
        f"{', '.join(imports['forbidden_imported']) or 'none'}; the off switch imports: {', '.join(imports['off_switch_adds']) or 'nothing'}.",
        "",
        f"Target `with` ≤ {TARGETS['startup_ratio']}: {verdict(ok)} (wall {with_['wall_ratio']:.3f}, CPU {with_['cpu_ratio']:.3f}).",
    ]
    floor = r["variants"].get("floor .pth")
    if floor:
        lines[-1] += (
            f" The least a `.pth` importing one module costs here (`floor .pth`): wall {floor['wall_ratio']:.3f}; "
            f"the hook costs {with_['wall_added_ms'] - floor['wall_added_ms']:+.2f} ms (wall) beyond it."
        )
    return lines


def patch(r: dict) -> list[str]:
    hook = r["hook"]
    ok = hook["run_hook_ms"]["median"] < TARGETS["hook_ms"] and hook["import_added_ms"] < TARGETS["hook_ms"]
    lines = [
        "### 2. Patch cost",
        "",
        "| `import library.train_util` (stand-in, torch etc. already imported) | ms |",
        "|---|---|",
        f"| stock (`SDSCHED_PLUGIN_DISABLE=1`) | {cell(hook['import_stock_ms'])} |",
        f"| hooked | {cell(hook['import_hooked_ms'])} |",
        f"| added by the hook (difference of medians) | {hook['import_added_ms']:.2f} |",
        f"| `_boot.run_hook` alone, timed in the stock child | {cell(hook['run_hook_ms'])} |",
        "",
        f"`run_hook` imports {', '.join(hook['run_hook_imports'])}. "
        f"Target < {TARGETS['hook_ms']:.0f} ms: {verdict(ok)}.",
        "",
        f"Building the scheduler ({r['build_setup']}), µs per build:",
        "",
        "| schedule | floored | stock diffusers | ratio |",
        "|---|---|---|---|",
    ]
    for name, b in r["build"].items():
        lines.append(f"| {name} | {cell(b['floored_us'], 1)} | {cell(b['stock_us'], 1)} | {b['ratio']:.2f} |")
    return lines


def steps(r: dict) -> list[str]:
    ratios = [s["ratio"] for s in r["schedules"].values()]
    step = r["training_step"]
    worst = max(s["floored_ns"]["median"] for s in r["schedules"].values()) / 1e3
    lines = [
        "### 3. Per step: `scheduler.step()` + `get_last_lr()`",
        "",
        f"{r['setup']}. µs per step:",
        "",
        "| schedule | floored | stock diffusers | ratio |",
        "|---|---|---|---|",
    ]
    for name, s in r["schedules"].items():
        lines.append(
            f"| {name} | {cell({k: v / 1e3 if k != 'n' else v for k, v in s['floored_ns'].items()})} "
            f"| {cell({k: v / 1e3 if k != 'n' else v for k, v in s['stock_ns'].items()})} | {s['ratio']:.3f} |"
        )
    share = worst / 1e3 / step["ms"]["median"]
    lines += [
        "",
        f"For scale, one training step of a 768→3072→768 MLP block on 77 tokens (forward, backward, AdamW; "
        f"{step['threads']} threads): {cell(step['ms'])} ms; the slowest floored schedule's step is "
        f"{share:.1e} of it.",
        "",
        f"Target ratio ≤ {TARGETS['step_ratio']}: {verdict(max(ratios) <= TARGETS['step_ratio'])} (worst {max(ratios):.3f}).",
    ]
    return lines


def preview(r: dict) -> list[str]:
    base = r["runs"]["imports only"]
    lines = [
        "### 4. `sdsched preview`",
        "",
        f"`{r['command']}`, one process per run; `imports only` is `import torch; import diffusers.optimization`. "
        "The last columns: RSS beyond that, and `main()` timed again in a process where torch is already imported:",
        "",
        "| run | wall s | CPU s | peak RSS MiB | RSS beyond the imports, MiB | in process, torch loaded, s |",
        "|---|---|---|---|---|---|",
    ]
    for name, p in r["runs"].items():
        rss = p["peak_rss_mib"]["median"] - base["peak_rss_mib"]["median"]
        inner = cell(p["in_process_s"], 3) if "in_process_s" in p else "–"
        lines.append(f"| {name} | {cell(p['wall_s'])} | {cell(p['cpu_s'])} | {cell(p['peak_rss_mib'], 0)} | {rss:+.0f} | {inner} |")
    return lines


def markdown(results: dict) -> str:
    lines = meta(results["meta"]) + ["", "Cells: median (IQR q1–q3, min–max); ratios are ratios of medians.", ""]
    for item, render in (("startup", startup), ("patch", patch), ("steps", steps), ("preview", preview)):
        if item in results:
            lines += render(results[item]) + [""]
    return "\n".join(lines)
