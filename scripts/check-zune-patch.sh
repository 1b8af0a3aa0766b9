#!/usr/bin/env bash
# Checks crates/zune-jpeg (our patched copy) against the upstream zune-jpeg release it was
# taken from: identical output or identical error on every JPEG fixture, on Pillow-made
# progressive variants (quality 30/75/95/100; 4:4:4, 4:2:2, 4:2:0, grey; odd sizes) of the
# bundled photos, and on 40 corrupted variants of each. Run it after touching the patch.
set -euo pipefail
cd "$(dirname "$0")/.."
work=target/zune-patch-check
mkdir -p "$work/jpgs"
scripts/pyvenv.sh anchors-images pillow numpy -- - "$work/jpgs" <<'PY'
import glob, os, sys
from PIL import Image
out = sys.argv[1]
for src in sorted(glob.glob('assets/images/*.jpg')):
    name = os.path.basename(src)[:-4]
    im = Image.open(src).convert('RGB')
    for q in (30, 75, 95, 100):
        for sub in (0, 1, 2):
            im.save(f'{out}/{name}_q{q}_s{sub}_p.jpg', quality=q, subsampling=sub, progressive=True)
        im.convert('L').save(f'{out}/{name}_q{q}_grey_p.jpg', quality=q, progressive=True)
    im.crop((0, 0, 333, 217)).save(f'{out}/{name}_odd_p.jpg', quality=90, progressive=True)
PY
cargo run --release --quiet --manifest-path scripts/zune-jpeg-check/Cargo.toml \
  --target-dir target/zune-patch-check/target -- \
  "$work"/jpgs/*.jpg tests/fixtures/images/*.jpg assets/images/*.jpg
