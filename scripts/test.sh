#!/usr/bin/env bash
# Install with the dev extra, then run the test suite (MariaDB at 127.0.0.1:3306 and Redis at
# 127.0.0.1:6379 must be running; .ci/run starts them). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh dev
exec .venv/bin/python -m pytest -q "$@"
