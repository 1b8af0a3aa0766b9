"""What both image anchors of scripts/load-serve.sh do per request, written as their docs and
tutorials show: Pillow decodes the photo (EXIF orientation applied, as inferkit-serve does),
resizes the shorter side to 256 (bilinear), crops the centre 224x224, normalises with
ImageNet's mean and std into NCHW float32; onnxruntime runs EfficientNet-Lite0 (default
session options: intra-op threads = the cores); the answer is the top 5 as Triton's
classification strings ("score:index:label"), what inferkit-serve answers for
`class_count=5`.
"""
import io
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent.parent
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
LABELS = (ROOT / "examples/model_repository/efficientnet_lite0/labels.txt").read_text().splitlines()


def preprocess(data: bytes) -> np.ndarray:
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    w, h = im.size
    nw, nh = (256, round(256 * h / w)) if w <= h else (round(256 * w / h), 256)
    im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - 224) // 2, (nh - 224) // 2
    im = im.crop((left, top, left + 224, top + 224))
    a = (np.asarray(im, np.float32) / 255 - MEAN) / STD
    return np.ascontiguousarray(a.transpose(2, 0, 1))[None]


class Classifier:
    def __init__(self, model_path: str):
        self.session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def top5(self, data: bytes) -> list[str]:
        (logits,) = self.session.run(None, {self.input: preprocess(data)})
        row = logits[0]
        best = np.argsort(-row)[:5]
        return [f"{row[i]:.6f}:{i}:{LABELS[i]}" for i in best]
