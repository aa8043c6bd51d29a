#!/usr/bin/env bash
# Install with the dev extra, run the static checks (scripts/lint.sh: ruff format and lint, the
# import contracts, mypy), then the test suite against MariaDB at 127.0.0.1:3306 and Redis at
# 127.0.0.1:6379. Where one is down, the session starts a private one from the installed binaries,
# or names in one line the packages to install and skips its tests (CI=true: fails instead; see
# testkit/services.py). Extra arguments go to pytest.
# The tests run on two pytest-xdist workers, a test file at a time each (a module's fixtures are
# set up once), in the order collected: tests/conftest.py puts the longest files first.
# `scripts/test.sh -n 0` runs them in one process (a later -n wins).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh dev
scripts/lint.sh
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder "$@"
