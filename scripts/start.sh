#!/usr/bin/env bash
# Install (with the notebook extra: Jupyter, DuckDB, Polars), then start the whole platform on the
# embedded default: SQLite warehouse, Dagster's SQLite instance under $CRYPTO_HOME/dagster_home
# (scripts/platform-env.sh), simulated sources. The UI opens on
# http://$DAGSTER_HOST:$DAGSTER_PORT (127.0.0.1:3000). SIGTERM or SIGINT stops the webserver,
# daemon and code server within seconds, however this was started (scripts/supervise.py).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh notebook
source scripts/platform-env.sh
exec .venv/bin/python scripts/supervise.py --grace 15 -- \
  .venv/bin/dagster dev -w workspace.yaml -h "${DAGSTER_HOST:-127.0.0.1}" -p "${DAGSTER_PORT:-3000}"
