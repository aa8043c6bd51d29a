"""``python -m api``: check the warehouse, then run the gateway with uvicorn.

Without API keys (``CRYPTO_API_KEYS`` empty) it binds to loopback only, and refuses any other
address unless ``--allow-open`` is given; with keys it listens on every interface by default.
It refuses to start on a warehouse that does not exist (it would serve an empty one), saying
where it looked and how to create it (``python -m cli.migrate``): the gateway never creates schemas.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

import uvicorn
from sqlalchemy.exc import DBAPIError

from api.warehouse_check import location, missing_message, missing_reason
from resources.config.settings import Settings, load_settings

log = logging.getLogger("api")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m api``."""
    parser = argparse.ArgumentParser(prog="python -m api", description="Run the crypto-data-platform API gateway")
    parser.add_argument("--host", default=None, help="bind address (default: 0.0.0.0 with API keys, 127.0.0.1 without)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")
    parser.add_argument(
        "--allow-open", action="store_true", help="allow a non-loopback address although no API key is configured"
    )
    parser.add_argument("--log-level", default="info", help="uvicorn and gateway log level (default: info)")
    return parser


def warehouse_ready(settings: Settings) -> bool:
    """True when the gateway may start: the warehouse exists, or cannot be reached now.

    An unreachable server is not a reason to refuse: the gateway starts and answers 503 until it is back.
    """
    try:
        reason = missing_reason(settings.db_url)
    except DBAPIError as exc:
        log.warning(
            "cannot open the warehouse at %s (%s): starting anyway; /ready answers 503 until it answers",
            location(settings.db_url),
            exc.orig,
        )
        return True
    if reason is None:
        log.info("warehouse: %s", location(settings.db_url))
        return True
    log.error("refusing to start: %s", missing_message(settings, reason))
    return False


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, check the bind address and the warehouse, run uvicorn."""
    settings = load_settings()
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = args.host or ("0.0.0.0" if settings.api_keys else "127.0.0.1")
    if not settings.api_keys:
        if not _is_loopback(host) and not args.allow_open:
            log.error("refusing to bind %s without API keys: set CRYPTO_API_KEYS, or pass --allow-open", host)
            return 2
        if _is_loopback(host):
            log.info("listening on %s:%d, a loopback address: only this machine can reach the gateway", host, args.port)
        else:
            log.warning(
                "listening on %s:%d without API keys (--allow-open): anyone who can reach this machine "
                "can read the gateway; set CRYPTO_API_KEYS to require keys",
                host,
                args.port,
            )
    if not warehouse_ready(settings):
        return 2
    uvicorn.run(
        "api.app:app",
        host=host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level=args.log_level,
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
