#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the platform with its pinned dependencies.
# Usage: scripts/install.sh [extra]   e.g. scripts/install.sh dev
# The install is editable, so a change to the code needs no reinstall: once an extra is installed,
# .venv/.installed-<extra> holds the hash of pyproject.toml, and a later call with the same
# pyproject.toml (and the same extra, or one that `dev` includes) returns at once. To install
# anyway, remove the stamps: rm .venv/.installed-*
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "Python 3.11 is required (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }
extra="${1:-}"
hash="$(sha256sum pyproject.toml | cut -d' ' -f1)"
stamp() { echo ".venv/.installed-${1:-base}"; }
if [ -x .venv/bin/python ]; then
  # dev includes notebook (and the base install); any extra includes the base.
  case "$extra" in
    "") covered=("" notebook dev screenshot) ;;
    notebook) covered=(notebook dev) ;;
    *) covered=("$extra") ;;
  esac
  for e in "${covered[@]}"; do
    [ "$(cat "$(stamp "$e")" 2>/dev/null)" = "$hash" ] && exit 0
  done
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
target="."
[ -n "$extra" ] && target=".[$extra]"
.venv/bin/python -m pip install --quiet -e "$target"
echo "$hash" > "$(stamp "$extra")"
