#!/usr/bin/env bash
# GEMM crate choice for the native CPU backend: PyTorch's sgemm peak (its own virtualenv,
# torch CPU) then benches/gemm.rs, in one run on one machine. Extra arguments go to criterion.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/pyvenv.sh anchors-gemm torch -- scripts/anchors/gemm.py
cargo bench --bench gemm -- "$@"
