"""CoinGecko's market history, cached in the warehouse and joined as of each window's end.

A backfilled window gets its market fields from ``/coins/{id}/market_chart/range``: the latest
observation at or before the window's end (never a later one, and none older than
``MAX_AGE``), with its age in ``market_data_age_s``. The 24h fields are derived from the same
series at that observation's time ``t``: ``open_24h`` is the price observed at or before
``t - 24h``, ``price_change_24h`` and ``price_change_pct_24h`` follow from it, ``high_24h`` and
``low_24h`` are the highest and lowest price observed in ``[t - 24h, t]`` (with hourly points,
a bound of the true range that CoinGecko's snapshot reports). A window whose history lacks the
observation a day earlier gets none of the 24h fields, so a row has all its market fields or
says which it lacks.

Economy: the history of a coin is fetched once per span: ``coingecko_history_coverage`` records
the span already fetched, and a run asks only for what its windows need beyond it, stretched in
one call to the partition horizon's start and to now (at most 89 days a call, so the points stay
hourly or finer). A 30-day backfill of 124 coins costs 124 calls; the cache is written per coin
as it arrives (a run that fails later keeps what it paid for; the price table is untouched).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from resources.sources.coingecko import MARKET_FIELDS, CoinGeckoClient, parse_market_chart
from resources.sources.http import SourceError
from resources.storage.schema import coingecko_history, coingecko_history_coverage
from resources.storage.warehouse import Warehouse, to_naive_utc, utc_now

#: The longest span one call asks for: CoinGecko answers hourly points up to 90 days, daily beyond.
MAX_SPAN = timedelta(days=89)
DAY = timedelta(days=1)
#: The history a window needs before its end (its observation, and the one a day before that).
LOOKBACK = timedelta(hours=25)
#: An observation older than this at the window's end is not joined (daily points are 24 h apart).
MAX_AGE = timedelta(hours=25)


@dataclass
class HistoryStats:
    """What the history cache did in one run."""

    calls: int = 0
    coins_fetched: int = 0
    points_stored: int = 0
    unknown_ids: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "coins_fetched": self.coins_fetched,
            "points_stored": self.points_stored,
            "unknown_ids": sorted(self.unknown_ids),
        }


def plan_spans(
    need_from: datetime,
    need_to: datetime,
    covered: tuple[datetime, datetime] | None,
    horizon_from: datetime | None,
    now: datetime,
) -> list[tuple[datetime, datetime]]:
    """The spans to fetch so that [need_from, need_to] is covered, adjacent to ``covered``.

    A fetch stretches to ``horizon_from`` (backwards, within ``MAX_SPAN`` of now) and to ``now``
    (forwards) so that later runs of the same backfill find their windows cached; spans longer
    than ``MAX_SPAN`` are split.
    """
    need_to = min(need_to, now)
    if covered is not None and covered[0] <= need_from and need_to <= covered[1]:
        return []
    low = need_from
    if horizon_from is not None:
        low = min(low, max(horizon_from, now - MAX_SPAN))
    spans: list[tuple[datetime, datetime]] = []
    if covered is None:
        spans.append((low, now))
    else:
        if need_from < covered[0]:
            spans.append((low, covered[0]))
        if need_to > covered[1]:
            spans.append((covered[1], now))
    out = []
    for a, b in spans:
        while b - a > MAX_SPAN:
            out.append((a, a + MAX_SPAN))
            a += MAX_SPAN
        out.append((a, b))
    return out


class MarketHistory:
    """The cached market history of a run: fetch what is missing, then join as of window ends."""

    def __init__(
        self,
        warehouse: Warehouse,
        client: CoinGeckoClient,
        *,
        now: datetime | None = None,
        horizon_from: datetime | None = None,
    ):
        self.warehouse = warehouse
        self.client = client
        self.now = now or utc_now()
        self.horizon_from = horizon_from
        self.stats = HistoryStats()

    def _coverage(self, coin_ids: Sequence[str]) -> dict[str, tuple[datetime, datetime]]:
        table = coingecko_history_coverage
        frame = self.warehouse.read_frame(sa.select(table).where(table.c.coin_id.in_(list(coin_ids))))
        return {
            coin_id: (to_naive_utc(covered_from), to_naive_utc(covered_to))
            for coin_id, covered_from, covered_to in zip(
                frame["coin_id"], frame["covered_from"], frame["covered_to"], strict=True
            )
        }

    def ensure(self, coin_ids: Sequence[str], need_from: datetime, need_to: datetime) -> None:
        """Fetch and cache whatever part of [need_from, need_to] the cache lacks for ``coin_ids``.

        A coin CoinGecko does not know (HTTP 404) is recorded as covered with no points.
        """
        coverage = self._coverage(coin_ids)
        for coin_id in coin_ids:
            spans = plan_spans(need_from, need_to, coverage.get(coin_id), self.horizon_from, self.now)
            if not spans:
                continue
            frames = []
            for a, b in spans:
                self.stats.calls += 1
                try:
                    payload = self.client.market_chart_range(coin_id, a, b)
                except SourceError as exc:
                    if exc.status != 404:
                        raise
                    self.stats.unknown_ids.append(coin_id)
                    frames.append(
                        parse_market_chart({k: [] for k in ("prices", "market_caps", "total_volumes")}, coin_id)
                    )
                    continue
                frames.append(parse_market_chart(payload, coin_id))
            low = min([a for a, _ in spans] + ([coverage[coin_id][0]] if coin_id in coverage else []))
            high = max([b for _, b in spans] + ([coverage[coin_id][1]] if coin_id in coverage else []))
            points = pd.concat(frames, ignore_index=True).drop_duplicates(["coin_id", "observed_at"], keep="last")
            self._store(coin_id, spans, points, low, high)
            self.stats.coins_fetched += 1
            self.stats.points_stored += len(points)

    def _store(
        self, coin_id: str, spans: list[tuple[datetime, datetime]], points: pd.DataFrame, low: datetime, high: datetime
    ) -> None:
        history, cover = coingecko_history, coingecko_history_coverage
        in_spans = sa.or_(*(history.c.observed_at.between(a, b) for a, b in spans))
        covered = pd.DataFrame([{"coin_id": coin_id, "covered_from": low, "covered_to": high, "fetched_at": self.now}])
        self.warehouse.replace_rows(
            [
                ("coingecko_history", sa.and_(history.c.coin_id == coin_id, in_spans), points),
                ("coingecko_history_coverage", cover.c.coin_id == coin_id, covered),
            ]
        )

    def _points(self, coin_ids: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        table = coingecko_history
        frame = self.warehouse.read_frame(
            sa.select(table)
            .where(table.c.coin_id.in_(list(coin_ids)), table.c.observed_at >= start, table.c.observed_at <= end)
            .order_by(table.c.observed_at)
        )
        frame["observed_at"] = pd.to_datetime(frame["observed_at"]).astype("datetime64[us]")
        return frame

    def market_fields(self, keys: pd.DataFrame, window: timedelta) -> pd.DataFrame:
        """Market fields for ``keys`` (coin_id, window_start), joined as of each window's end.

        Returns ``keys`` with the columns of :data:`MARKET_FIELDS` and ``market_data_age_s``
        (NaN where the history has no observation within ``MAX_AGE`` of the window's end).
        """
        out = keys[["coin_id", "window_start"]].copy()
        out["window_start"] = pd.to_datetime(out["window_start"]).astype("datetime64[us]")
        for column in (*MARKET_FIELDS, "market_data_age_s"):
            out[column] = np.nan
        if not len(out):
            return out
        first, last = out["window_start"].min() + window, out["window_start"].max() + window
        points = self._points(sorted(out["coin_id"].unique()), first - MAX_AGE - DAY, last)
        if not len(points):
            return out
        points = points.sort_values(["coin_id", "observed_at"])
        rolling = points.groupby("coin_id").rolling("24h", on="observed_at", closed="both")["price"]
        points["high_24h"] = rolling.max().reset_index(level=0, drop=True).values
        points["low_24h"] = rolling.min().reset_index(level=0, drop=True).values
        out["window_end"] = out["window_start"] + window
        left = out[["coin_id", "window_start", "window_end"]].sort_values("window_end")
        at_end = pd.merge_asof(
            left,
            points.sort_values("observed_at"),
            left_on="window_end",
            right_on="observed_at",
            by="coin_id",
            direction="backward",
            tolerance=MAX_AGE,
        )
        at_end["day_before"] = at_end["observed_at"] - DAY
        with_obs = at_end.dropna(subset=["observed_at"]).sort_values("day_before")
        opens = pd.merge_asof(
            with_obs[["coin_id", "window_start", "day_before"]],
            points[["coin_id", "observed_at", "price"]]
            .rename(columns={"price": "open_24h"})
            .sort_values("observed_at"),
            left_on="day_before",
            right_on="observed_at",
            by="coin_id",
            direction="backward",
            tolerance=MAX_AGE,
        )
        joined = at_end.merge(
            opens[["coin_id", "window_start", "open_24h"]], on=["coin_id", "window_start"], how="left"
        )
        joined["market_data_age_s"] = (joined["window_end"] - joined["observed_at"]).dt.total_seconds()
        joined["volume_24h"] = joined["total_volume"]
        has_day = joined["open_24h"].notna() & joined["price"].notna()
        joined["price_change_24h"] = np.where(has_day, joined["price"] - joined["open_24h"], np.nan)
        joined["price_change_pct_24h"] = np.where(
            has_day, 100.0 * joined["price_change_24h"] / joined["open_24h"], np.nan
        )
        for column in ("high_24h", "low_24h"):
            joined[column] = joined[column].where(has_day)
        joined = joined.set_index(["coin_id", "window_start"])
        result = out.drop(columns="window_end").set_index(["coin_id", "window_start"])
        columns = [*MARKET_FIELDS, "market_data_age_s"]
        result[columns] = joined.loc[result.index, columns].to_numpy(dtype="float64")
        return result.reset_index()
