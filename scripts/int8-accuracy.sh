#!/usr/bin/env bash
# Issue 22's accuracy check of EfficientNet-Lite0 in int8 on photos not in the calibration
# set (the int8 checkpoint is calibrated on the four bundled photos only): classify_images in
# f32 and --int8, then scripts/int8_accuracy.py compares them, and onnxruntime's static int8
# with its f32 on the same photos. Writes target/bench-data/int8-accuracy.json.
#
#   scripts/int8-accuracy.sh [PHOTOS_DIR]
#
# Default photos: EliSchwartz/imagenet-sample-images on GitHub (one ImageNet validation-style
# photo per class, 1,000 JPEGs, the WordNet id in each name, so accuracy is reported too),
# cloned once into .cache/photos/imagenet-sample-images (not redistributed here: it carries
# no licence). Not part of CI (it needs GitHub).
set -euo pipefail
cd "$(dirname "$0")/.."
photos=${1:-.cache/photos/imagenet-sample-images}
if [ ! -d "$photos" ]; then
  mkdir -p "$(dirname "$photos")"
  git clone --depth 1 https://github.com/EliSchwartz/imagenet-sample-images "$photos"
fi
scripts/fetch-models.sh
if [ ! -f .cache/models/efficientnet-lite0/efficientnet-lite0.onnx ]; then
  scripts/pyvenv.sh onnx-export torch efficientnet-lite-pytorch==0.1.0 onnx onnxscript onnxruntime numpy -- scripts/export_efficientnet_onnx.py
fi
out=target/bench-data
mkdir -p "$out"
cargo build --release --quiet --example classify_images
./target/release/examples/classify_images "$photos" --out "$out/int8-accuracy-f32.csv" > /dev/null
./target/release/examples/classify_images "$photos" --int8 --out "$out/int8-accuracy-int8.csv" > /dev/null
scripts/pyvenv.sh anchors-models torch efficientnet-lite-pytorch==0.1.0 onnx onnxscript onnxruntime numpy transformers sentence-transformers pillow -- \
  scripts/int8_accuracy.py "$photos" "$out/int8-accuracy-f32.csv" "$out/int8-accuracy-int8.csv"
