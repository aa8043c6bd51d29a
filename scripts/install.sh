#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the platform with its pinned dependencies.
# Usage: scripts/install.sh [extra]   e.g. scripts/install.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "Python 3.11 is required (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
target="."
[ $# -gt 0 ] && target=".[$1]"
.venv/bin/python -m pip install --quiet -e "$target"
