#!/usr/bin/env bash
# tract vs onnxruntime on EfficientNet-Lite0, in one run on one machine: exports the model
# if absent (torch, in its own virtualenv), times onnxruntime (scripts/anchors/onnx.py), then
# the criterion bench. Extra arguments go to criterion.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f .cache/models/efficientnet-lite0/efficientnet-lite0.onnx ]; then
  scripts/pyvenv.sh onnx-export torch efficientnet-lite-pytorch==0.1.0 onnx onnxscript onnxruntime numpy -- scripts/export_efficientnet_onnx.py
fi
scripts/pyvenv.sh onnx-anchor onnxruntime numpy -- scripts/anchors/onnx.py
cargo bench --bench infer -- "$@"
