#!/usr/bin/env bash
# Runs the tests that reach `unsafe` code under valgrind (memcheck), failing on any error.
# Today that is inferkit-weights (its one unsafe block maps files), the root crate's weights
# tests, which open real checkpoints through that map, the allocation-counting test (its
# global allocator is unsafe code, and it drives the patched zune-jpeg's SSE2 block), and
# infer-core's kernel tests (`sgemm` wraps the `gemm` crate's unsafe entry point), and the
# heap-counting load test (its global allocator is unsafe code; it loads both native models
# and runs MiniLM once).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
export PROPTEST_CASES=${PROPTEST_CASES:-8}
bins=$(cargo test --no-run --message-format=json -p inferkit-weights --tests 2>/dev/null; \
       cargo test --no-run --message-format=json -p inferkit --test weights --test preprocess_alloc --test infer_load_heap 2>/dev/null; \
       cargo test --no-run --message-format=json -p inferkit-infer-core --test kernels 2>/dev/null)
exes=$(printf '%s\n' "$bins" | python3 -c '
import json, sys
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' | sort -u)
for exe in $exes; do
  echo "== valgrind $(basename "$exe")"
  valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    "$exe" --test-threads=2 -q
done
