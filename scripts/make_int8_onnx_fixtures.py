"""ONNX models quantized by onnxruntime.quantization, as users quantize them (issue 22's "ONNX
int8"), with onnxruntime's outputs: the ONNX backends must run each and match.

Run: scripts/pyvenv.sh anchors-models torch onnx onnxscript onnxruntime numpy -- scripts/make_int8_onnx_fixtures.py

Small PyTorch models, exported with torch.onnx.export (symbolic batch), then quantized:
  cnn      conv 3×3 stride 2 + ReLU6, depthwise 3×3 + ReLU6, pointwise 1×1 + ReLU, conv 3×3
           stride 2, flatten, a matrix product (EfficientNet-Lite's kinds of layer; no
           residual Add or pooling, which QOperator would make com.microsoft ops) on
           [n, 3, 16, 16] → [n, 10]
  mlp      two matrix products with GELU between, on [n, 8, 32] (a transformer's FFN)
  block    a residual block with squeeze-and-excitation (global average pool, 1×1 convs,
           sigmoid gate, multiply, residual add) and a pooled head, on [n, 3, 16, 16]
  classifier  conv + ReLU, AdaptiveAvgPool2d(1), Linear (torchvision's head), on [n, 3, 16, 16]
Quantized:
  cnn.qdq.onnx      quantize_static, QDQ format (QuantizeLinear/DequantizeLinear around f32
                    ops), per-channel int8 weights, uint8 activations, MinMax calibration on
                    16 random batches
  cnn.qop.onnx      the same in QOperator format: QLinearConv, QLinearMatMul
  mlp.dynamic.onnx  quantize_dynamic (MatMulInteger + DynamicQuantizeLinear), per-channel
  mlp.qop.onnx      quantize_static QOperator on the MLP: QLinearMatMul, and onnxruntime's
                    QLinearAdd and QLinearMul (com.microsoft)
  block.qop.onnx    quantize_static QOperator on the block: QLinearConv and onnxruntime's
                    QLinearSigmoid, QLinearMul, QLinearAdd
  classifier.qop.onnx  the same on the classifier: onnxruntime's QLinearGlobalAveragePool and
                    QGemm
Writes tests/fixtures/onnx/int8/*.onnx, each case's input and onnxruntime's output (.npy, at
batch 1 and 3) and int8.json (the cases, each with the ops the quantized model uses).
"""
import collections
import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                      quantize_static)
from torch import nn

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/onnx/int8"
OUT.mkdir(parents=True, exist_ok=True)
torch.manual_seed(22)
rng = np.random.default_rng(22)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(16, 24, 1)
        self.down = nn.Conv2d(24, 8, 3, stride=2, padding=1)
        self.head = nn.Parameter(torch.randn(8 * 4 * 4, 10) * 0.1)

    def forward(self, x):
        x = torch.clamp(self.stem(x), 0, 6)
        x = torch.clamp(self.dw(x), 0, 6)
        x = torch.relu(self.pw(x))
        x = self.down(x)
        return torch.matmul(x.flatten(1), self.head)


class Block(nn.Module):
    """A residual block with squeeze-and-excitation: what QOperator turns into onnxruntime's
    contrib ops (QLinearAdd, QLinearMul, QLinearSigmoid, QLinearGlobalAveragePool)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.conv = nn.Conv2d(16, 16, 3, padding=1)
        self.squeeze = nn.Conv2d(16, 4, 1)
        self.excite = nn.Conv2d(4, 16, 1)
        self.head = nn.Parameter(torch.randn(16, 10) * 0.1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        y = self.conv(x)
        s = torch.sigmoid(self.excite(torch.relu(self.squeeze(y.mean((2, 3), keepdim=True)))))
        x = torch.relu(x + y * s)
        return torch.matmul(x.mean((2, 3)), self.head)


class Classifier(nn.Module):
    """torchvision's classifier shape: global average pool and a Linear head (QOperator:
    onnxruntime's QLinearGlobalAveragePool and QGemm)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(32, 64)
        self.down = nn.Linear(64, 32)

    def forward(self, x):
        return self.down(nn.functional.gelu(self.up(x)))


def export(model, x, path, axes):
    torch.onnx.export(model.eval(), (torch.from_numpy(x),), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": axes, "y": {0: "n"}}, opset_version=17, dynamo=False)


class Reader(CalibrationDataReader):
    def __init__(self, shape):
        self.batches = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(16)])

    def get_next(self):
        return next(self.batches, None)


def ops(path):
    return sorted(collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node))


cases = []


def record(name, shapes):
    session = ort.InferenceSession(str(OUT / name), providers=["CPUExecutionProvider"])
    for shape in shapes:
        tag = "x".join(map(str, shape))
        stem = name.removesuffix(".onnx")
        x = rng.standard_normal(shape).astype(np.float32)
        y = session.run(None, {"x": x})[0]
        np.save(OUT / f"{stem}.{tag}.x.npy", x)
        np.save(OUT / f"{stem}.{tag}.y.npy", y)
        cases.append({"model": name, "ops": ops(OUT / name), "x": f"{stem}.{tag}.x.npy",
                      "y": f"{stem}.{tag}.y.npy"})


def static(stem, fmt, shape):
    """quantize_static of OUT/<stem>.onnx in `fmt` (per-channel int8 weights, uint8
    activations, calibrated on 16 random batches of `shape`), recorded at batch 1 and 3."""
    name = f"{stem}.{'qdq' if fmt == QuantFormat.QDQ else 'qop'}.onnx"
    quantize_static(str(OUT / f"{stem}.onnx"), str(OUT / name), Reader((2, *shape)), quant_format=fmt,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    record(name, [(1, *shape), (3, *shape)])


image = (3, 16, 16)
export(Cnn(), np.zeros((1, *image), np.float32), OUT / "cnn.onnx", {0: "n"})
static("cnn", QuantFormat.QDQ, image)
static("cnn", QuantFormat.QOperator, image)

export(Mlp(), np.zeros((1, 8, 32), np.float32), OUT / "mlp.onnx", {0: "n"})
quantize_dynamic(str(OUT / "mlp.onnx"), str(OUT / "mlp.dynamic.onnx"), weight_type=QuantType.QInt8,
                 per_channel=True)
record("mlp.dynamic.onnx", [(1, 8, 32), (3, 8, 32)])
static("mlp", QuantFormat.QOperator, (8, 32))

export(Block(), np.zeros((1, *image), np.float32), OUT / "block.onnx", {0: "n"})
static("block", QuantFormat.QOperator, image)

export(Classifier(), np.zeros((1, *image), np.float32), OUT / "classifier.onnx", {0: "n"})
static("classifier", QuantFormat.QOperator, image)

for f in ("cnn.onnx", "mlp.onnx", "block.onnx", "classifier.onnx"):
    (OUT / f).unlink()  # the f32 exports were only the quantizer's input
(OUT / "int8.json").write_text(json.dumps({
    "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__, "cases": cases,
}, indent=1) + "\n")
for c in cases:
    print(c["model"], c["x"], c["ops"])
