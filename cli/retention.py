"""Delete windows older than N days from every warehouse table: ``python -m cli.retention [--days N]``.

See :mod:`resources.storage.retention` for what is deleted and how."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from resources.config.settings import load_settings
from resources.storage.retention import RETENTION_ENV, apply_retention, retention_days
from resources.storage.warehouse import Warehouse


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cli.retention [--days N] [--db-url URL]`` (days default: CRYPTO_RETENTION_DAYS)."""
    parser = argparse.ArgumentParser(prog="python -m cli.retention", description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=None, help=f"days to keep (default: {RETENTION_ENV})")
    parser.add_argument("--db-url", default=None, help="SQLAlchemy URL of the warehouse (default: CRYPTO_DB_URL)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    days = args.days if args.days is not None else retention_days()
    if days is None:
        print(json.dumps({"skipped": f"{RETENTION_ENV} is not set: every window is kept"}))
        return 0
    wh = Warehouse(args.db_url or load_settings().db_url)
    try:
        print(json.dumps(apply_retention(wh, days).as_dict(), indent=2))
    finally:
        wh.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
