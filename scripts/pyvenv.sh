#!/usr/bin/env bash
# Usage: scripts/pyvenv.sh NAME PACKAGE... -- SCRIPT.py [ARGS...]
# Makes (once) a virtualenv for one reference/anchor script in the ignored folder
# scripts/.venv/NAME, installs PACKAGEs into it, and runs the script with it.
# Set INFERKIT_PYTHON to a python that already has the packages to skip the venv.
set -euo pipefail
name=$1; shift
pkgs=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do pkgs+=("$1"); shift; done
shift
if [ -n "${INFERKIT_PYTHON:-}" ]; then exec "$INFERKIT_PYTHON" "$@"; fi
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv/$name"
stamp="$venv/.installed-$(printf '%s ' "${pkgs[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pkgs[@]}"
  touch "$stamp"
fi
exec "$venv/bin/python" "$@"
