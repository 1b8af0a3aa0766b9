"""Exports the bundled EfficientNet-Lite0 checkpoint to ONNX, with onnxruntime's logits.

Run: scripts/pyvenv.sh onnx-export torch efficientnet-lite-pytorch==0.1.0 onnx onnxscript onnxruntime numpy -- scripts/export_efficientnet_onnx.py

Too large to commit (~19 MB): writes into the ignored model cache
.cache/models/efficientnet-lite0/:
  efficientnet-lite0.onnx        dynamic batch ("batch"), input "images" [batch, 3, 224, 224]
  efficientnet-lite0.input.npy   a fixed pseudo-random batch of 2 (seeded)
  efficientnet-lite0.logits.npy  onnxruntime's logits for it (the reference, <= 1e-4)
tests/infer_efficientnet.rs runs when these exist; benches/infer.rs times tract on it.
"""
import os
import pathlib

import numpy as np
import onnxruntime as ort
import torch
from efficientnet_lite_pytorch import EfficientNet

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / ".cache" / "models" / "efficientnet-lite0"
OUT.mkdir(parents=True, exist_ok=True)
weights = ROOT / "assets" / "models" / "efficientnet-lite0.pth"

model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
model.eval()
# Not `set_swish`: in this package it replaces the Lite models' ReLU6 with Swish (a
# different model); ReLU6 traces to ONNX as it is.
x = torch.from_numpy(np.random.default_rng(20261127).standard_normal((2, 3, 224, 224)).astype(np.float32))
path = OUT / "efficientnet-lite0.onnx"
torch.onnx.export(
    model,
    (x,),
    str(path),
    input_names=["images"],
    output_names=["logits"],
    dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
    opset_version=13,
    dynamo=False,
)
with torch.no_grad():
    torch_logits = model(x).numpy()
sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
logits = sess.run(None, {"images": x.numpy()})[0]
print("onnxruntime vs torch max |diff|:", float(np.abs(logits - torch_logits).max()))
np.save(OUT / "efficientnet-lite0.input.npy", x.numpy())
np.save(OUT / "efficientnet-lite0.logits.npy", logits)
print("wrote", path, os.path.getsize(path), "bytes")
