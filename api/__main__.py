"""``python -m api``: run the gateway with uvicorn.

Without API keys (``CRYPTO_API_KEYS`` empty) it binds to loopback only, and refuses any other
address unless ``--allow-open`` is given; with keys it listens on every interface by default.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

import uvicorn

from resources.settings import load_settings

log = logging.getLogger("api")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, check the bind address against the key configuration, run uvicorn."""
    settings = load_settings()
    parser = argparse.ArgumentParser(prog="python -m api", description="Run the crypto-data-platform API gateway")
    parser.add_argument("--host", default=None,
                        help="bind address (default: 0.0.0.0 with API keys, 127.0.0.1 without)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--allow-open", action="store_true",
                        help="allow a non-loopback address although no API key is configured")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = args.host or ("0.0.0.0" if settings.api_keys else "127.0.0.1")
    if not settings.api_keys:
        if not _is_loopback(host) and not args.allow_open:
            log.error("refusing to bind %s without API keys: set CRYPTO_API_KEYS, or pass --allow-open", host)
            return 2
        log.warning("CRYPTO_API_KEYS is empty: serving without authentication on %s:%d", host, args.port)
    uvicorn.run("api.app:app", host=host, port=args.port, workers=args.workers, access_log=False,
                log_level=args.log_level, proxy_headers=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
