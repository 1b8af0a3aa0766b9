"""PyTorch's single-threaded sgemm on 2048x2048x2048 f32: the peak the native backend's
GEMM is measured against (benches/gemm.rs). Writes target/bench-data/anchors-gemm.json
(median of 10 after 3 warm-ups)."""
import json
import pathlib
import statistics
import time

import torch

torch.set_num_threads(1)
a = torch.randn(2048, 2048)
b = torch.randn(2048, 2048)
for _ in range(3):
    a @ b
times = []
for _ in range(10):
    t = time.perf_counter()
    a @ b
    times.append(time.perf_counter() - t)
gflops = 2 * 2048**3 / statistics.median(times) / 1e9
print(f"PyTorch {torch.__version__} sgemm 2048^3, 1 thread: {gflops:.1f} GFLOP/s")
d = pathlib.Path(__file__).resolve().parent.parent.parent / "target" / "bench-data"
d.mkdir(parents=True, exist_ok=True)
(d / "anchors-gemm.json").write_text(json.dumps({"torch": torch.__version__, "torch_sgemm_2048_gflops": gflops}, indent=1))
