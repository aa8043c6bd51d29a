#!/usr/bin/env bash
# The `dagster` command on the instance the UI of scripts/start.sh shows (DAGSTER_HOME under
# CRYPTO_HOME), with the platform's code location; e.g.
#   scripts/dagster.sh asset materialize --select 'price_data_real+' --partition 2026-12-07-10:00
# (`dagster` run bare writes to a throw-away instance, and the platform's assets refuse to run there.)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/platform-env.sh
exec .venv/bin/dagster "$@"
