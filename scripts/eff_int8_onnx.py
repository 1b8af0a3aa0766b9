"""onnxruntime's static int8 EfficientNet-Lite0 (issue 22's anchor), and the ImageNet
preprocessing both anchor scripts share.

`make()` quantizes the f32 export (.cache/models/efficientnet-lite0/efficientnet-lite0.onnx,
from scripts/export_efficientnet_onnx.py) with `onnxruntime.quantization.quantize_static`:
QDQ format, int8 weights per output channel, uint8 activations, percentile calibration
(onnxruntime's 99.999) on the same calibration set as inferkit's `quantize
efficientnet-lite0`: the bundled photos (assets/images), each at three resizes (shorter
side 224, 256, 320, centre crop 224) and mirrored. Used by scripts/anchors/models.py
(timing) and scripts/int8_accuracy.py (agreement on 1,000 photos).
"""
import pathlib

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
EFF_ONNX = ROOT / ".cache/models/efficientnet-lite0/efficientnet-lite0.onnx"
EFF_INT8_ONNX = ROOT / ".cache/models/efficientnet-lite0/efficientnet-lite0.int8-qdq.onnx"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess(path, side=256, mirror=False):
    """torchvision's Resize(side) (bilinear, antialiased) + CenterCrop(224) + Normalize, as
    a [3, 224, 224] float32 array."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = side / min(w, h)
    img = img.resize((max(side, round(w * s)), max(side, round(h * s))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - 224) // 2, (h - 224) // 2
    img = img.crop((left, top, left + 224, top + 224))
    if mirror:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    x = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
    return x.transpose(2, 0, 1).copy()


def calibration_set():
    photos = sorted(p for p in (ROOT / "assets/images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [preprocess(p, side, mirror) for p in photos for side in (224, 256, 320) for mirror in (False, True)]


def make():
    """Makes EFF_INT8_ONNX from EFF_INT8's f32 export, once; returns its path."""
    if EFF_INT8_ONNX.exists():
        return EFF_INT8_ONNX
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter({"images": x[None]} for x in calibration_set())

        def get_next(self):
            return next(self.items, None)

    pre = EFF_INT8_ONNX.with_suffix(".pre.onnx")
    quant_pre_process(str(EFF_ONNX), str(pre))
    quantize_static(
        str(pre),
        str(EFF_INT8_ONNX),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.Percentile,
    )
    pre.unlink()
    return EFF_INT8_ONNX
