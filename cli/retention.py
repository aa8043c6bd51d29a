"""Apply retention by hand: ``python -m cli.retention [--days N] [--run-days N] [--what all|windows|runs]``.

Deletes the warehouse's windows older than ``CRYPTO_RETENTION_DAYS`` (see
:mod:`resources.storage.window_retention`) and the Dagster instance's finished runs older than
``CRYPTO_RUN_RETENTION_DAYS``, by default the partition horizon (see
:mod:`resources.storage.run_history`), as the nightly ``retention_job`` does. Prints what went, as JSON."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from resources.config.settings import Settings, load_settings
from resources.storage.run_history import RUN_RETENTION_ENV, RunRetentionError, delete_run_history, run_history_cutoff
from resources.storage.warehouse import Warehouse
from resources.storage.window_retention import RETENTION_ENV, apply_retention, retention_days


def _windows(days: int | None, db_url: str) -> dict[str, object]:
    if days is None:
        return {"skipped": f"{RETENTION_ENV} is not set: every window is kept"}
    wh = Warehouse(db_url)
    try:
        return apply_retention(wh, days).as_dict()
    finally:
        wh.dispose()


def _runs(settings: Settings, days: int | None, instance_dir: Path, inside_horizon: bool) -> dict[str, object]:
    cutoff = run_history_cutoff(settings.partition_start, days, inside_horizon=inside_horizon)
    if not (instance_dir / "dagster.yaml").exists() and not (instance_dir / "history").exists():
        return {"skipped": f"no Dagster instance at {instance_dir}"}
    with dg.DagsterInstance.from_config(str(instance_dir)) as instance:
        return delete_run_history(instance, cutoff).as_dict()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, apply the retention asked for, print the JSON report."""
    parser = argparse.ArgumentParser(prog="python -m cli.retention", description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=None, help=f"days of windows to keep (default: {RETENTION_ENV})")
    parser.add_argument("--db-url", default=None, help="SQLAlchemy URL of the warehouse (default: CRYPTO_DB_URL)")
    parser.add_argument(
        "--run-days",
        type=int,
        default=None,
        help=f"days of Dagster runs to keep (default: {RUN_RETENTION_ENV}, else the partition horizon)",
    )
    parser.add_argument(
        "--inside-horizon",
        action="store_true",
        help="allow a run retention shorter than the partition horizon (the UI then shows those windows as missing)",
    )
    parser.add_argument(
        "--instance", type=Path, default=None, help="Dagster instance directory (default: DAGSTER_HOME)"
    )
    parser.add_argument("--what", choices=("all", "windows", "runs"), default="all", help="what to apply")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    report: dict[str, object] = {}
    if args.what in ("all", "windows"):
        days = args.days if args.days is not None else retention_days()
        report["windows"] = _windows(days, args.db_url or settings.db_url)
    if args.what in ("all", "runs"):
        run_days = args.run_days if args.run_days is not None else settings.run_retention_days
        try:
            report["runs"] = _runs(settings, run_days, args.instance or settings.instance_dir, args.inside_horizon)
        except RunRetentionError as exc:
            print(f"python -m cli.retention: {exc}", file=sys.stderr)
            return 2
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
