#!/usr/bin/env bash
# Every criterion bench in benches/, briefly (CI): few samples, short warm-up and measurement,
# built with the dev profile the tests were just built with (dependencies optimised, our
# crates at opt-level 1): the benches only have to build and run here, and a release build
# of every bench — tonic, axum, tract, arrow … again — took 9 of CI's minutes. The numbers
# are not figures: scripts/bench-report.sh gives those (release, with anchors).
set -euo pipefail
cd "$(dirname "$0")/.."
# the tables bench generates its table: 200,000 rows here instead of 2,000,000
export INFERKIT_TABLE_ROWS=${INFERKIT_TABLE_ROWS:-200000}
# benches that have slow reference paths skip them on large inputs (benches/int8.rs: the
# portable int8 kernel, ~9 GOP/s released and far less at the dev profile's opt-level 1)
export INFERKIT_BENCH_SHORT=1
for b in benches/*.rs; do
  cargo bench --profile "${INFERKIT_BENCH_PROFILE:-dev}" --bench "$(basename "$b" .rs)" -- --warm-up-time 0.1 --measurement-time 0.5 --sample-size 10
done
