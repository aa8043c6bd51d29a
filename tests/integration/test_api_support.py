"""Shared helpers of the API tests: a small warehouse written through ``write_partition``, apps, servers.

Collected by pytest as a module without tests; the API test modules import from it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from api.app import create_app
from resources.config.settings import load_settings
from resources.config.universe import load_universe
from resources.sources.simulated import simulated_derivatives_frame
from resources.storage.schema import DERIVATIVES, FEATURES, ml_features_materialized
from resources.storage.warehouse import get_warehouse
from testkit.api_server import api_server
from testkit.fakes.loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1)
WINDOW = timedelta(minutes=5)
N_WINDOWS = 24
SYMBOLS = ("BTC", "ETH", "SOL")
COIN_IDS = {"BTC": "bitcoin", "ETH": "ethereum", "SOL": "solana"}
PRICE_END = T0 + N_WINDOWS * WINDOW


def features_table() -> sa.Table:
    """The features table, as the catalog declares it."""
    return ml_features_materialized


def feature_columns() -> list[str]:
    """Value columns of the features table (the catalog's features)."""
    return [
        c.name
        for c in features_table().columns
        if c.name not in ("symbol", "timestamp", "price", "feature_set_version")
    ]


def price_frame(windows: list[datetime], symbols=SYMBOLS, seed: int = 0) -> pd.DataFrame:
    """price_data_real rows for ``windows`` x ``symbols``."""
    rng = np.random.default_rng(seed)
    rows = []
    for w in windows:
        for i, s in enumerate(symbols):
            price = 100.0 * (i + 1) + rng.normal()
            rows.append(
                {
                    "symbol": s,
                    "coin_id": COIN_IDS.get(s, s.lower()),
                    "window_start": w,
                    "current_price": price,
                    "market_cap": price * 1e6,
                    "volume_24h": 1e5,
                    "price_change_24h": 0.5,
                    "price_change_pct_24h": 0.1,
                    "high_24h": price + 1,
                    "low_24h": price - 1,
                    "open_24h": price,
                    "open": price,
                    "high": price + 0.5,
                    "low": price - 0.5,
                    "close": price,
                    "volume": None if i == 2 else 10.0,
                    "source": "simulated",
                    "collected_at": w + timedelta(minutes=4),
                }
            )
    return pd.DataFrame(rows)


def derivatives_frame(start: datetime, end: datetime, symbols=SYMBOLS) -> pd.DataFrame:
    """derivatives_data rows of the simulated perpetuals of ``symbols`` for the windows in [start, end);
    the predicted next funding rate NULL before T0 + 6 windows (as in backfilled windows)."""
    coins = [c for c in load_universe() if c.symbol in symbols]
    frame = simulated_derivatives_frame(coins, start, end)
    frame.loc[frame["window_start"] < T0 + 6 * WINDOW, "next_funding_rate"] = np.nan
    return frame


def feature_frame(windows: list[datetime], symbols=SYMBOLS) -> pd.DataFrame:
    """ml_features_materialized rows for ``windows`` x ``symbols`` (some NaN)."""
    names = feature_columns()
    rng = np.random.default_rng(1)
    rows = []
    for w in windows:
        for s in symbols:
            row = {"symbol": s, "timestamp": w, "price": float(rng.uniform(1, 100)), "feature_set_version": "test"}
            row.update({n: float(rng.normal()) for n in names})
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame.loc[0, names[0]] = np.nan
    return frame


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows for a raw SQLAlchemy insert (NaN as NULL, Python datetimes)."""
    out = []
    for row in frame.astype(object).to_dict("records"):
        out.append(
            {
                k: (
                    None
                    if isinstance(v, float) and np.isnan(v)
                    else v.to_pydatetime()
                    if isinstance(v, pd.Timestamp)
                    else v
                )
                for k, v in row.items()
            }
        )
    return out


def seed(url: str) -> dict:
    """Write every table of a small warehouse through ``write_partition``, plus uncommitted rows."""
    features_table()
    wh = get_warehouse(url)
    windows = [T0 + i * WINDOW for i in range(N_WINDOWS)]
    wh.write_partition(
        "price_data_real", price_frame(windows), start=T0, end=PRICE_END, run_id="run-prices", code_version="1"
    )
    # SOL misses the latest committed window: the latest prices fall back to its previous one.
    last = price_frame([PRICE_END], seed=5)
    wh.write_partition(
        "price_data_real",
        last[last.symbol != "SOL"],
        start=PRICE_END,
        end=PRICE_END + WINDOW,
        run_id="run-prices-2",
        code_version="1",
    )
    # Rows of a window that never committed (no partition_log row): never served.
    uncommitted = price_frame([PRICE_END + WINDOW], seed=9)
    with wh.engine.begin() as conn:
        conn.execute(wh.table("price_data_real").insert(), records(uncommitted))
    wh.write_partition(
        FEATURES.name,
        feature_frame(windows),
        start=T0,
        end=PRICE_END,
        run_id="run-features",
        code_version="1",
        time_column="timestamp",
    )
    # Derivatives: SOL's perpetual is absent from the latest committed window; one window uncommitted.
    wh.write_partition(
        DERIVATIVES.name,
        derivatives_frame(T0, PRICE_END),
        start=T0,
        end=PRICE_END,
        run_id="run-derivatives",
        code_version="1",
    )
    wh.write_partition(
        DERIVATIVES.name,
        derivatives_frame(PRICE_END, PRICE_END + WINDOW, symbols=("BTC", "ETH")),
        start=PRICE_END,
        end=PRICE_END + WINDOW,
        run_id="run-derivatives-2",
        code_version="1",
    )
    with wh.engine.begin() as conn:
        conn.execute(
            wh.table(DERIVATIVES.name).insert(), records(derivatives_frame(PRICE_END + WINDOW, PRICE_END + 2 * WINDOW))
        )
    ghost = feature_frame([PRICE_END + 2 * WINDOW])
    with wh.engine.begin() as conn:
        conn.execute(wh.table(FEATURES.name).insert(), records(ghost))
    news = pd.DataFrame(
        [
            {
                "item_id": f"n{i}",
                "source": "rss" if i % 2 else "guardian",
                "published_at": T0 + i * WINDOW + timedelta(minutes=1),
                "collected_at": T0 + i * WINDOW + timedelta(minutes=2),
                "window_start": T0 + i * WINDOW,
                "title": f"Bitcoin, news {i}",
                "summary": "text, with commas",
                "url": f"https://example.com/{i}",
                "symbols": "BTC,ETH" if i % 2 else "SOL",
            }
            for i in range(6)
        ]
    )
    wh.write_partition(
        "news_items", news, start=T0, end=T0 + 6 * WINDOW, run_id="run-news", code_version="1", mode="merge"
    )
    sentiment = pd.DataFrame(
        [
            {
                "item_id": f"n{i}",
                "symbol": s,
                "model": "lexicon",
                "window_start": T0 + i * WINDOW,
                "sentiment_score": score,
                "confidence": conf,
                "label": "bullish" if score > 0 else "bearish",
                "source": "rss",
                "analyzed_at": T0 + i * WINDOW + timedelta(minutes=3),
            }
            for i in range(6)
            for s, score, conf in ((("BTC", 0.5, 0.8), ("ETH", -0.25, 0.4)) if i % 2 else (("SOL", 0.1, 1.0),))
        ]
    )
    wh.write_partition(
        "sentiment_data", sentiment, start=T0, end=T0 + 6 * WINDOW, run_id="run-sentiment", code_version="1"
    )
    days = [T0.date() + timedelta(days=d) for d in range(5)]
    macro = pd.DataFrame(
        [
            {"series_id": s, "observation_date": d, "value": 4.0 + k, "realtime_start": d, "source": "simulated"}
            for s in ("DGS10", "DFF")
            for k, d in enumerate(days)
        ]
    )
    wh.write_partition(
        "macro_indicators",
        macro,
        start=T0,
        end=T0 + timedelta(days=5),
        run_id="run-macro",
        code_version="1",
        time_column="observation_date",
        window=timedelta(days=1),
    )
    return {"windows": windows, "latest": PRICE_END}


def settings_env(url: str, **extra: str) -> dict[str, str]:
    """Environment for the gateway over ``url``: state refreshed on every request unless overridden."""
    env = {"CRYPTO_DB_URL": url, "CRYPTO_API_STATE_TTL": "0", "CRYPTO_API_RATE_LIMIT": "0"}
    env.update(extra)
    return env


def make_app(url: str, cache_prefix: str = "crypto-api-test:", **extra: str):
    """A gateway app over ``url``."""
    return create_app(load_settings({**os.environ, **settings_env(url, **extra)}), cache_prefix=cache_prefix)


@contextlib.contextmanager
def module_warehouse(kind: str, tmp_dir: Path) -> Iterator[str]:
    """A seeded warehouse shared by a module's read-only tests: SQLite in ``tmp_dir``, or MariaDB."""
    from resources.storage.warehouse import dispose_warehouse
    from tests.conftest import mysql_database

    if kind == "sqlite":
        url = f"sqlite:///{tmp_dir / 'warehouse.sqlite'}"
        seed(url)
        yield url
        dispose_warehouse(url)
        return
    with mysql_database() as url:
        seed(url)
        yield url


@contextlib.contextmanager
def serve(url: str, **extra: str) -> Iterator[str]:
    """Run ``uvicorn api.app:app`` on a free loopback port over ``url``; yield its base URL."""
    port = free_port()
    with api_server(url, port, settings_env(url, **extra)):
        yield f"http://127.0.0.1:{port}"
