"""Writes the load test's request body: one bundled photo preprocessed as the ImageNet
preset (resize shorter side to 256, centre crop 224, mean/std) into a 1x3x224x224 FP32 input
in Open Inference Protocol JSON. Usage: python serve_body.py PHOTO OUT.json"""
import json
import sys

import numpy as np
from PIL import Image

img = Image.open(sys.argv[1]).convert("RGB")
w, h = img.size
s = 256 / min(w, h)
img = img.resize((round(w * s), round(h * s)), Image.BILINEAR)
w, h = img.size
left, top = (w - 224) // 2, (h - 224) // 2
img = img.crop((left, top, left + 224, top + 224))
x = np.asarray(img, dtype=np.float32) / 255.0
x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
x = x.transpose(2, 0, 1)[None].astype(np.float32)
body = {"inputs": [{"name": "images", "shape": list(x.shape), "datatype": "FP32",
                    "data": [float(v) for v in x.ravel()]}]}
with open(sys.argv[2], "w") as f:
    json.dump(body, f)
