"""Derivatives against the exchange fakes: a live run, a day and a 30-day backfill of the universe.

Per exchange alone (Binance USD-M, OKX, Bybit; each a loopback fake of its documented formats,
answering from the simulated market, in this process) and per scenario, runs
:func:`resources.sources.derivatives.fetch_live_derivatives` through ccxt and reports:

* the HTTP calls per series (mark, index, funding history, funding now, open-interest history),
  and per coin;
* the wall time (ccxt's rate limiter at 1 ms: the fakes, not the exchanges' limits, bound it);
* the share of (coin, window) rows with every field (``next_funding_rate`` aside: it is live-only
  by design) and with open interest;
* the live window's added cost: the ``funding_now`` call a live run
  makes besides the series a backfill also fetches.

Scenarios: ``live`` (the window that just closed, ``now`` at its end: what each scheduled run
costs), ``day`` (a backfill of the last 24 hours as one range), ``backfill`` (the last ``--days``
days as one range). Prints one markdown table. Run:
``.venv/bin/python benchmarks/bench_derivatives.py [--days 30] [--coins 124] [--exchanges binanceusdm,okx,bybit]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resources.config.universe import load_universe  # noqa: E402
from resources.retry_policy import reset_circuit_breakers  # noqa: E402
from resources.sources.derivatives import SERIES, fetch_live_derivatives  # noqa: E402
from resources.sources.exchange import exchange_venues  # noqa: E402
from testkit.fakes.derivatives_servers import FakeBinanceUsdm, FakeBybit, FakeOkxSwap  # noqa: E402

NOW = datetime(2026, 3, 2, 12, 0)
FAKES = {"binanceusdm": FakeBinanceUsdm, "okx": FakeOkxSwap, "bybit": FakeBybit}
COMPLETE = [
    "mark_close",
    "index_close",
    "premium",
    "funding_rate",
    "funding_time",
    "funding_interval_h",
    "open_interest",
    "open_interest_value",
]


def run(exchange: str, coins: list, start: datetime, end: datetime) -> dict:
    """One fetch of [start, end) from ``exchange``'s fake: calls, seconds, rows and their completeness."""
    reset_circuit_breakers()
    with FAKES[exchange](now=NOW) as fake:
        venues = exchange_venues([exchange], {exchange: fake.url}, market_type="swap", rate_limit_ms=1)
        began = time.perf_counter()
        try:
            fetch = fetch_live_derivatives(coins, start, end, venues=venues, now=NOW)
        finally:
            for venue in venues:
                venue.close()
        seconds = time.perf_counter() - began
    frame = fetch.frame
    calls = fetch.exchanges[exchange]["calls"]
    served = fetch.exchanges[exchange]["coins_served"]
    return {
        "calls": calls,
        "total": sum(calls.values()),
        "per_coin": sum(calls.values()) / max(1, served),
        "seconds": seconds,
        "rows": len(frame),
        "coins": served,
        "complete": float(frame[COMPLETE].notna().all(axis=1).mean()) if len(frame) else 0.0,
        "with_oi": float(frame["open_interest"].notna().mean()) if len(frame) else 0.0,
        "live_added": calls["funding_now"],
        "beyond_oi_history": fetch.exchanges[exchange]["windows_before_open_interest_history"],
    }


def main(argv: list[str] | None = None) -> None:
    """Run every exchange and scenario and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--coins", type=int, default=124, help="the first N coins of the universe")
    parser.add_argument("--exchanges", default="binanceusdm,okx,bybit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    coins = list(load_universe())[: args.coins]
    scenarios = {
        "live": (NOW - timedelta(minutes=5), NOW),
        "day": (NOW - timedelta(days=1), NOW - timedelta(minutes=20)),
        f"{args.days}-day backfill": (NOW - timedelta(days=args.days), NOW - timedelta(minutes=20)),
    }
    header = ["exchange", "scenario", *SERIES, "calls", "calls/coin", "s", "rows", "every field", "with OI"]
    print(f"{len(coins)} coins; the live window's added cost is the funding_now column\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for exchange in args.exchanges.split(","):
        for name, (start, end) in scenarios.items():
            r = run(exchange, coins, start, end)
            cells = [
                exchange,
                name,
                *(str(r["calls"][s]) for s in SERIES),
                str(r["total"]),
                f"{r['per_coin']:.1f}",
                f"{r['seconds']:.1f}",
                str(r["rows"]),
                f"{r['complete']:.1%}",
                f"{r['with_oi']:.1%}",
            ]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
