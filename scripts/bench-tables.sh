#!/usr/bin/env bash
# Tables to a feature matrix against pyarrow + numpy and polars, in one run on one machine:
# the bench generates its table first (a filter that matches no benchmark), the anchor
# script times pyarrow and polars on it (own virtualenv), then the bench runs and prints the
# table. INFERKIT_TABLE_ROWS sets the size (default 2,000,000). Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench tables -- generate-only-no-benchmark-matches-this >/dev/null
scripts/pyvenv.sh anchors-tables pyarrow polars numpy -- scripts/anchors/tables.py
cargo bench --bench tables -- "$@"
