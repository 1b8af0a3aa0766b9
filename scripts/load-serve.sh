#!/usr/bin/env bash
# inferkit-serve's load test against its anchor, in one run on one machine: the same
# EfficientNet-Lite0 behind `inferkit-serve` (release build, native CPU backend, dynamic
# batching) and behind a FastAPI + onnxruntime app (scripts/anchors/serve_fastapi.py), each
# driven by wrk with 16 connections for DURATION seconds (default 30) posting the same
# Open Inference Protocol JSON request (a bundled photo, preprocessed). Prints a table of
# throughput, p50/p99 latency (wrk's), and the server's peak RSS (VmHWM). Not a test: run it
# on a quiet machine. Needs wrk (apt-get install wrk). Results: target/load-serve/.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-30}
conns=${CONNECTIONS:-16}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
onnx=.cache/models/efficientnet-lite0/efficientnet-lite0.onnx
if [ ! -f "$onnx" ]; then
  scripts/pyvenv.sh onnx-export torch efficientnet-lite-pytorch==0.1.0 onnx onnxscript onnxruntime numpy -- scripts/export_efficientnet_onnx.py
fi
cargo build -q --release -p inferkit-serve --bin inferkit-serve
out=target/load-serve; mkdir -p "$out"
py=(scripts/pyvenv.sh serve-anchor fastapi uvicorn onnxruntime numpy pillow --)
"${py[@]}" scripts/anchors/serve_body.py assets/images/chelsea.jpg "$out/body.json"
cat > "$out/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$out/body.json", "rb"); wrk.body = f:read("*a"); f:close()
LUA

wait_ready() {
  for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$1/v2/health/ready" >/dev/null && return 0
    sleep 0.25
  done
  echo "server on port $1 not ready"; return 1
}

# run NAME PORT COMMAND...: start the server, warm up, load it, record its peak RSS
run() {
  local name=$1 port=$2; shift 2
  "$@" >"$out/$name.log" 2>&1 &
  local pid=$!
  wait_ready "$port"
  wrk -t1 -c"$conns" -d5s -s "$out/post.lua" "http://127.0.0.1:$port/v2/models/efficientnet-lite0/infer" >/dev/null
  wrk -t1 -c"$conns" -d"${duration}s" --timeout 10s --latency -s "$out/post.lua" \
    "http://127.0.0.1:$port/v2/models/efficientnet-lite0/infer" | tee "$out/$name.wrk"
  # the server process and its children (uvicorn runs in the python process itself)
  awk '/VmHWM/ {print $2}' "/proc/$pid/status" >"$out/$name.rss"
  kill -TERM "$pid"; wait "$pid" || true
}

# SERVE_ARGS: extra options for ours (e.g. --max-batch 8); ONLY=ours skips the anchor
run ours 18481 target/release/inferkit-serve --addr 127.0.0.1:18481 \
  --model efficientnet-lite0=assets/models/efficientnet-lite0.pth ${SERVE_ARGS:-}
[ "${ONLY:-}" = ours ] && exit 0
run anchor 18482 "${py[@]}" scripts/anchors/serve_fastapi.py "$onnx" 18482
echo
echo "## serve load test: EfficientNet-Lite0, $conns connections, ${duration} s, $(nproc) CPUs ($(date -u +%F))"
"${py[@]}" scripts/anchors/serve_report.py "$out" | tee "$out/table.md"
