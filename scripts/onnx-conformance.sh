#!/usr/bin/env bash
# ONNX's backend node tests through inferkit's two ONNX backends (run_onnx --backend tract|ort)
# and onnxruntime's Python API, per operator:
# writes docs/onnx-conformance.md (see scripts/onnx_conformance.py). A few minutes here.
# `run_onnx` is the dev-profile build that `cargo test` makes (dependencies optimised; the
# answers are the release build's), which CI's gate runs too.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --example run_onnx
scripts/pyvenv.sh onnx-conformance onnx==1.23.2 onnxruntime==1.32.0 numpy -- scripts/onnx_conformance.py \
  target/debug/examples/run_onnx docs/onnx-conformance.md
