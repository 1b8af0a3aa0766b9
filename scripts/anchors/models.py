"""onnxruntime and PyTorch on the two native models, one thread (and two), in one run: the
anchors benches/infer.rs compares the native CPU backend with.

Run through scripts/bench-infer.sh (its own virtualenv: torch, onnxruntime, onnx,
sentence-transformers, efficientnet-lite-pytorch). Exports, once, into .cache/models/:
EfficientNet-Lite0 to ONNX (scripts/export_efficientnet_onnx.py does that) and MiniLM to
ONNX (BERT encoder + mean pooling + L2 normalisation, dynamic batch and sequence).
Writes target/bench-data/anchors-models.json: medians after warm-up.

EfficientNet-Lite0: batch 1 (latency) and 32; MiniLM: batch 32 × 128 tokens, all real
tokens (the shape the issue names); a held-back transformer (PyTorch's nn.TransformerEncoder,
4 layers of width 256, random weights of a fixed seed, exported once with dynamic batch and
sequence: a model no part of inferkit was tuned on), batch 8 × 128, onnxruntime only.
MiniLM in int8 too: onnxruntime's `quantize_dynamic` of the export (QInt8 weights per
channel, made once into minilm-embed.int8.onnx: MatMulInteger + DynamicQuantizeLinear) and
PyTorch's `torch.ao.quantization.quantize_dynamic` on the model's `nn.Linear` layers.
EfficientNet-Lite0 in int8: onnxruntime's `quantize_static` (QDQ, weights per channel,
percentile calibration on the bundled photos: scripts/eff_int8_onnx.py, made once).
"""
import json
import pathlib
import platform
import statistics
import sys
import time

# this folder holds onnx.py (another anchor), which would shadow the onnx package
sys.path = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path(__file__).resolve().parent]

import numpy as np
import onnxruntime as ort
import torch

sys.path.append(str(pathlib.Path(__file__).resolve().parent.parent))
import eff_int8_onnx  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
CACHE = ROOT / ".cache" / "models"
EFF_ONNX = CACHE / "efficientnet-lite0" / "efficientnet-lite0.onnx"
MINILM = CACHE / "all-MiniLM-L6-v2"
MINILM_ONNX = MINILM / "minilm-embed.onnx"
# onnxruntime's own int8: quantize_dynamic of the export above (issue 22's anchor)
MINILM_INT8_ONNX = MINILM / "minilm-embed.int8.onnx"
HELDBACK_ONNX = CACHE / "heldback-transformer" / "transformer.onnx"


def median_time(f, runs, warm=3):
    for _ in range(warm):
        f()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class Embedder(torch.nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(e, p=2, dim=1)


def minilm_torch():
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(MINILM), attn_implementation="eager").eval()
    return Embedder(bert).eval()


def export_minilm(model):
    ids = torch.ones((2, 16), dtype=torch.int64)
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids)),
        str(MINILM_ONNX),
        input_names=["input_ids", "attention_mask"],
        output_names=["sentence_embedding"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "sentence_embedding": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )


def export_heldback():
    torch.manual_seed(20261207)
    layer = torch.nn.TransformerEncoderLayer(256, 4, dim_feedforward=1024, batch_first=True)
    model = torch.nn.TransformerEncoder(layer, 4, enable_nested_tensor=False).eval()
    HELDBACK_ONNX.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (torch.randn(2, 16, 256),),
        str(HELDBACK_ONNX),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch", 1: "sequence"}, "y": {0: "batch", 1: "sequence"}},
        opset_version=17,
        # torch's default exporter: the TorchScript one bakes the traced sequence length into
        # the attention's Reshape (tests/infer_onnx.rs, transformer_legacy)
        dynamo=True,
        external_data=False,
    )


def ort_session(path, threads):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def main():
    out = {
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": next(
            (l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
            platform.processor(),
        ),
    }
    rng = np.random.default_rng(0)
    # EfficientNet-Lite0
    from efficientnet_lite_pytorch import EfficientNet

    eff = EfficientNet.from_name("efficientnet-lite0")
    eff.load_state_dict(torch.load(ROOT / "assets/models/efficientnet-lite0.pth", weights_only=True))
    eff.eval()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        sess = ort_session(EFF_ONNX, threads)
        for batch, runs in ((1, 50), (32, 10)):
            if threads == 2 and batch == 1:
                continue
            x = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
            out[f"ort_eff_b{batch}_t{threads}_s"] = median_time(lambda: sess.run(None, {"images": x}), runs)
            xt = torch.from_numpy(x)
            with torch.inference_mode():
                out[f"torch_eff_b{batch}_t{threads}_s"] = median_time(lambda: eff(xt), runs)
    eff8 = eff_int8_onnx.make()
    for threads in (1, 2):
        sess = ort_session(eff8, threads)
        for batch, runs in ((1, 50), (32, 10)):
            if threads == 2 and batch == 1:
                continue
            x = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
            out[f"ort_eff_int8_b{batch}_t{threads}_s"] = median_time(lambda: sess.run(None, {"images": x}), runs)
    # MiniLM
    torch.set_num_threads(1)
    model = minilm_torch()
    if not MINILM_ONNX.exists():
        export_minilm(model)
    batch, seq = 32, 128
    ids = rng.integers(1000, 30000, size=(batch, seq), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = np.ones_like(ids)
    # and in int8: onnxruntime's quantize_dynamic and PyTorch's dynamic quantization
    if not MINILM_INT8_ONNX.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(MINILM_ONNX), str(MINILM_INT8_ONNX), weight_type=QuantType.QInt8, per_channel=True)
    model8 = torch.ao.quantization.quantize_dynamic(minilm_torch(), {torch.nn.Linear}, dtype=torch.qint8)
    feeds = {"input_ids": ids, "attention_mask": mask}
    it, mt = torch.from_numpy(ids), torch.from_numpy(mask)
    for tag, onnx_file, torch_model in (("", MINILM_ONNX, model), ("_int8", MINILM_INT8_ONNX, model8)):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            sess = ort_session(onnx_file, threads)
            out[f"ort_minilm{tag}_b{batch}_s{seq}_t{threads}_s"] = median_time(lambda: sess.run(None, feeds), 10)
            with torch.inference_mode():
                out[f"torch_minilm{tag}_b{batch}_s{seq}_t{threads}_s"] = median_time(
                    lambda: torch_model(it, mt), 10)
    # the held-back transformer
    if not HELDBACK_ONNX.exists():
        export_heldback()
    x = rng.standard_normal((8, 128, 256)).astype(np.float32)
    for threads in (1, 2):
        sess = ort_session(HELDBACK_ONNX, threads)
        out[f"ort_heldback_b8_s128_t{threads}_s"] = median_time(lambda: sess.run(None, {"x": x}), 20)
    for k, v in out.items():
        if k.endswith("_s"):
            print(f"{k}: {v * 1e3:.2f} ms")
    d = ROOT / "target" / "bench-data"
    d.mkdir(parents=True, exist_ok=True)
    (d / "anchors-models.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
