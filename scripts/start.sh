#!/usr/bin/env bash
# Install, then start the whole platform on the embedded default: SQLite warehouse, Dagster's
# SQLite instance under $CRYPTO_HOME/dagster_home, simulated sources. The UI opens on
# http://$DAGSTER_HOST:$DAGSTER_PORT (127.0.0.1:3000). SIGTERM or SIGINT stops the webserver,
# daemon and code server within seconds, however this was started (scripts/supervise.py).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
export CRYPTO_HOME="${CRYPTO_HOME:-$PWD/.crypto}"
export DAGSTER_HOME="${DAGSTER_HOME:-$CRYPTO_HOME/dagster_home}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp deploy/local/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
exec .venv/bin/python scripts/supervise.py --grace 15 -- \
  .venv/bin/dagster dev -w workspace.yaml -h "${DAGSTER_HOST:-127.0.0.1}" -p "${DAGSTER_PORT:-3000}"
