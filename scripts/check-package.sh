#!/usr/bin/env bash
# Packages every crate of the workspace as crates.io would get it: `cargo package
# --workspace` builds each crate from its .crate file against the others' .crate files (no
# path dependencies, no [patch]). Then checks what each .crate holds: no fixtures, fuzz
# corpora, models, bench data or test files, and prints each crate's size.
set -euo pipefail
cd "$(dirname "$0")/.."
# A dirty tree (a local run) is packaged as it is; CI packages a clean clone.
flags=()
if [ -n "$(git status --porcelain)" ]; then flags+=(--allow-dirty); fi
# cargo verifies each crate against the others' .crate files through an overlay on the
# crates.io source, extracting them under ~/.cargo/registry/src, and it does not extract a
# crate again whose directory is already there: a second run on one machine would verify
# against the first run's sources (stale APIs). Our own crates' extracted copies go first.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
rm -rf "$cargo_home"/registry/src/*/inferkit-* "$cargo_home"/registry/cache/*/inferkit-*
cargo package --workspace --quiet "${flags[@]}"

version=$(cargo metadata --format-version 1 --no-deps | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    print(p["name"], p["version"], p["manifest_path"])')
bad=0
while read -r name ver manifest; do
  crate="target/package/$name-$ver.crate"
  [ -f "$crate" ] || { echo "check-package: $crate is missing" >&2; bad=1; continue; }
  list=$(tar -tzf "$crate")
  # What must never ship: test data, fuzz corpora, models, bench inputs, scripts, and
  # tests that read files from outside their crate (the repository's fixtures).
  dir=$(dirname "$manifest")
  stray=$(printf '%s\n' "$list" | grep -E '/(fixtures|fuzz|benches|assets|scripts|examples)/|\.(pth|pt|bin|onnx|safetensors|npy|npz|parquet|jpg|jpeg|png|csv)$' || true)
  for t in $(printf '%s\n' "$list" | sed -n "s#^$name-$ver/\(tests/.*\.rs\)\$#\1#p"); do
    if grep -q '/\.\./\.\./' "$dir/$t"; then stray+=$'\n'"$name-$ver/$t (reads the repository's files)"; fi
  done
  if [ -n "${stray//$'\n'/}" ]; then
    echo "check-package: $name ships files it should not:" >&2
    printf '%s\n' "$stray" | sed '/^$/d; s/^/  /' >&2
    bad=1
  fi
  for f in README.md Cargo.toml; do
    printf '%s\n' "$list" | grep -qx "$name-$ver/$f" || { echo "check-package: $name has no $f" >&2; bad=1; }
  done
  # The manifest fields crates.io shows.
  python3 - "$manifest" "$name" <<'PY' || bad=1
import sys, tomllib
m = tomllib.load(open(sys.argv[1], "rb"))["package"]
missing = [k for k in ("description", "keywords", "categories", "documentation", "license") if k not in m]
if missing:
    sys.exit(f"check-package: {sys.argv[2]} lacks {', '.join(missing)} in its manifest")
PY
  printf 'check-package: %-28s %8s KiB packed, %5d files\n' "$name" \
    "$(( $(stat -c %s "$crate") / 1024 ))" "$(printf '%s\n' "$list" | wc -l)"
done <<<"$version"
exit $bad
