"""Export the warehouse to Parquet or restore it: ``python -m cli.backup export|restore --dir DIR``.

See :mod:`resources.storage.parquet_backup` for the format."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from resources.config.settings import load_settings
from resources.storage.parquet_backup import export_warehouse, restore_warehouse
from resources.storage.schema import CONTRACTS_BY_NAME
from resources.storage.warehouse import Warehouse


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cli.backup export|restore --db-url URL --dir DIR [--start D] [--end D]``."""
    parser = argparse.ArgumentParser(prog="python -m cli.backup", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["export", "restore"])
    parser.add_argument("--db-url", default=None, help="SQLAlchemy URL of the warehouse (default: CRYPTO_DB_URL)")
    parser.add_argument("--dir", required=True, help="the backup directory")
    parser.add_argument("--start", default=None, help="first UTC day or time (ISO), inclusive")
    parser.add_argument("--end", default=None, help="end UTC day or time (ISO), exclusive")
    parser.add_argument("--tables", default=None, help=f"comma-separated subset of {', '.join(CONTRACTS_BY_NAME)}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    unknown = [t for t in tables or [] if t not in CONTRACTS_BY_NAME]
    if unknown:
        parser.error(f"unknown table(s) {', '.join(unknown)}; choose from {', '.join(CONTRACTS_BY_NAME)}")
    wh = Warehouse(args.db_url or load_settings().db_url)
    try:
        action = export_warehouse if args.action == "export" else restore_warehouse
        report = action(wh, args.dir, start=args.start, end=args.end, tables=tables)
    finally:
        wh.dispose()
    print(json.dumps(report.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
