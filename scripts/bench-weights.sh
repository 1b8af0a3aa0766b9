#!/usr/bin/env bash
# The weights benchmark with its Python anchors, in one run on one machine:
#   1. the bench generates target/bench-data/mixed-1.3g.safetensors (1.34 GB, 65 tensors);
#   2. scripts/anchors/weights.py (own virtualenv: torch, safetensors) saves the same tensors
#      with torch.save and times torch.load(weights_only=True), safetensors.load_file and
#      torch.load of the bundled EfficientNet checkpoint;
#   3. the criterion bench runs and prints the table of inferkit vs anchors with ratios.
# Extra arguments go to criterion (e.g. --measurement-time 2).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench weights -- --list >/dev/null
scripts/pyvenv.sh anchors-weights torch safetensors numpy -- scripts/anchors/weights.py
cargo bench --bench weights -- "$@"
