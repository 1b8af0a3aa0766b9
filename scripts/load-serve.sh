#!/usr/bin/env bash
# inferkit-serve's load test against Python services, in one run on one machine, on raw
# inputs: a photo's JPEG bytes (EfficientNet-Lite0, top-5 classes back) and a sentence
# (all-MiniLM-L6-v2, its embedding back). Each server runs alone, driven by the
# `serve_load` example (closed loop: 16 then 64 clients, each sending one request after
# another; WARMUP s, then DURATION s measured):
#   - inferkit-serve (release build, --model-repository with only the model under test),
#     over HTTP (KServe v2 binary extension, as tritonclient.http sends) and gRPC
#     (ModelInfer with raw_input_contents, as tritonclient.grpc sends);
#   - images: FastAPI + Pillow + onnxruntime (HTTP, the JPEG as the body) and grpcio +
#     Pillow + onnxruntime (the same KServe gRPC protocol);
#   - texts: FastAPI + sentence-transformers (HTTP, {"texts": [...]}).
# Then overload: requests at 4x the throughput inferkit-serve reached with 64 clients, open
# loop, for DURATION s, over each protocol: every request must be answered (200 or 503 /
# RESOURCE_EXHAUSTED; none unanswered) and the server's memory must stay flat.
# Peak RSS (VmHWM) per server; RSS sampled every 0.5 s during overload.
# Prints the comparison tables (scripts/anchors/serve_report.py). Not a test: run it on a
# quiet machine. Results: target/load-serve/. About 10 minutes here, plus installs.
#   DURATION=20 WARMUP=5 PHOTO=assets/images/chelsea.jpg scripts/load-serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-20}
warmup=${WARMUP:-5}
photo=${PHOTO:-assets/images/chelsea.jpg}
text=${TEXT:-"A man is playing a guitar on the street while people walk past him."}
out=target/load-serve
rm -rf "$out"; mkdir -p "$out"

scripts/fetch-models.sh >&2
onnx=.cache/models/efficientnet-lite0/efficientnet-lite0.onnx
if [ ! -f "$onnx" ]; then
  scripts/pyvenv.sh onnx-export torch efficientnet-lite-pytorch==0.1.0 onnx onnxscript onnxruntime numpy -- scripts/export_efficientnet_onnx.py >&2
fi
cargo build -q --release -p inferkit-serve --bin inferkit-serve
# the client: dependencies optimised in the dev profile (see Cargo.toml), like wrk's C
cargo build -q --example serve_load
client=target/debug/examples/serve_load
images_py=(scripts/pyvenv.sh serve-images fastapi uvicorn onnxruntime numpy pillow grpcio grpcio-tools --)
text_py=(scripts/pyvenv.sh serve-text fastapi uvicorn sentence-transformers --)
"${images_py[@]}" -c 'pass'
"${text_py[@]}" -c 'pass'

# repositories holding only the model under test (links to examples/model_repository)
for m in efficientnet_lite0 minilm; do
  mkdir -p "$out/repo-$m"
  ln -s "$(pwd)/examples/model_repository/$m" "$out/repo-$m/$m"
done

wait_port() {
  for _ in $(seq 1 480); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.25
  done
  echo "nothing listens on port $1" >&2; return 1
}

pid=
# start NAME PORT COMMAND...: starts a server, waits for its port
start() {
  local name=$1 port=$2; shift 2
  "$@" >"$out/$name.log" 2>&1 &
  pid=$!
  wait_port "$port"
  sleep 1
}
# stop NAME: records the server's peak RSS (kB), stops it
stop() {
  awk '/VmHWM/ {print $2}' "/proc/$pid/status" >"$out/$1.rss"
  kill -TERM "$pid"; wait "$pid" || true
}
# load FILE ARGS...: one measured run of the client (its JSON line into FILE)
load() {
  local file=$1; shift
  echo "== $file" >&2
  "$client" --warmup "$warmup" --seconds "$duration" "$@" >"$out/$file.json"
  cat "$out/$file.json" >&2
}

image_args=(--image "$photo" --model efficientnet_lite0 --input image --output logits --classes 5)
text_args=(--text "$text" --model minilm --input text --output sentence_embedding)

# inferkit-serve: images, then texts (both protocols on one port)
serve=(target/release/inferkit-serve --addr 127.0.0.1:18481 --grpc-addr none)
start ours-image 18481 "${serve[@]}" --model-repository "$out/repo-efficientnet_lite0"
for c in 16 64; do
  load "ours-image-http-$c" --http http://127.0.0.1:18481/v2/models/efficientnet_lite0/infer --form kserve --clients "$c" "${image_args[@]}"
  load "ours-image-grpc-$c" --grpc http://127.0.0.1:18481 --clients "$c" "${image_args[@]}"
done
# overload: 4x the 64-client throughput, open loop, RSS sampled
rate=$(python3 -c "import json; print(round(4 * json.load(open('$out/ours-image-http-64.json'))['throughput'], 1))")
( while kill -0 "$pid" 2>/dev/null; do awk '/VmRSS/ {print $2}' "/proc/$pid/status"; sleep 0.5; done ) >"$out/ours-image-overload.rss-series" 2>/dev/null &
sampler=$!
load "ours-image-http-overload" --http http://127.0.0.1:18481/v2/models/efficientnet_lite0/infer --form kserve --rate "$rate" --timeout-ms 60000 "${image_args[@]}"
load "ours-image-grpc-overload" --grpc http://127.0.0.1:18481 --rate "$rate" --timeout-ms 60000 "${image_args[@]}"
kill "$sampler" 2>/dev/null || true
stop ours-image

start ours-text 18481 "${serve[@]}" --model-repository "$out/repo-minilm"
for c in 16 64; do
  load "ours-text-http-$c" --http http://127.0.0.1:18481/v2/models/minilm/infer --form kserve --clients "$c" "${text_args[@]}"
  load "ours-text-grpc-$c" --grpc http://127.0.0.1:18481 --clients "$c" "${text_args[@]}"
done
stop ours-text

# the Python services
start fastapi-image 18482 "${images_py[@]}" scripts/anchors/serve_fastapi_images.py "$onnx" 18482
for c in 16 64; do
  load "fastapi-image-http-$c" --http http://127.0.0.1:18482/predict --form raw --clients "$c" "${image_args[@]}"
done
stop fastapi-image

start grpcio-image 18483 "${images_py[@]}" scripts/anchors/serve_grpcio.py "$onnx" 18483
for c in 16 64; do
  load "grpcio-image-grpc-$c" --grpc http://127.0.0.1:18483 --clients "$c" "${image_args[@]}"
done
stop grpcio-image

start fastapi-text 18484 "${text_py[@]}" scripts/anchors/serve_fastapi_text.py .cache/models/all-MiniLM-L6-v2 18484
for c in 16 64; do
  load "fastapi-text-http-$c" --http http://127.0.0.1:18484/embed --form raw --clients "$c" "${text_args[@]}"
done
stop fastapi-text

echo "## serve load test: raw inputs, $(nproc) CPUs, ${duration} s per run after ${warmup} s warm-up ($(date -u +%F))"
python3 scripts/anchors/serve_report.py "$out" | tee "$out/table.md"
