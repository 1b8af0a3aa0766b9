"""Generates the committed image fixtures and their Pillow/torchvision references.

    scripts/pyvenv.sh images torch torchvision pillow scikit-image numpy -- scripts/make_image_fixtures.py

Photos are scikit-image's bundled samples (public domain / CC0; see assets/images/README.md).

Writes
  assets/images/{chelsea,coffee,astronaut,rocket}.jpg      bundled photos (baseline JPEG, q90)
  tests/fixtures/images/<case>.<ext>                       every decoding case (see CASES)
  tests/fixtures/images/<case>.ref.npy                     uint8 HWC 224x224x3: Pillow open,
        EXIF transpose, convert('RGB'), torchvision Resize(256) + CenterCrop(224) — exactly
        what ToTensor consumes, so the normalised reference is ref/255 then ImageNet mean/std
  tests/fixtures/images/<case>.decoded.npy                 uint8 HWC of Pillow's full decode
        (after EXIF transpose and convert('RGB')), every 4th row and column (for decode tests)
  tests/fixtures/images/chelsea.torchvision.npy            float32 CHW: the full torchvision
        pipeline on chelsea.jpg, to check the equivalence above
  tests/fixtures/images/cases.json                         case -> {file, width, height, mode,
        error (the expected failure, or null)}
"""

import io
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import skimage.data as data
import torch
import torchvision.transforms as T
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "images"
ASSETS = ROOT / "assets" / "images"
PIPE = T.Compose([T.Resize(256), T.CenterCrop(224)])
NORM = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


def rgb(name):
    return Image.fromarray(getattr(data, name)())


def jpeg(img, **kw):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=kw.pop("quality", 90), **kw)
    return buf.getvalue()


def encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def with_exif_orientation(img, orientation):
    """Stores `img` so that a viewer applying EXIF `orientation` shows it upright."""
    inverse = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_270}[orientation]
    stored = img.transpose(inverse)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg(stored, exif=exif.tobytes())


def wide(width, height):
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    a = np.concatenate([np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1)),
                        np.broadcast_to((x + y) / 2, (height, width, 1))], axis=2)
    return Image.fromarray(a.astype(np.uint8))


def ycck_jpeg(img):
    """A YCCK JPEG (Adobe APP14 transform 2), which Pillow cannot write: ImageMagick's
    `convert -colorspace CMYK` does (Debian package imagemagick). None when it is missing;
    the committed fixture is then kept."""
    if shutil.which("convert") is None or b"ImageMagick" not in subprocess.run(["convert", "-version"], capture_output=True).stdout:
        existing = OUT / "chelsea_ycck.jpg"
        return existing.read_bytes() if existing.exists() else None
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.png", Path(d) / "out.jpg"
        img.save(src)
        subprocess.run(["convert", str(src), "-colorspace", "CMYK", "-quality", "90", str(dst)], check=True)
        data = dst.read_bytes()
    i = data.find(b"Adobe")
    assert i >= 0 and data[i + 11] == 2, "expected an Adobe APP14 marker with transform 2 (YCCK)"
    return data


def patch_sof(jpg, height, width):
    """Rewrites the frame header's dimensions (a decompression bomb's header)."""
    b = bytearray(jpg)
    i = 2
    while i < len(b):
        marker, length = b[i + 1], int.from_bytes(b[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            b[i + 5:i + 7] = height.to_bytes(2, "big")
            b[i + 7:i + 9] = width.to_bytes(2, "big")
            return bytes(b)
        i += 2 + length
    raise ValueError("no SOF")


def cases():
    chelsea, coffee, astronaut, rocket = rgb("chelsea"), rgb("coffee"), rgb("astronaut"), rgb("rocket")
    camera = Image.fromarray(data.camera())
    c = {}
    for name, img in [("chelsea", chelsea), ("coffee", coffee), ("astronaut", astronaut), ("rocket", rocket),
                      ("hubble", rgb("hubble_deep_field")), ("retina", rgb("retina"))]:
        c[f"{name}_baseline.jpg"] = jpeg(img)
        c[f"{name}_progressive.jpg"] = jpeg(img, progressive=True)
    c["coffee_444.jpg"] = jpeg(coffee, subsampling=0)
    c["coffee_422.jpg"] = jpeg(coffee, subsampling=1)
    c["rocket_progressive_restart.jpg"] = jpeg(rocket, progressive=True, restart_marker_blocks=7)
    c["astronaut_restart_rows.jpg"] = jpeg(astronaut, restart_marker_rows=2)
    c["camera_grey.jpg"] = jpeg(camera)
    c["camera_grey_progressive.jpg"] = jpeg(camera, progressive=True)
    c["chelsea_cmyk.jpg"] = jpeg(chelsea.convert("CMYK"))  # Adobe APP14 transform 0: inverted CMYK
    ycck = ycck_jpeg(chelsea)
    if ycck is not None:
        c["chelsea_ycck.jpg"] = ycck
    for o in (3, 6, 8):
        c[f"chelsea_exif{o}.jpg"] = with_exif_orientation(chelsea, o)
    c["colorwheel.png"] = encode(rgb("colorwheel"), "PNG")
    c["camera_grey.png"] = encode(camera, "PNG")
    c["camera_16bit.png"] = encode(Image.fromarray((data.camera().astype(np.uint16) * 257)), "PNG")
    c["astronaut_rgba.png"] = encode(astronaut.convert("RGBA"), "PNG")
    c["coffee.webp"] = encode(coffee, "WEBP", quality=90)
    c["colorwheel.gif"] = encode(rgb("colorwheel"), "GIF")
    c["chelsea.bmp"] = encode(chelsea, "BMP")
    c["rocket.tiff"] = encode(rocket, "TIFF")
    c["wide_16400.jpg"] = jpeg(wide(16400, 24))
    c["wide_16400.png"] = encode(wide(16400, 24), "PNG")
    # Failures: (bytes, expected error class)
    base = c["chelsea_baseline.jpg"]
    fails = {
        "truncated.jpg": (base[: len(base) // 2], "truncated"),
        "zero_bytes.jpg": (b"", "empty"),
        "not_an_image.jpg": (b"this is plain text, not a JPEG\n" * 4, "unknown format"),
        "bomb.jpg": (patch_sof(base, 60000, 60000), "pixel limit"),
        "corrupt_header.png": (c["colorwheel.png"][:40] + b"\x00" * 40, "corrupt"),
    }
    return c, fails


def reference(img_bytes):
    img = Image.open(io.BytesIO(img_bytes))
    if img.mode in ("I;16", "I;16B", "I"):
        # Pillow's convert('RGB') clips 16-bit samples at 255 (a white image); the right
        # pixels are the high byte, what torchvision's read_image + ConvertImageDtype gives.
        img = Image.fromarray((np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8))
    img = ImageOps.exif_transpose(img).convert("RGB")
    return img, np.asarray(PIPE(img))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    ASSETS.mkdir(parents=True, exist_ok=True)
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        (ASSETS / f"{name}.jpg").write_bytes(jpeg(rgb(name)))
    good, fails = cases()
    meta = {}
    for name, b in good.items():
        (OUT / name).write_bytes(b)
        img, ref = reference(b)
        stem = name.rsplit(".", 1)[0] + "_" + name.rsplit(".", 1)[1]
        if img.width * img.height < 5_000_000 and min(img.size) >= 24 and max(img.size) < 10000:
            np.save(OUT / f"{stem}.ref.npy", ref)
        np.save(OUT / f"{stem}.decoded.npy", np.asarray(img)[::4, ::4])
        mode = Image.open(io.BytesIO(b)).mode
        meta[name] = {"stem": stem, "width": img.width, "height": img.height, "mode": mode, "error": None}
    for name, (b, err) in fails.items():
        (OUT / name).write_bytes(b)
        meta[name] = {"stem": None, "width": None, "height": None, "mode": None, "error": err}
    chelsea = Image.open(OUT / "chelsea_baseline.jpg").convert("RGB")
    np.save(OUT / "chelsea.torchvision.npy", NORM(PIPE(chelsea)).numpy())
    (OUT / "cases.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    print(f"{len(good)} images and {len(fails)} failure cases written to {OUT}")


if __name__ == "__main__":
    main()
