#!/usr/bin/env bash
# Runs the fuzz targets for SECONDS each (default 60), two at a time, on the stable toolchain
# (cargo-fuzz with `-s none`: libFuzzer coverage, no sanitizer — the code under test is safe
# Rust but for the mmap). Installs cargo-fuzz if missing. Crashes land in
# fuzz/artifacts/<target>/; keep each as a regression test (tests/fixtures/fuzz/: the
# README's Reliability section lists what was found). A unit over 30 s is a hang (how the
# Thrift skipping fixed in crates/parquet showed); a process over 4 GB resident is a finding
# too (how the 13 GB dictionary fixed there showed).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors_header unpickler torch_zip image_decode csv_reader parquet_reader serve_request serve_grpc_request)
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cargo fuzz build -s none --fuzz-dir fuzz
run() {
  local t=$1
  mkdir -p "fuzz/corpus/$t"
  local rc=0
  cargo fuzz run -s none --fuzz-dir fuzz "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=4096 -timeout=30 \
    >"fuzz/$t.log" 2>&1 || rc=$?
  grep -E "^(stat::number_of_executed_units|Done)" "fuzz/$t.log" | sed "s/^/$t: /"
  return $rc
}
status=0
running=0
for t in "${targets[@]}"; do
  run "$t" &
  running=$((running + 1))
  # two at a time: the next starts when either finishes
  if [ "$running" -ge 2 ]; then wait -n || status=1; running=$((running - 1)); fi
done
while [ "$running" -gt 0 ]; do wait -n || status=1; running=$((running - 1)); done
[ "$status" = 0 ] || { echo "fuzz: a target failed; see fuzz/<target>.log and fuzz/artifacts/" >&2; exit 1; }
