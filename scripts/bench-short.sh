#!/usr/bin/env bash
# Every criterion bench in benches/, briefly (CI): few samples, short warm-up and measurement.
# The numbers are indicative only; scripts/bench-weights.sh gives the full run with anchors.
set -euo pipefail
cd "$(dirname "$0")/.."
# the tables bench generates its table: 200,000 rows here instead of 2,000,000
export INFERKIT_TABLE_ROWS=${INFERKIT_TABLE_ROWS:-200000}
for b in benches/*.rs; do
  cargo bench --bench "$(basename "$b" .rs)" -- --warm-up-time 0.1 --measurement-time 0.5 --sample-size 10
done
