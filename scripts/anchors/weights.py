"""Python anchors for benches/weights.rs, measured on the same files in the same run.

Run through scripts/bench-weights.sh (which makes the virtualenv and the checkpoint):
  - torch.load(weights_only=True) of the generated 1.3 GB checkpoint saved by torch.save
    (the .pt is written here once, next to the safetensors file the bench generates);
  - safetensors.torch.load_file of the safetensors file (mmap, lazy);
  - torch.load(weights_only=True) of the bundled legacy EfficientNet-Lite0 checkpoint.
Each is timed warm (the files are read once first), several times; the median is written to
target/bench-data/anchors-weights.json.
"""

import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "bench-data"
ST = DATA / "mixed-1.3g.safetensors"
PT = DATA / "mixed-1.3g.pt"
EFF = ROOT / "assets" / "models" / "efficientnet-lite0.pth"


def median_time(fn, runs):
    fn()  # warm: page cache, lazy imports
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        del out
    return statistics.median(times), times


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    if not ST.exists():
        sys.exit(f"{ST} is missing: run `cargo bench --bench weights -- --list` first (it generates it)")
    torch.set_num_threads(1)
    if not PT.exists():
        torch.save(load_file(ST), PT)
    res = {}
    res["torch_load_pt_s"], res["torch_load_pt_runs"] = median_time(lambda: torch.load(PT, weights_only=True), 5)
    res["safetensors_load_file_s"], res["safetensors_load_file_runs"] = median_time(lambda: load_file(ST), 10)
    res["torch_load_efficientnet_s"], res["torch_load_efficientnet_runs"] = median_time(lambda: torch.load(EFF, weights_only=True), 20)
    res["machine"] = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__}
    res["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    (DATA / "anchors-weights.json").write_text(json.dumps(res, indent=1) + "\n")
    for k in ("torch_load_pt_s", "safetensors_load_file_s", "torch_load_efficientnet_s"):
        print(f"{k}: {res[k] * 1e3:.2f} ms (median)")


if __name__ == "__main__":
    main()
