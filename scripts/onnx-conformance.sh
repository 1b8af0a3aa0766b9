#!/usr/bin/env bash
# ONNX's backend node tests through inferkit's ONNX backend and onnxruntime, per operator:
# writes docs/onnx-conformance.md (see scripts/onnx_conformance.py). A few minutes here.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --example run_onnx
scripts/pyvenv.sh onnx-conformance onnx onnxruntime numpy -- scripts/onnx_conformance.py \
  target/release/examples/run_onnx docs/onnx-conformance.md
