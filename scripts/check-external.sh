#!/usr/bin/env bash
# inferkit as someone else's dependency: a fresh binary crate outside the workspace gets
# inferkit through `cargo add --path` (no `[patch]`), its src/main.rs is the README's library
# example taken verbatim from between the `library-example` markers, and it is built in
# release and run from the checkout. Its top-1 for chelsea.jpg must be class 285 (Egyptian
# cat), as PyTorch says (tests/infer_efficientnet.rs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The workspace's own target directory: the release builds of the dependencies this crate
# shares with the workspace (same versions and features) are built once for it and for the
# benches (`scripts/bench-short.sh`, later in CI), not twice.
export CARGO_TARGET_DIR="$root/target"

cd "$work"
cargo new --quiet --bin --vcs none outside
cd outside
cargo add --quiet inferkit --path "$root"
if grep -q '^\[patch' Cargo.toml; then
  echo "check-external: the outside crate's manifest has a [patch] section" >&2
  exit 1
fi
python3 - "$root/README.md" src/main.rs <<'PY'
import re, sys
readme = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"<!-- library-example: begin -->\n```rust\n(.*?)```\n<!-- library-example: end -->", readme, re.S)
if not m:
    sys.exit("check-external: no library example between the markers in README.md")
open(sys.argv[2], "w", encoding="utf-8").write(m.group(1))
PY
echo "check-external: $(grep '^inferkit' Cargo.toml)"
cargo build --release --quiet
out=$(cd "$root" && "$CARGO_TARGET_DIR/release/outside")
echo "$out"
lines=$(printf '%s\n' "$out" | wc -l)
top=$(printf '%s\n' "$out" | head -1 | awk '{print $1}')
if [ "$lines" != 5 ] || [ "$top" != 285 ]; then
  echo "check-external: expected 5 lines with class 285 first, got $lines lines, first class $top" >&2
  exit 1
fi
echo "check-external: ok (the README's library example built outside the workspace and ran)"
