#!/usr/bin/env bash
# Starts the `inferkit-serve` binary (two versions of the ONNX fixture model, the bundled
# EfficientNet-Lite0, and the model repository examples/model_repository: photos and texts
# as BYTES) and drives it with NVIDIA's official `tritonclient[http]` and
# `tritonclient[grpc]` packages (scripts/tritonclient_check.py, in its own virtualenv), then stops it with SIGTERM and
# checks it exits 0 (graceful shutdown). Runs in CI. PROFILE=release to use a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-debug}
# The debug binary is the one the workspace's tests build (crates/serve/tests/cli.rs runs
# it): `cargo build -p inferkit-serve` alone would resolve other features for the shared
# dependencies and build tract and the rest again (minutes in CI).
if [ "$profile" = release ]; then
  cargo build -q -p inferkit-serve --bin inferkit-serve --release
else
  cargo test -q --workspace --no-run
fi
port=${PORT:-18471}
grpc_port=${GRPC_PORT:-18472}
log=$(mktemp)
target/$profile/inferkit-serve --addr "127.0.0.1:$port" --grpc-addr "127.0.0.1:$grpc_port" \
  --model dyn=tests/fixtures/onnx/dyn_batch.onnx@1 \
  --model dyn=tests/fixtures/onnx/dyn_batch_v2.onnx@2 \
  --model efficientnet-lite0=assets/models/efficientnet-lite0.pth \
  --model-repository examples/model_repository 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
if ! scripts/pyvenv.sh tritonclient "tritonclient[http,grpc]==2.*" numpy pillow -- \
     scripts/tritonclient_check.py --url "127.0.0.1:$port" --grpc-url "127.0.0.1:$grpc_port"; then
  echo "server log:"; cat "$log"; exit 1
fi
kill -TERM "$pid"
status=0; wait "$pid" || status=$?
[ "$status" -eq 0 ] || { echo "serve exited $status after SIGTERM"; cat "$log"; exit 1; }
grep -q '"message":"stopped' "$log" || { echo "no shutdown line in the log"; cat "$log"; exit 1; }
echo "serve stopped cleanly on SIGTERM"
