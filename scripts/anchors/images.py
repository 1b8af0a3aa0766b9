"""Pillow anchors for benches/preprocess.rs, on the same JPEGs, one thread.

Run through scripts/bench-images.sh. Measures, as medians of 9 warm runs over the set
(assets/images/*.jpg, then tests/fixtures/images/*_baseline.jpg and *_progressive.jpg,
each group sorted — the bench's own list):
  - decode: Image.open + load (libjpeg-turbo), megapixels/s of the source images;
  - ImageNet preprocessing: convert('RGB'), torchvision's Resize(256) arithmetic with
    Image.resize(BILINEAR), CenterCrop(224), numpy /255, mean/std, CHW;
  - the same with Image.draft('RGB', (256, 256)) first (DCT-domain downscaling).
Writes target/bench-data/anchors-images.json.
"""

import datetime
import io
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "bench-data"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def files():
    a = sorted((ROOT / "assets" / "images").glob("*.jpg"))
    fx = ROOT / "tests" / "fixtures" / "images"
    b = sorted(p for p in fx.glob("*.jpg") if p.name.endswith(("_baseline.jpg", "_progressive.jpg")))
    return a + b


def decode(data):
    for b in data:
        Image.open(io.BytesIO(b)).load()


def imagenet(data, draft=False):
    for b in data:
        im = Image.open(io.BytesIO(b))
        if draft:
            im.draft("RGB", (256, 256))
        im = im.convert("RGB")
        w, h = im.size
        nw, nh = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
        im = im.resize((nw, nh), Image.BILINEAR)
        left, top = int(round((nw - 224) / 2)), int(round((nh - 224) / 2))
        im = im.crop((left, top, left + 224, top + 224))
        a = (np.asarray(im, np.float32) / 255 - MEAN) / STD
        np.ascontiguousarray(a.transpose(2, 0, 1))


def median_s(fn, runs=9):
    fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main():
    DATA.mkdir(parents=True, exist_ok=True)
    paths = files()
    data = [p.read_bytes() for p in paths]
    mp = sum(w * h for w, h in (Image.open(io.BytesIO(b)).size for b in data)) / 1e6
    res = {
        "files": [str(p.relative_to(ROOT)) for p in paths],
        "megapixels": mp,
        "pillow_decode_mps": mp / median_s(lambda: decode(data)),
        "pillow_imagenet_mps": mp / median_s(lambda: imagenet(data)),
        "pillow_imagenet_draft_mps": mp / median_s(lambda: imagenet(data, True)),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "pillow": PIL.__version__},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    (DATA / "anchors-images.json").write_text(json.dumps(res, indent=1) + "\n")
    for k in ("pillow_decode_mps", "pillow_imagenet_mps", "pillow_imagenet_draft_mps"):
        print(f"{k}: {res[k]:.1f} MP/s")


if __name__ == "__main__":
    main()
