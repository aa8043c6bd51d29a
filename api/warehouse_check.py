"""Whether the warehouse the gateway is pointed at exists, and where it looked.

The gateway only reads. Opened on a warehouse that is not there, the warehouse layer would create
an empty one and the gateway would answer every query with nothing, ``/ready`` included. So the
gateway first checks: a SQLite file must exist and hold the ``partition_log`` table; on MySQL or
MariaDB the database must exist and hold ``partition_log`` (the platform creates every table on
its first write, so a warehouse without it was never written to). A server that does not answer
is a different matter (the database may be down for a while): the check raises the driver's
error, which the gateway reports as unreachable.
"""

from __future__ import annotations

from pathlib import Path

import pymysql
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from resources.config.settings import Settings, default_db_url
from resources.storage.schema import partition_log

UNKNOWN_DATABASE = 1049  # MySQL/MariaDB: ER_BAD_DB_ERROR


#: What an HTTP client is told: where the gateway looked (a path, a database URL) goes to its log only.
PUBLIC_DETAIL = (
    "the warehouse does not exist (the gateway's log says where it looked): point CRYPTO_DB_URL or "
    "CRYPTO_HOME at the platform's warehouse, or create it with python -m cli.migrate"
)


class MissingWarehouse(RuntimeError):
    """The configured warehouse does not exist; the message says where the gateway looked and what to do."""


def location(url: str) -> str:
    """Where the warehouse is: the SQLite file's absolute path, or the URL without its password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ":memory:"
        return database if database == ":memory:" else str(Path(database).expanduser().resolve())
    return parsed.render_as_string(hide_password=True)


def missing_reason(url: str) -> str | None:
    """None when the warehouse at ``url`` exists, else what is missing.

    Raises the driver's error when a database server does not answer.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            return None
        path = Path(database).expanduser().resolve()
        if not path.is_file():
            return f"there is no SQLite file at {path}"
    engine = sa.create_engine(
        url,
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 5} if parsed.get_backend_name() in ("mysql", "mariadb") else {},
    )
    try:
        with engine.connect() as conn:
            if sa.inspect(conn).has_table(partition_log.name):
                return None
    except DBAPIError as exc:
        original = exc.orig
        if isinstance(original, pymysql.err.MySQLError) and original.args and original.args[0] == UNKNOWN_DATABASE:
            return f"the database {parsed.database!r} does not exist on {parsed.host}:{parsed.port or 3306}"
        raise
    finally:
        engine.dispose()
    return f"{location(url)} has no {partition_log.name} table: nothing was ever written to it"


def missing_message(settings: Settings, reason: str) -> str:
    """The whole refusal: what is missing, why the gateway looked there, and how to fix it."""
    if settings.db_url == default_db_url(settings.home):
        why = f"CRYPTO_DB_URL is unset, so the gateway uses the SQLite file in CRYPTO_HOME={settings.home}"
    else:
        why = f"CRYPTO_DB_URL is {location(settings.db_url)}"
    return (
        f"the warehouse does not exist: {reason} ({why}). Point CRYPTO_DB_URL or CRYPTO_HOME at the "
        "platform's warehouse (scripts/start.sh keeps it in .crypto/ of the checkout), or create it with "
        "python -m cli.migrate (the Helm chart's pre-install hook) or the platform's first run"
    )


def check_warehouse(settings: Settings) -> None:
    """Raise :class:`MissingWarehouse` unless the configured warehouse exists.

    Raises the driver's error when a database server does not answer.
    """
    reason = missing_reason(settings.db_url)
    if reason is not None:
        raise MissingWarehouse(missing_message(settings, reason))
