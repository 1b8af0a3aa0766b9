"""onnxruntime on EfficientNet-Lite0 (exported by scripts/export_efficientnet_onnx.py), one
thread, batch 1 and 32: the anchor benches/infer.rs compares tract with. Writes
target/bench-data/anchors-onnx.json (medians of 30 / 10 runs after warm-up)."""
import json
import pathlib
import platform
import statistics
import time

import numpy as np
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
model = ROOT / ".cache" / "models" / "efficientnet-lite0" / "efficientnet-lite0.onnx"
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
opts.inter_op_num_threads = 1
sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
out = {"onnxruntime": ort.__version__, "python": platform.python_version()}
for batch, runs in ((1, 30), (32, 10)):
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    for _ in range(3):
        sess.run(None, {"images": x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {"images": x})
        times.append(time.perf_counter() - t)
    out[f"ort_b{batch}_s"] = statistics.median(times)
    print(f"onnxruntime batch {batch}: {statistics.median(times) * 1e3:.2f} ms ({batch / statistics.median(times):.1f} img/s)")
d = ROOT / "target" / "bench-data"
d.mkdir(parents=True, exist_ok=True)
(d / "anchors-onnx.json").write_text(json.dumps(out, indent=1))
