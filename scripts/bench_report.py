"""Writes BENCHMARKS.md and one PNG chart per table from the outputs scripts/bench-report.sh
collected: each DIR/<part>.out is a bench's (or the load test's) stdout, whose Markdown
tables are taken as printed, with the title line above each table and the lines below it.

Usage: python bench_report.py DIR OUT.md CHART_DIR
"""
import datetime
import json
import platform
import re
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DIR, OUT, CHARTS = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])

# part -> (section title, command, [(ratio column header, label columns, what the ratio means)])
PARTS = {
    "weights": (
        "inferkit-weights: opening checkpoints and converting tensors",
        "scripts/bench-weights.sh",
        [("ratio", [0], "inferkit's speed over the reference's (higher is better; the first row is a time ratio, lower is better)")],
    ),
    "images": (
        "inferkit-preprocess: JPEG decoding and ImageNet preprocessing",
        "scripts/bench-images.sh",
        [("ratio", [0], "inferkit's MP/s over Pillow's (higher is better)")],
    ),
    "tables": (
        "inferkit-preprocess: CSV / Parquet to a feature matrix",
        "scripts/bench-tables.sh",
        [("inferkit / pyarrow", [0], "inferkit's rows/s over pyarrow + numpy's (higher is better)")],
    ),
    "pipeline": (
        "inferkit-pipeline: overhead, scaling and batching latency",
        "cargo bench --bench pipeline",
        [("ratio", [0], "first row: inferkit's time per hop over bare crossbeam's (lower is better); second: 2 workers' throughput over 1's (higher is better)")],
    ),
    "gemm": (
        "inferkit-infer-core: GEMM choice (one thread, f32)",
        "scripts/bench-gemm.sh",
        [("packed / gemm", [0], "the packed-weight AVX-512 kernel's GFLOP/s over the gemm crate's (higher is better)")],
    ),
    "int8": (
        "inferkit-infer-core: int8 GEMM kernels (one thread)",
        "cargo bench --bench int8",
        [("int8 vnni512 / f32", [0], "the VNNI int8 kernel's GOP/s over the f32 packed kernel's GFLOP/s (higher is better)")],
    ),
    "infer": (
        "inferkit-infer-core: native CPU backend vs onnxruntime and PyTorch",
        "scripts/bench-infer.sh",
        [("ORT / native speed", [0, 1], "native speed over onnxruntime's (higher is better; 1.0 = parity)")],
    ),
    "serve": (
        "inferkit-serve: load test on raw photos and texts vs Python services",
        "scripts/load-serve.sh",
        [("ratio", [0, 1, 2], "inferkit-serve over the best Python service (throughput: higher is better; latency and RSS: lower is better)")],
    ),
}


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def tables(text):
    """(title, header, rows, notes) for each Markdown table in a bench's stdout."""
    lines = text.splitlines()
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            title = ""
            j = i - 1
            while j >= 0 and lines[j].strip() and not lines[j].startswith(("|", "Benchmarking")):
                title = lines[j].strip().lstrip("# ") + ("\n" + title if title else "")
                j -= 1
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            rows, k = [], i + 2
            while k < len(lines) and lines[k].startswith("|"):
                rows.append([c.strip() for c in lines[k].strip().strip("|").split("|")])
                k += 1
            notes = []
            while k < len(lines) and lines[k].strip() and not lines[k].startswith("|") \
                    and not lines[k].startswith(("Benchmarking", "Gnuplot", "Running")):
                notes.append(lines[k].strip())
                k += 1
            out.append((title, header, rows, notes))
            i = k
        else:
            i += 1
    return out


def number(cell):
    m = re.match(r"\s*([0-9]+(?:\.[0-9]+)?)(?:x|\s*$)", cell)
    return float(m.group(1)) if m else None


def chart(path, title, header, rows, col, labels, meaning):
    pts = []
    for r in rows:
        if col < len(r) and (v := number(r[col])) is not None:
            parts = [r[c] if n == 0 else f"{header[c]} {r[c]}" for n, c in enumerate(labels) if c < len(r)]
            pts.append((" · ".join(parts), v))
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(pts) + 1.6))
    names = [p[0] for p in pts][::-1]
    vals = [p[1] for p in pts][::-1]
    bars = ax.barh(names, vals, color="#3b75af")
    ax.axvline(1.0, color="#c44e52", linewidth=1.2, linestyle="--")
    for b, v in zip(bars, vals):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v:.2f}x", va="center", fontsize=9)
    lo, hi = min(vals + [1.0]), max(vals + [1.0])
    if hi / max(lo, 1e-9) > 30:
        # ratios over orders of magnitude: a log scale keeps the small ones visible
        ax.set_xscale("log")
        ax.set_xlim(lo / 2, hi * 4)
    else:
        ax.set_xlim(0, hi * 1.18)
    ax.set_xlabel(f"{header[col]} — {meaning}", fontsize=8, wrap=True)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def previous_sections():
    """Each part's section of the report as it stands (by the command it names), to keep
    the parts a partial run did not rerun."""
    if not OUT.exists():
        return {}
    kept, text = {}, OUT.read_text()
    chunks = re.split(r"(?m)^(?=## )", text)
    for part, (_, command, _) in PARTS.items():
        for c in chunks:
            if c.startswith("## ") and f"`{command}`" in c and "## Design measurements" not in c[:30]:
                kept[part] = c
    return kept


def main():
    CHARTS.mkdir(parents=True, exist_ok=True)
    cpu = sh("lscpu | sed -n 's/^Model name:[ \\t]*//p'") or platform.processor()
    cores = sh("nproc")
    mem = sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo")
    meta = {}
    if (DIR / "meta.json").exists():
        meta = json.loads((DIR / "meta.json").read_text())
    md = [
        "# Benchmarks",
        "",
        "Written by `scripts/bench-report.sh` (do not edit by hand): every criterion bench and",
        "its Python anchors (torch, safetensors, Pillow, pyarrow, polars, onnxruntime, FastAPI —",
        "installed by the script into the virtualenv `scripts/.venv/bench-report`) run one after",
        "the other in one go, on one machine, so each ratio compares figures from the same run.",
        "Figures are criterion's medians (anchors: medians of their own repeats); the tables are",
        "the benches' own output, and the README of each crate explains them.",
        "",
        f"- machine: {cpu}, {cores} CPUs, {mem}; {platform.system()} {platform.release()}",
        f"- date: {meta.get('date', datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}",
        f"- commit: `{meta.get('commit', sh('git rev-parse --short HEAD'))}`; rustc: {meta.get('rustc', sh('rustc --version'))}",
        f"- whole run: {meta.get('seconds', '?')} s",
        "",
        "Each chart plots the table's ratio column; the dashed line is parity (1.0x).",
        "",
    ]
    kept = previous_sections()
    for part, (section, command, specs) in PARTS.items():
        f = DIR / f"{part}.out"
        if not f.exists() and part in kept:
            # not run this time (a partial run on a machine without the other parts'
            # output): the section as the last report had it
            md += [kept[part].rstrip(), ""]
            continue
        md += [f"## {section}", ""]
        if not f.exists():
            md += [f"Not run: `{command}` failed or was skipped (see the script's output).", ""]
            continue
        found = tables(f.read_text(errors="replace"))
        if not found:
            md += [f"`{command}` printed no table.", ""]
            continue
        ran = datetime.datetime.fromtimestamp(f.stat().st_mtime, datetime.timezone.utc)
        md += [f"`{command}` (finished {ran.strftime('%Y-%m-%d %H:%M UTC')})", ""]
        for n, (title, header, rows, notes) in enumerate(found):
            if title:
                md += [title.replace("\n", "  \n"), ""]
            md.append("| " + " | ".join(header) + " |")
            md.append("|" + "---|" * len(header))
            md += ["| " + " | ".join(r) + " |" for r in rows]
            md.append("")
            if notes:
                md += [n_ + "  " for n_ in notes] + [""]
            for ratio_col, labels, meaning in specs:
                if ratio_col not in header or n > 0:
                    continue
                png = CHARTS / f"{part}.png"
                if chart(png, section, header, rows, header.index(ratio_col), labels, meaning):
                    md += [f"![{section}]({png.as_posix()})", ""]
    # hand-kept design measurements (moved out of the code's doc comments)
    history = CHARTS / "history.md"
    if history.exists():
        md += ["", history.read_text().rstrip()]
    OUT.write_text("\n".join(md).rstrip() + "\n")
    print(f"wrote {OUT} and charts in {CHARTS}/")


main()
