#!/usr/bin/env bash
# The benchmark report: every criterion bench with its Python anchors, in one go on one
# machine, then BENCHMARKS.md and one PNG chart per table (docs/benchmarks/).
#
#   scripts/bench-report.sh [PART...]     PART: weights images tables pipeline gemm int8 infer serve
#
# The anchors (torch, safetensors, Pillow, pyarrow, polars, onnxruntime, FastAPI, and
# matplotlib for the charts) are installed once into one virtualenv, scripts/.venv/bench-report
# (about 7 GB, mostly torch), which every anchor script then runs with (INFERKIT_PYTHON).
# Each part's stdout is kept in target/bench-report/<part>.out; a part that fails is reported
# as not run and the rest go on (exit status 1 at the end). Takes about 25 minutes here; run
# it on a quiet machine (nothing else on the cores), and commit BENCHMARKS.md with the charts.
set -uo pipefail
cd "$(dirname "$0")/.."
parts=("$@")
out=target/bench-report
mkdir -p "$out"
# a full run starts clean; a partial one replaces only its parts (each section of the report
# says when its part ran)
[ ${#parts[@]} -gt 0 ] || { parts=(weights images tables pipeline gemm int8 infer serve); rm -f "$out"/*.out; }
start=$(date +%s)

# One virtualenv for every anchor (pyvenv.sh makes it once; `true` just installs).
pkgs=(torch safetensors numpy pillow pyarrow polars onnx onnxscript onnxruntime
  efficientnet-lite-pytorch==0.1.0 transformers sentence-transformers fastapi uvicorn matplotlib)
scripts/pyvenv.sh bench-report "${pkgs[@]}" -- -c 'pass' || exit 1
INFERKIT_PYTHON=$(pwd)/scripts/.venv/bench-report/bin/python
export INFERKIT_PYTHON
scripts/fetch-models.sh || exit 1

status=0
for p in "${parts[@]}"; do
  case $p in
    weights) cmd=(scripts/bench-weights.sh) ;;
    images) cmd=(scripts/bench-images.sh) ;;
    tables) cmd=(scripts/bench-tables.sh) ;;
    pipeline) cmd=(cargo bench --bench pipeline) ;;
    gemm) cmd=(scripts/bench-gemm.sh) ;;
    int8) cmd=(cargo bench --bench int8) ;;
    infer) cmd=(scripts/bench-infer.sh) ;;
    serve) cmd=(scripts/load-serve.sh) ;;
    *) echo "unknown part $p" >&2; exit 2 ;;
  esac
  echo "== $p: ${cmd[*]}" >&2
  if ! "${cmd[@]}" >"$out/$p.out.tmp"; then
    echo "== $p failed; see $out/$p.out.tmp" >&2
    status=1
    continue
  fi
  mv "$out/$p.out.tmp" "$out/$p.out"
done

cat >"$out/meta.json" <<JSON
{"date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "commit": "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates src benches examples || echo '+changes')",
 "rustc": "$(rustc --version)", "seconds": $(($(date +%s) - start))}
JSON
"$INFERKIT_PYTHON" scripts/bench_report.py "$out" BENCHMARKS.md docs/benchmarks || status=1
exit $status
