"""Create or upgrade every schema the platform uses, once, before anything else starts:
``python -m cli.migrate``.

1. Dagster's instance storage (the instance at ``DAGSTER_HOME``): the tables are created when
   missing and migrated to this Dagster release, as ``dagster instance migrate`` does.
2. Every table of Dagster's run, event log and schedule schemas checked in that storage's database
   (MySQL or Postgres; the URL Dagster resolved from dagster.yaml), and one that is missing
   created. Dagster creates its tables only when ``runs`` is absent, so a schema left partial by
   processes that raced on an empty database (``run_tags`` missing, its version already stamped
   current) is never repaired by Dagster itself; this does.
3. The warehouse's tables (``CRYPTO_DB_URL``), created or given their missing columns.

The Helm chart runs it as a pre-install and pre-upgrade hook Job, so the Deployments start (and,
on an upgrade, the new image serves) only after it succeeded. It prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

import sqlalchemy as sa
from dagster import DagsterInstance

from resources.config.settings import load_settings
from resources.dagster_private import (
    RunStorageSqlMetadata,
    ScheduleStorageSqlMetadata,
    SqlEventLogStorageMetadata,
    storage_database_url,
)
from resources.storage.warehouse import Warehouse

DAGSTER_SCHEMAS = (RunStorageSqlMetadata, SqlEventLogStorageMetadata, ScheduleStorageSqlMetadata)


def migrate_instance() -> tuple[list[str], str | None]:
    """Create and migrate the storage of the instance at ``DAGSTER_HOME``: the migration's messages,
    and the SQLAlchemy URL of its run storage's database (None for SQLite)."""
    messages: list[str] = []
    with DagsterInstance.get() as instance:
        instance.upgrade(messages.append)
        url = storage_database_url(instance)
    return messages, url


def complete_dagster_schema(url: str) -> list[str]:
    """Create the tables of Dagster's storage schemas missing from the database at ``url``; their names."""
    engine = sa.create_engine(url)
    try:
        present = set(sa.inspect(engine).get_table_names())
        created: list[str] = []
        with engine.begin() as conn:
            for metadata in DAGSTER_SCHEMAS:
                missing = [t for name, t in metadata.tables.items() if name not in present]
                metadata.create_all(conn, tables=missing, checkfirst=True)
                created += [t.name for t in missing]
                present.update(t.name for t in missing)
        return sorted(created)
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cli.migrate [--db-url URL] [--skip-warehouse]`` (the instance: ``DAGSTER_HOME``)."""
    parser = argparse.ArgumentParser(prog="python -m cli.migrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", default=None, help="SQLAlchemy URL of the warehouse (default: CRYPTO_DB_URL)")
    parser.add_argument("--skip-warehouse", action="store_true", help="leave the warehouse's tables alone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Dagster first: on an empty database it creates every table and stamps the schema's version.
    messages, url = migrate_instance()
    report: dict[str, object] = {"dagster_migration": messages}
    if url:
        report["dagster_tables_created"] = complete_dagster_schema(url)
    if not args.skip_warehouse:
        wh = Warehouse(args.db_url or load_settings().db_url)
        try:
            report["warehouse_tables"] = len(sa.inspect(wh.engine).get_table_names())
        finally:
            wh.dispose()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
