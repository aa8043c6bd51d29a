# Sourced by scripts/start.sh and scripts/dagster.sh: the embedded default's homes, so that the UI
# and the `dagster` command read and write one instance. CRYPTO_HOME defaults to .crypto/ of the
# checkout; DAGSTER_HOME to its dagster_home/ (the settings' default too: DAGSTER_HOME in
# docs/configuration.md), created with the shipped instance configuration.
export CRYPTO_HOME="${CRYPTO_HOME:-$PWD/.crypto}"
export DAGSTER_HOME="${DAGSTER_HOME:-$CRYPTO_HOME/dagster_home}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp deploy/local/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
# `dagster dev` and `dagster asset materialize` say they are superseded by `dg` (dagster-dg-cli,
# which the platform does not install).
export PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Function \`dev_command\` is superseded,ignore:Function \`asset_materialize_command\` is superseded"
