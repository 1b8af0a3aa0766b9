"""Reference outputs of the original PyTorch EfficientNet-Lite0 on the bundled photos, for
the native CPU backend's tests, and the ImageNet class names.

Run: scripts/pyvenv.sh model-fixtures torch torchvision pillow numpy efficientnet-lite-pytorch==0.1.0 -- scripts/make_model_fixtures.py

Writes:
  assets/imagenet_classes.txt                one label per line, class index order
                                             (torchvision's list, BSD-3-Clause)
  tests/fixtures/models/efficientnet_lite0.input.npy   N x 3 x 224 x 224 f32: the photos
      of assets/images/*.jpg (sorted) through torchvision Resize(256), CenterCrop(224),
      ToTensor, Normalize(ImageNet) on Pillow images: exactly the model's input
  tests/fixtures/models/efficientnet_lite0.logits.npy  N x 1000 f32 logits (eval mode)
  tests/fixtures/models/efficientnet_lite0.json        files, top-5 indices and labels
"""
import json
import pathlib

import numpy as np
import torch
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image
from torchvision import transforms
from torchvision.models._meta import _IMAGENET_CATEGORIES

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "models"
OUT.mkdir(parents=True, exist_ok=True)
(ROOT / "assets" / "imagenet_classes.txt").write_text("\n".join(_IMAGENET_CATEGORIES) + "\n")

model = EfficientNet.from_pretrained(
    "efficientnet-lite0", weights_path=str(ROOT / "assets" / "models" / "efficientnet-lite0.pth")
)
model.eval()
prep = transforms.Compose([
    transforms.Resize(256),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
])
files = sorted((ROOT / "assets" / "images").glob("*.jpg"))
x = torch.stack([prep(Image.open(f).convert("RGB")) for f in files])
with torch.no_grad():
    logits = model(x)
np.save(OUT / "efficientnet_lite0.input.npy", x.numpy())
np.save(OUT / "efficientnet_lite0.logits.npy", logits.numpy())
summary = []
for f, row in zip(files, logits):
    p = row.softmax(0)
    top = p.topk(5)
    summary.append({
        "file": f.name,
        "top5": [[int(i), _IMAGENET_CATEGORIES[int(i)], round(float(v), 6)] for v, i in zip(top.values, top.indices)],
    })
(OUT / "efficientnet_lite0.json").write_text(json.dumps({"torch": torch.__version__, "images": summary}, indent=1))
for s in summary:
    print(s["file"], s["top5"][0])
