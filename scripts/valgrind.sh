#!/usr/bin/env bash
# Runs the tests that reach `unsafe` code under valgrind (memcheck), failing on any error.
# Today that is inferkit-weights (its unsafe blocks map files and give pages back:
# tests/release.rs), the root crate's weights
# tests, which open real checkpoints through that map, the allocation-counting test (its
# global allocator is unsafe code, and it drives the patched zune-jpeg's SSE2 block), and
# infer-core's kernel tests (`sgemm` wraps the `gemm` crate's unsafe entry point), and the
# heap-counting load test (its global allocator is unsafe code; it loads both native models
# and runs MiniLM once), and the fault tests (their heap-counting global allocator is unsafe
# code). The patched zune-jpeg's AVX2 IDCT (intrinsics) is also reached through the JPEG
# that fuzzing found (`tests/preprocess_images.rs`, that test alone), and the Parquet table
# tests (`tests/preprocess_parquet.rs`: `read_parquet` and `read_parquet_matrix` map files
# with memmap2), and the ONNX session tests (`tests/infer_onnx.rs`: an ONNX session keeps
# tract's run state, which is not `Send`, behind an `unsafe impl Send`, and moves between
# threads in `a_session_moves_between_threads_and_carries_nothing_between_runs`). valgrind
# does not emulate AVX-512 and its CPUID says so: under it
# infer-core's AVX-512 kernels (`cpu::packed`, the depthwise spans) are not reached and the
# kernel tests run the portable paths; those kernels' `unsafe` rests on their asserts and
# the kernel tests run natively.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
export PROPTEST_CASES=${PROPTEST_CASES:-8}
# test executables from `cargo test --no-run --message-format=json ARGS`
exes_of() {
  cargo test --no-run --message-format=json "$@" 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])'
}
grind() {
  valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite "$@"
}
exes=$( (exes_of -p inferkit-weights --tests
         exes_of -p inferkit --test weights --test preprocess_alloc --test infer_load_heap --test faults
         exes_of -p inferkit-infer-core --test kernels --test kernels_int8) | sort -u)
for exe in $exes; do
  echo "== valgrind $(basename "$exe")"
  grind "$exe" --test-threads=2 -q
done
jpeg=$(exes_of -p inferkit --test preprocess_images)
echo "== valgrind $(basename "$jpeg") a_jpeg_found_by_fuzzing"
grind "$jpeg" a_jpeg_found_by_fuzzing --test-threads=1 -q
tables=$(exes_of -p inferkit --test preprocess_parquet)
echo "== valgrind $(basename "$tables") parquet"
grind "$tables" parquet --test-threads=2 -q
onnx=$(exes_of -p inferkit --test infer_onnx)
echo "== valgrind $(basename "$onnx") sessions"
grind "$onnx" a_session_moves every_fixture --test-threads=2 -q
