"""The symbol universe: which coins the platform tracks, and how each source names them.

The default universe (124 coins) ships with the package in ``resources/config/data/universe.csv``;
``CRYPTO_UNIVERSE_FILE`` points at a replacement with at least ``symbol`` and ``coin_id``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources as package_resources
from pathlib import Path

REQUIRED_COLUMNS = ("symbol", "coin_id")
_SYMBOL = re.compile(r"^[A-Z0-9]{1,15}$")


class UniverseError(ValueError):
    """The universe file is missing columns or holds an invalid or duplicate entry."""


@dataclass(frozen=True)
class Coin:
    """One tracked coin."""

    symbol: str
    coin_id: str
    name: str
    exchange_pair: str | None
    ref_price_usd: float | None
    ref_market_cap_usd: float | None


def _optional_float(value: str | None) -> float | None:
    value = (value or "").strip()
    return float(value) if value else None


def parse_universe(text: str, origin: str = "universe") -> tuple[Coin, ...]:
    """Parse a universe CSV; raise :class:`UniverseError` naming the first bad line."""
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise UniverseError(f"{origin}: missing column(s) {', '.join(missing)}")
    coins: list[Coin] = []
    seen_symbols: set[str] = set()
    seen_ids: set[str] = set()
    for line_no, row in enumerate(reader, start=2):
        symbol = (row.get("symbol") or "").strip().upper()
        coin_id = (row.get("coin_id") or "").strip()
        if not _SYMBOL.match(symbol):
            raise UniverseError(f"{origin}:{line_no}: invalid symbol {symbol!r}")
        if not coin_id:
            raise UniverseError(f"{origin}:{line_no}: empty coin_id for {symbol}")
        if symbol in seen_symbols or coin_id in seen_ids:
            raise UniverseError(f"{origin}:{line_no}: duplicate symbol or coin_id ({symbol}, {coin_id})")
        seen_symbols.add(symbol)
        seen_ids.add(coin_id)
        try:
            coins.append(
                Coin(
                    symbol=symbol,
                    coin_id=coin_id,
                    name=(row.get("name") or symbol).strip(),
                    exchange_pair=(row.get("exchange_pair") or "").strip().upper() or None,
                    ref_price_usd=_optional_float(row.get("ref_price_usd")),
                    ref_market_cap_usd=_optional_float(row.get("ref_market_cap_usd")),
                )
            )
        except ValueError as exc:
            raise UniverseError(f"{origin}:{line_no}: {exc}") from exc
    if not coins:
        raise UniverseError(f"{origin}: no coins")
    return tuple(coins)


@lru_cache(maxsize=8)
def load_universe(path: Path | str | None = None) -> tuple[Coin, ...]:
    """The universe from ``path`` (``CRYPTO_UNIVERSE_FILE``), or the one shipped with the package
    (``path`` None or empty): the one way the platform learns its coins."""
    if not path:
        text = package_resources.files("resources.config").joinpath("data/universe.csv").read_text("utf-8")
        return parse_universe(text, origin="resources/config/data/universe.csv")
    return parse_universe(Path(path).read_text("utf-8"), origin=str(path))
