#!/usr/bin/env bash
# The image preprocessing benchmark with its Pillow anchors, in one run on one machine:
# scripts/anchors/images.py (own virtualenv: pillow, numpy) times Pillow on the bench's JPEGs,
# then the criterion bench runs and prints inferkit vs Pillow with ratios.
# Extra arguments go to criterion.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/pyvenv.sh anchors-images pillow numpy -- scripts/anchors/images.py
cargo bench --bench preprocess -- "$@"
