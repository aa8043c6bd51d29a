#!/usr/bin/env bash
# The static checks, as configured in pyproject.toml: formatting and lint (ruff), the import
# contracts (import-linter) and the types (mypy). Needs .venv with the dev extra
# (scripts/install.sh dev); scripts/test.sh runs this before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/lint-imports --no-logo
.venv/bin/mypy
