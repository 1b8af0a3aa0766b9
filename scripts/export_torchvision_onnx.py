"""Exports torchvision's MobileNetV3-Small and ResNet (BasicBlock) and PyTorch recurrent
models to ONNX as users export them — symbolic batch for the vision models, symbolic batch
and time for the recurrent ones — with onnxruntime's outputs at two shapes each: the
fixtures of issue 21's "dynamic shapes work for real exported models".

Run: scripts/pyvenv.sh onnx-export torch torchvision onnx onnxscript onnxruntime numpy -- scripts/export_torchvision_onnx.py

Weights are torchvision's initialisation under a fixed seed (no download), each tensor
rounded to a power-of-two step near 1/16 of its spread so that git stores them compressed
(the 19 MB ResNet in ~7 MB); batch norms get random scales and shifts and running statistics
measured on random inputs (with torchvision's initial ones the activations vanish through
the depth and every input gives the same logits). To keep the fixtures small the classifiers
have 10 classes, the images are 128×128 (the models pool adaptively; users' 224 makes the
same graph) and the ResNet has one BasicBlock per stage (torchvision's
`ResNet(BasicBlock, [1, 1, 1, 1])`: ResNet-18's blocks, half its depth).

Writes tests/fixtures/onnx/exports/:
  mobilenet_v3_small.onnx  torchvision.models.mobilenet_v3_small(num_classes=10), "x" [n, 3, 128, 128]
  resnet.onnx              torchvision ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10), "x" [n, 3, 128, 128]
  lstm.onnx                nn.LSTM(16, 32, num_layers=2, batch_first=True) + Linear, "x" [n, t, 16]
  gru_bidirectional.onnx   nn.GRU(16, 24, bidirectional=True, batch_first=True), "x" [n, t, 16]
  *.npy                    inputs and onnxruntime's outputs at two shapes each
  exports.json             the cases (the tests read it)
"""
import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/onnx/exports"
OUT.mkdir(parents=True, exist_ok=True)
torch.manual_seed(2112)
rng = np.random.default_rng(2112)


def calibrated(model, shape):
    """`model` with rounded weights, random batch-norm scales and shifts, and running
    statistics measured on random inputs (as training leaves them: activations keep their
    scale through the depth, where torchvision's initial statistics let them vanish)."""
    # every weight tensor rounded to a step of a power of two near 1/16 of its spread: near
    # the same distribution (5 bits a weight), and files that git stores compressed
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() > 1 and float(p.std()) > 0:
                step = 2.0 ** round(float(torch.log2(p.std() / 16)))
                p.copy_(torch.round(p / step) * step)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.momentum = None  # running statistics: the plain average of the batches seen
                m.reset_running_stats()
        model.train()
        for _ in range(2):
            model(torch.randn(8, *shape[1:]))
    return model.eval()


class Recurrent(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        if kind == "lstm":
            self.rnn = nn.LSTM(16, 32, num_layers=2, batch_first=True)
            self.head = nn.Linear(32, 8)
        else:
            self.rnn = nn.GRU(16, 24, bidirectional=True, batch_first=True)
            self.head = None

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y) if self.head is not None else y


MODELS = [
    ("mobilenet_v3_small", calibrated(torchvision.models.mobilenet_v3_small(num_classes=10), (2, 3, 128, 128)),
     (2, 3, 128, 128), {0: "n"}, [(1, 3, 128, 128), (3, 3, 128, 128)]),
    ("resnet", calibrated(ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10), (2, 3, 128, 128)),
     (2, 3, 128, 128), {0: "n"}, [(1, 3, 128, 128), (3, 3, 128, 128)]),
    ("lstm", Recurrent("lstm"), (2, 5, 16), {0: "n", 1: "t"}, [(1, 7, 16), (3, 12, 16)]),
    ("gru_bidirectional", Recurrent("gru"), (2, 5, 16), {0: "n", 1: "t"}, [(1, 7, 16), (3, 12, 16)]),
]

cases = []
for name, model, example, axes, shapes in MODELS:
    model = model.eval()
    path = OUT / f"{name}.onnx"
    out_axes = {0: "n"} if len(example) == 4 else {0: "n", 1: "t"}
    # torch's TorchScript exporter, as most exports in the field are made (torch's dynamo
    # exporter writes these models too; the recurrent layers as ONNX LSTM/GRU either way)
    torch.onnx.export(model, (torch.randn(*example),), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": axes, "y": out_axes}, opset_version=17, dynamo=False)
    onnx.checker.check_model(onnx.load(str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        y = sess.run(None, {"x": x})[0]
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        diff = float(np.abs(y - ref).max())
        assert diff < 1e-4, (name, shape, diff)
        tag = "x".join(str(d) for d in shape[:2])
        np.save(OUT / f"{name}.{tag}.x.npy", x)
        np.save(OUT / f"{name}.{tag}.y.npy", y)
        cases.append({"model": f"{name}.onnx", "inputs": {"x": f"{name}.{tag}.x.npy"},
                      "outputs": {"y": f"{name}.{tag}.y.npy"}, "torch_max_abs_diff": diff})
    print(name, path.stat().st_size // 1024, "KiB")

(OUT / "exports.json").write_text(json.dumps({
    "torch": torch.__version__, "torchvision": torchvision.__version__, "onnx": onnx.__version__,
    "onnxruntime": ort.__version__, "cases": cases}, indent=1) + "\n")
