#!/usr/bin/env bash
# The native CPU backend and the two ONNX backends (tract; onnxruntime through the ort crate)
# against onnxruntime's Python API and PyTorch, in one run on one machine: exports
# EfficientNet-Lite0 to ONNX if absent (torch, in its own virtualenv), times onnxruntime and
# PyTorch (scripts/anchors/models.py, which also exports MiniLM and the held-back transformer
# to ONNX once), then runs the criterion bench, which prints the tables. The ort backend
# loads the very libonnxruntime the Python anchor ran.
# Extra arguments go to criterion. Run it on a quiet machine: nothing else on the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-models.sh
if [ ! -f .cache/models/efficientnet-lite0/efficientnet-lite0.onnx ]; then
  scripts/pyvenv.sh onnx-export torch efficientnet-lite-pytorch==0.1.0 onnx onnxscript onnxruntime numpy -- scripts/export_efficientnet_onnx.py
fi
scripts/pyvenv.sh anchors-models torch efficientnet-lite-pytorch==0.1.0 onnx onnxscript onnxruntime numpy transformers sentence-transformers pillow -- scripts/anchors/models.py
ORT_DYLIB_PATH=$(ls scripts/.venv/anchors-models/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -1)
export ORT_DYLIB_PATH
cargo bench --bench infer -- "$@"
