"""The ``macro_indicators`` asset: daily FRED and Yahoo Finance series, with their publication dates.

No ``from __future__ import annotations`` here: Dagster reads the resource annotations at import.
"""

from datetime import date, datetime
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from crypto_assets.common import OWNERS, preview_markdown, run_deadline, window_range, write_metadata
from crypto_assets.partitions import DAILY_PARTITIONS
from resources.config.settings import SOURCES, Settings, setting_default
from resources.sources.macro_sources import FRED_BASE_URL, YAHOO_BASE_URL, YAHOO_TICKERS, MacroFetch, fetch_macro
from resources.storage.dagster_resources import WarehouseResource, resource_value
from resources.storage.schema import MACRO

MACRO_CODE_VERSION = "1"


class MacroSourcesResource(dg.ConfigurableResource):
    """Where macro series come from: ``source`` (simulated or live), FRED (key, series) and Yahoo endpoints.

    The definitions fill the fields from the settings (:meth:`from_settings`).
    """

    source: str = Field(default=setting_default("source"), description="'simulated' or 'live'")
    fred_api_key: str = Field(default="", description="empty: FRED series are skipped, with a warning")
    fred_series: list[str] = Field(default_factory=lambda: list(setting_default("fred_series")))
    fred_base_url: str = Field(default="", description=f"empty: {FRED_BASE_URL}")
    yahoo_base_url: str = Field(default="", description=f"empty: {YAHOO_BASE_URL}")
    yahoo_tickers: list[str] = Field(default_factory=lambda: list(YAHOO_TICKERS))
    lookback_days: int = Field(
        default=setting_default("macro_lookback_days"), description="days the nightly macro run re-fetches"
    )
    live_run_deadline_s: int = setting_default("live_run_deadline_s")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "MacroSourcesResource":
        """The macro sources ``settings`` configure; ``overrides`` replace fields (a test's fake servers)."""
        values: dict[str, Any] = dict(
            source=settings.source,
            fred_api_key=resource_value(settings, "fred_api_key"),
            fred_series=list(settings.fred_series),
            fred_base_url=settings.fred_base_url or "",
            yahoo_base_url=settings.yahoo_base_url or "",
            lookback_days=settings.macro_lookback_days,
            live_run_deadline_s=settings.live_run_deadline_s,
        )
        return cls(**{**values, **overrides})

    def fetch(self, start: date, end: date, deadline: datetime | None = None) -> MacroFetch:
        """Observations dated in [start, end) of ``fred_series`` and ``yahoo_tickers``; no retry
        waits past ``deadline``."""
        if self.source not in SOURCES:
            raise dg.Failure(f"macro_sources.source={self.source!r}: expected one of {', '.join(SOURCES)}")
        settings = Settings.model_validate({"source": self.source, "fred_api_key": self.fred_api_key})
        return fetch_macro(
            settings,
            start,
            end,
            fred_series=self.fred_series,
            yahoo_tickers=self.yahoo_tickers,
            fred_base_url=self.fred_base_url or None,
            yahoo_base_url=self.yahoo_base_url or None,
            deadline=deadline,
        )


def validate_macro(frame: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    """Check the rows before writing: keys present and unique, dates in range, published on or after them."""
    if frame.empty:
        return frame
    required = [*MACRO.key, "realtime_start"]
    if frame[required].isna().any().any():
        raise dg.Failure(f"{MACRO.name}: rows with a missing {', '.join(required[:-1])} or {required[-1]}")
    duplicated = frame.duplicated(list(MACRO.key))
    if duplicated.any():
        raise dg.Failure(f"{MACRO.name}: {int(duplicated.sum())} duplicate ({', '.join(MACRO.key)}) rows")
    observed = pd.to_datetime(frame[MACRO.time_column])
    published = pd.to_datetime(frame["realtime_start"])
    if ((observed < pd.Timestamp(start)) | (observed >= pd.Timestamp(end))).any():
        raise dg.Failure(f"{MACRO.name}: observations outside [{start}, {end})")
    early = published < observed
    if early.any():
        raise dg.Failure(f"{MACRO.name}: {int(early.sum())} value(s) published before their observation date")
    return frame


@dg.asset(
    partitions_def=DAILY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=366),
    group_name="macro",
    kinds={"python", "pandas", "sql"},
    owners=OWNERS,
    code_version=MACRO_CODE_VERSION,
    pool="macro_sources",
    tags={"crypto/network": "true"},
)
def macro_indicators(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    macro_sources: MacroSourcesResource,
) -> dg.MaterializeResult:
    """Daily macro series: FRED observations (``CRYPTO_FRED_SERIES``, e.g. DGS10, DFF, DTWEXBGS,
    CPIAUCSL) and Yahoo Finance closes (S&P 500, VIX, DXY, gold).

    One partition a day holds the observations dated that day; ``realtime_start`` is the day each
    value was first published (FRED's vintage data; a Yahoo close on its trading day), and the
    features use a value only from 30 hours after that. FRED's missing marker "." lands as NULL.
    Offline (``CRYPTO_SOURCE=simulated``) the series are simulated; live, a missing
    ``FRED_API_KEY`` or a failing series is skipped with a warning in the metadata, and the step
    fails (for the job's retry policy) only when every FRED series failed. Rows are merged by
    key, so a series that failed today keeps what an earlier run stored. Observations arrive
    late (CPI about six weeks after its month): re-materialise recent partitions to pick them
    up; that never leaks, because the features read publication dates.
    """
    start, end = window_range(context)
    first_day, end_day = start.date(), end.date()
    fetched = macro_sources.fetch(first_day, end_day, deadline=run_deadline(context, macro_sources.live_run_deadline_s))
    if fetched.fred_down:
        raise dg.Failure("every FRED series failed", metadata={"errors": dg.MetadataValue.json(fetched.warnings)})
    frame = validate_macro(fetched.frame, first_day, end_day)
    result = warehouse.get().write_partition(
        MACRO.name, frame, start=start, end=end, run_id=context.run_id, code_version=MACRO_CODE_VERSION, mode="merge"
    )
    for warning in fetched.warnings:
        context.log.warning(warning)
    return dg.MaterializeResult(
        metadata=write_metadata(
            MACRO.table,
            result,
            start,
            end,
            sources=dg.MetadataValue.json(fetched.sources),
            series=dg.MetadataValue.json(sorted(frame["series_id"].unique().tolist()) if len(frame) else []),
            warnings=dg.MetadataValue.json(fetched.warnings),
            missing_values=int(frame["value"].isna().sum()) if len(frame) else 0,
            http=dg.MetadataValue.json(fetched.http),
            preview=preview_markdown(frame),
        )
    )


__all__ = ["macro_indicators", "MacroSourcesResource", "validate_macro"]
