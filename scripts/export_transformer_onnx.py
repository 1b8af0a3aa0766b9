"""Exports PyTorch transformer encoders to ONNX as a user would, with dynamic batch and
sequence axes, and onnxruntime's outputs at two shapes: the fixtures of the "any exported
model" tests (issue 21: tract failed to type these graphs with symbolic dims,
`Failed analyse for node /layers.0/self_attn/Reshape_4`).

Run: scripts/pyvenv.sh onnx-export torch onnx onnxscript onnxruntime numpy -- scripts/export_transformer_onnx.py

Writes tests/fixtures/onnx/:
  transformer.onnx       nn.TransformerEncoder, 2 layers, d_model 32, 4 heads, batch_first;
                         input "x" [n, t, 32], output "y" [n, t, 32]
  transformer_mask.onnx  the same encoder with a key padding mask: inputs "x" and "pad"
                         (bool [n, t], true = padding), output "y"
  transformer*.{n}x{t}.*.npy inputs and onnxruntime's outputs at (n, t) = (2, 5) and (3, 9)
and appends the cases to transformer.json (the test reads it).
"""
import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/onnx"
torch.manual_seed(21)
rng = np.random.default_rng(21)
SHAPES = [(2, 5), (3, 9)]


class Encoder(nn.Module):
    def __init__(self, masked):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, dropout=0.0,
                                           batch_first=True)
        self.enc = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.masked = masked

    def forward(self, x, pad=None):
        return self.enc(x, src_key_padding_mask=pad) if self.masked else self.enc(x)


cases = []
# torch's own default exporter (dynamo), then the TorchScript one (dynamo=False) whose trace of
# nn.MultiheadAttention bakes the export's sequence length into a Reshape: that model runs
# at t = 5 only, in onnxruntime too (it is kept to show the error is named, not a wrong answer)
MODELS = [("transformer", False, True), ("transformer_mask", True, True),
          ("transformer_legacy", False, False)]
for name, masked, dynamo in MODELS:
    model = Encoder(masked).eval()
    x = torch.from_numpy(rng.standard_normal((2, 5, 32)).astype(np.float32))
    args = (x,)
    names = ["x"]
    axes = {"x": {0: "n", 1: "t"}, "y": {0: "n", 1: "t"}}
    if masked:
        pad = torch.zeros(2, 5, dtype=torch.bool)
        pad[1, 3:] = True
        args = (x, pad)
        names = ["x", "pad"]
        axes["pad"] = {0: "n", 1: "t"}
    path = OUT / f"{name}.onnx"
    torch.onnx.export(model, args, str(path), input_names=names, output_names=["y"],
                      dynamic_axes=axes, opset_version=17, dynamo=dynamo, external_data=False)
    onnx.checker.check_model(onnx.load(str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n, t in SHAPES if dynamo else [(3, 5)]:
        feed = {"x": rng.standard_normal((n, t, 32)).astype(np.float32)}
        if masked:
            p = np.zeros((n, t), dtype=bool)
            p[-1, t // 2:] = True  # the last sequence padded from its middle on
            feed["pad"] = p
        y = sess.run(None, feed)[0]
        with torch.no_grad():
            ref = model(*[torch.from_numpy(feed[k]) for k in names]).numpy()
        # padded positions of a masked sequence are not compared with torch (its fast path
        # may zero them); onnxruntime's outputs are the reference
        keep = ~feed["pad"] if masked else np.ones((n, t), dtype=bool)
        diff = float(np.abs(y - ref)[keep].max())
        assert diff < 1e-4, (name, n, t, diff)
        files = {}
        for k, v in feed.items():
            f = f"{name}.{n}x{t}.{k}.npy"
            np.save(OUT / f, v)
            files[k] = f
        f = f"{name}.{n}x{t}.y.npy"
        np.save(OUT / f, y)
        cases.append({"model": f"{name}.onnx", "inputs": files, "outputs": {"y": f}})
        print(f"{name} {n}x{t}: onnxruntime vs torch max |diff| {diff:.2e}")
(OUT / "transformer.json").write_text(json.dumps({
    "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
    "cases": cases,
}, indent=1) + "\n")
