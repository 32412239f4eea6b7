"""The Markdown report of ``run.py``: one table per item, each target with its verdict.

Cells read ``median (IQR q1–q3, min–max)``; ratios are ratios of medians.
"""

from __future__ import annotations

TARGETS = {"startup_ratio": 1.03, "hook_ms": 5.0, "step_ratio": 1.2, "preview_s": 0.5}


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
    runs, target = r["runs"], TARGETS["preview_s"]
    pass_rss = runs["python -c pass"]["peak_rss_mib"]["median"]
    lines = [
        "### 4. `sdsched preview` from flags",
        "",
        f"`{r['command']}`, one process per run, with SCHEDULE:",
        "",
        *(f"- {name}: `{argv}`" for name, argv in r["schedules"].items()),
        "",
        "The ratios are of wall medians, to `python -c pass` and to `import torch` in the same run; "
        "the last column times `main()` again inside the benchmark process (modules already imported):",
        "",
        "| run | wall s | CPU s | peak RSS MiB | RSS beyond `pass` | wall / `pass` | wall / `import torch` | in process s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, p in runs.items():
        inner = cell(p["in_process_s"], 3) if "in_process_s" in p else "–"
        rss = p["peak_rss_mib"]["median"] - pass_rss
        lines.append(
            f"| {name} | {cell(p['wall_s'], 3)} | {cell(p['cpu_s'], 3)} | {cell(p['peak_rss_mib'], 0)} | {rss:+.0f} "
            f"| {p['vs_pass']:.1f} | {p['vs_torch']:.3f} | {inner} |"
        )
    at_100k = {name: p["wall_s"]["median"] for name, p in runs.items() if name.endswith(", 100000 steps")}
    lines.append("")
    for name, seconds in at_100k.items():
        lines.append(f"- target ≤ {target} s wall at 100k steps, {name.rsplit(',', 1)[0]}: {seconds:.3f} s, {verdict(seconds <= target)}")
    heavy = {name: i["heavy"] for name, i in r["imports"].items()}
    clean = not any(heavy.values())
    lines.append(
        "- `-X importtime` of each preview child: "
        + "; ".join(f"{name}: {i['modules']} modules, heavy: {', '.join(i['heavy']) or 'none'}" for name, i in r["imports"].items())
        + f". No torch, diffusers, transformers or numpy: {verdict(clean)}"
    )
    return lines


def markdown(results: dict) -> str:
    lines = meta(results["meta"]) + ["", "Cells: median (IQR q1–q3, min–max); ratios are ratios of medians.", ""]
    for item, render in (("startup", startup), ("patch", patch), ("steps", steps), ("preview", preview)):
        if item in results:
            lines += render(results[item]) + [""]
    return "\n".join(lines)
