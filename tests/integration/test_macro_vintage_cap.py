"""DFF and DGS10 land through ``macro_indicators`` against a fake FRED that enforces the 2,000-vintage cap."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from crypto_assets.macro import MacroSourcesResource, macro_indicators
from resources.config.settings import load_settings
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.schema import macro_indicators as macro_table
from resources.storage.warehouse import Warehouse
from testkit.fakes.fake_fred import API_KEY, FakeMacroServer


def test_daily_defaults_land_with_their_first_release(sqlite_url: str, monkeypatch) -> None:
    today = datetime.now(UTC).date()
    day = today - timedelta(days=4)
    monkeypatch.setenv("FRED_API_KEY", API_KEY)
    monkeypatch.setenv("CRYPTO_FRED_SERIES", "DFF,DGS10")
    with FakeMacroServer() as server:
        # Eleven years of daily vintages: every vintage since 1776 would be refused (HTTP 400).
        server.add_daily_series("DFF", date(2015, 1, 1), today - timedelta(days=1), business_days=False)
        server.add_daily_series("DGS10", date(2015, 1, 1), today - timedelta(days=1), business_days=True)
        resource = MacroSourcesResource.from_settings(  # FRED_API_KEY and the series as the definitions hand them on
            load_settings(), source="live", fred_base_url=server.url, yahoo_base_url=server.url, yahoo_tickers=[]
        )
        result = dg.materialize(
            [macro_indicators],
            partition_key=day.isoformat(),
            raise_on_error=False,
            instance=dg.DagsterInstance.ephemeral(),
            resources={"warehouse": WarehouseResource(db_url=sqlite_url), "macro_sources": resource},
        )
        assert result.success
        meta = result.asset_materializations_for_node("macro_indicators")[0].metadata
        assert meta["warnings"].data == []
        rows = Warehouse(sqlite_url).read_frame(sa.select(macro_table).order_by(macro_table.c.series_id))
        expected = {}
        for series_id in ("DFF", "DGS10"):
            vintages = sorted(
                (v for v in server.fred[series_id] if v.observation_date == day), key=lambda v: v.realtime_start
            )
            if vintages:
                expected[series_id] = (float(vintages[0].value), vintages[0].realtime_start)
        got = {r.series_id: (r.value, pd.Timestamp(r.realtime_start).date()) for r in rows.itertuples()}
        assert got == expected and "DFF" in got, "the first release, from the day it was published"
        for path, params in server.requests:
            if path == "/fred/series/observations":
                assert params["realtime_start"] == day.isoformat(), "bounded by the observation start"
