"""``derivatives_data`` materialized through Dagster, checked, and picked up by the platform's machinery."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crypto_assets.catalog import ASSETS
from crypto_assets.checks import CHECK_KINDS, CheckInput, build_table_checks
from crypto_assets.definitions import build_definitions, defs
from crypto_assets.derivatives import derivatives_data, expected_perpetuals
from crypto_assets.jobs import five_minute_job
from resources.config.settings import load_settings
from resources.config.universe import load_universe
from resources.retry_policy import DeadlineExceeded
from resources.sources.derivatives import DerivativesFetch
from resources.sources.derivatives_sources import DerivativesSourceResource
from resources.sources.simulated import has_simulated_perpetual, simulated_derivatives_frame
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.parquet_backup import export_warehouse, restore_warehouse
from resources.storage.schema import DERIVATIVES
from resources.storage.warehouse import Warehouse, utc_now
from resources.storage.window_retention import apply_retention
from sensors.gaps import FIVE_MINUTE_TARGET, build_gap_sensor
from tests.integration.test_api_support import make_app
from tests.unit.test_gaps import SETTLE, context

KEY = "2026-11-20-12:00"
START = datetime(2026, 11, 20, 12, 0)
WINDOW = timedelta(minutes=5)
PERPETUALS = frozenset(c.symbol for c in load_universe() if has_simulated_perpetual(c))
CHECKS = build_table_checks([derivatives_data], perpetuals=PERPETUALS)
DAY_TAGS = {
    "dagster/asset_partition_range_start": "2026-11-20-00:00",
    "dagster/asset_partition_range_end": "2026-11-20-23:55",
}


def _materialize(
    url: str, source: DerivativesSourceResource | None = None, *, checks: bool = False, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [derivatives_data, *(CHECKS if checks else ())],
        resources={
            "warehouse": WarehouseResource(db_url=url),
            "derivatives_source": source or DerivativesSourceResource(),
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        **kwargs,
    )


def _rows(url: str) -> pd.DataFrame:
    table = DERIVATIVES.table
    return Warehouse(url).read_frame(sa.select(table).order_by(table.c.symbol, table.c.window_start))


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    return result.asset_materializations_for_node("derivatives_data")[0].metadata


def _check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_window_lands_one_row_per_perpetual_and_a_re_run_changes_nothing(db_url):
    first = _materialize(db_url, partition_key=KEY, checks=True)
    assert first.success
    rows = _rows(db_url)
    assert set(rows["symbol"]) == PERPETUALS and len(rows) == len(PERPETUALS)
    assert (rows["window_start"] == START).all() and (rows["funding_time"] < START + WINDOW).all()
    meta = _metadata(first)
    assert meta["dagster/row_count"].value == meta["symbols"].value == meta["perpetuals"].value == len(PERPETUALS)
    assert meta["no_perpetual"].value == 124 - len(PERPETUALS)
    assert {"USDT", "USDC"} <= set(meta["no_perpetual_symbols"].data) and meta["symbols_missing"].data == []
    assert meta["complete_rows_share"].value == 1.0 and meta["rows_by_exchange"].data == {"simulated": len(rows)}
    checks = _check_results(first)
    assert set(checks) == {"unique_non_null_keys", "derivatives_sanity", "perpetual_coverage", "no_window_gaps"}
    assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}
    again = _materialize(db_url, partition_key=KEY)
    assert again.success and _metadata(again)["rows_replaced"].value == len(rows)
    pd.testing.assert_frame_equal(_rows(db_url), rows)


def test_a_backfilled_day_is_one_run_that_commits_every_window(db_url):
    result = _materialize(db_url, tags=DAY_TAGS, checks=True)
    assert result.success
    rows = _rows(db_url)
    assert len(rows) == 288 * len(PERPETUALS) and not rows.duplicated(["symbol", "window_start"]).any()
    committed = Warehouse(db_url).committed_windows("derivatives_data")
    assert len(committed) == 288 and set(committed.run_id) == {result.run_id}
    assert all(c.passed for c in _check_results(result).values())


def test_no_exchange_configured_commits_an_empty_window_that_counts_every_coin(sqlite_url):
    result = _materialize(sqlite_url, DerivativesSourceResource(mode="live", exchanges=""), partition_key=KEY)
    assert result.success and _rows(sqlite_url).empty
    assert _metadata(result)["no_perpetual"].value == 124
    assert len(Warehouse(sqlite_url).committed_windows("derivatives_data")) == 1
    checks = build_table_checks([derivatives_data])  # live: the run's metadata says what is expected
    run = dg.materialize(
        [derivatives_data, *checks],
        resources={
            "warehouse": WarehouseResource(db_url=sqlite_url),
            "derivatives_source": DerivativesSourceResource(mode="live", exchanges=""),
        },
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=KEY,
    )
    coverage = _check_results(run)["perpetual_coverage"]
    assert coverage.passed and coverage.metadata["perpetuals_expected"].value == 0


class _OneCoinRefused(DerivativesSourceResource):
    """The simulated perpetuals with one coin an exchange refused, as the live client reports it."""

    def fetch(self, start, end, now=None, deadline=None) -> DerivativesFetch:
        served = super().fetch(start, end)
        frame = served.frame[served.frame["symbol"] != "ETH"]
        reason = 'binanceusdm: HTTP 400 {"code":-1121,"msg":"Invalid symbol."}'
        return DerivativesFetch(frame, "binanceusdm", served.no_perpetual, {"ETH": reason}, {"binanceusdm": {}})


class _PastDeadline(DerivativesSourceResource):
    def fetch(self, start, end, now=None, deadline=None) -> DerivativesFetch:
        raise DeadlineExceeded("derivatives", "binanceusdm: a retry would end past the run's deadline")


def test_a_refused_coin_is_reported_missing_with_the_exchanges_reason_and_the_rest_land(sqlite_url):
    result = _materialize(sqlite_url, _OneCoinRefused(), partition_key=KEY, checks=True)
    assert result.success
    assert set(_rows(sqlite_url)["symbol"]) == PERPETUALS - {"ETH"}
    meta = _metadata(result)
    assert meta["symbols_missing"].data == ["ETH"] and "Invalid symbol" in meta["missing_reasons"].data["ETH"]
    assert meta["perpetuals"].value == len(PERPETUALS) and meta["symbols"].value == len(PERPETUALS) - 1
    assert _check_results(result)["perpetual_coverage"].passed  # one coin of many: below the alarm


def test_a_run_past_its_deadline_fails_without_retries_and_commits_nothing(sqlite_url):
    result = _materialize(sqlite_url, _PastDeadline(), partition_key=KEY)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "deadline" in failure.step_failure_data.error.message
    assert Warehouse(sqlite_url).committed_windows("derivatives_data").empty


def _evaluate(wh: Warehouse, kind: str, perpetuals=PERPETUALS, run_metadata=None) -> tuple[bool, str, dict]:
    data = CheckInput(
        wh,
        wh.table("derivatives_data"),
        "window_start",
        START,
        START + timedelta(hours=1),
        WINDOW,
        datetime(2026, 11, 1),
        run_metadata or {},
        perpetuals=perpetuals,
    )
    return CHECK_KINDS[kind].evaluate(data)


def _write(wh: Warehouse, mutate=None) -> None:
    frame = simulated_derivatives_frame(load_universe(), START, START + timedelta(hours=1))
    if mutate is not None:
        frame = mutate(frame.copy())
    wh.write_partition(
        "derivatives_data", frame, start=START, end=START + timedelta(hours=1), run_id="r", code_version="1"
    )


def _set(column: str, value: object, symbols: tuple[str, ...] = ("BTC",)):
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[frame["symbol"].isin(symbols), column] = value
        return frame

    return mutate


@pytest.mark.parametrize(
    ("mutate", "count"),
    [
        (_set("funding_rate", 0.02), "funding_over_cap"),  # over the simulated venue's cap
        (_set("next_funding_rate", -0.02), "funding_over_cap"),
        (_set("open_interest", -1.0), "negative_open_interest"),
        (_set("open_interest_value", -5.0), "negative_open_interest"),
        (_set("mark_close", 1e9), "premium_beyond_bound"),
        (_set("funding_time", START + timedelta(hours=2)), "after_window_end"),
        (_set("open_interest_at", START + timedelta(hours=2)), "after_window_end"),
    ],
)
def test_sanity_passes_the_simulated_perpetuals_and_fails_each_impossible_row(sqlite_url, mutate, count):
    wh = Warehouse(sqlite_url)
    _write(wh)
    passed, text, _ = _evaluate(wh, "derivatives_sanity")
    assert passed, text
    _write(wh, mutate)
    passed, text, metadata = _evaluate(wh, "derivatives_sanity")
    assert not passed and metadata[count] == 12, text


def test_a_live_exchange_is_held_to_the_platform_bound(sqlite_url):
    wh = Warehouse(sqlite_url)
    _write(wh, lambda f: _set("funding_rate", 0.02)(f.assign(exchange="bybit")))
    assert _evaluate(wh, "derivatives_sanity")[0]  # a real cap can reach this
    _write(wh, lambda f: _set("funding_rate", 0.2)(f.assign(exchange="bybit")))
    assert not _evaluate(wh, "derivatives_sanity")[0]


def test_coverage_fails_when_perpetuals_are_missing(sqlite_url):
    wh = Warehouse(sqlite_url)
    dropped = tuple(sorted(PERPETUALS)[:20])
    _write(wh, lambda f: f[~f["symbol"].isin(dropped)])
    passed, text, metadata = _evaluate(wh, "perpetual_coverage")
    assert not passed and metadata["symbols_never_present"].data == list(dropped), text
    # live: expected are the coins the run served or reported missing
    served = sorted(PERPETUALS - set(dropped))
    assert _evaluate(wh, "perpetual_coverage", None, {"symbols_served": served, "symbols_missing": []})[0]
    run = {"symbols_served": dg.MetadataValue.json(served), "symbols_missing": dg.MetadataValue.json(list(dropped))}
    assert not _evaluate(wh, "perpetual_coverage", None, run)[0]
    # standalone, live: the coins served somewhere in the range; a window without any is red
    assert _evaluate(wh, "perpetual_coverage", None)[0]
    _write(wh, lambda f: f[(f["window_start"] != START) | f["symbol"].isin(["BTC"])])
    assert not _evaluate(wh, "perpetual_coverage", None)[0]


def test_the_definitions_load_and_wire_the_asset_its_resource_checks_and_job():
    dg.Definitions.validate_loadable(defs)
    assert "derivatives_data" in {n for n in defs.resolve_job_def("five_minute_job").graph.node_names()}
    assert five_minute_job.name == "five_minute_job"
    keys = defs.resolve_asset_graph().asset_check_keys
    assert {k.name for k in keys if k.asset_key == dg.AssetKey("derivatives_data")} == {
        "unique_non_null_keys",
        "derivatives_sanity",
        "perpetual_coverage",
        "no_window_gaps",
        "freshness_check",
    }
    spec = next(s for a in ASSETS for s in a.specs if s.key == dg.AssetKey("derivatives_data"))
    assert spec.freshness_policy is not None
    live = build_definitions(load_settings({"CRYPTO_SOURCE": "live", "CRYPTO_DERIVATIVES_EXCHANGES": "okx"}))
    source = live.resources["derivatives_source"]
    assert isinstance(source, DerivativesSourceResource) and source.exchange_ids() == ("okx",)
    assert expected_perpetuals(source) is None
    assert expected_perpetuals(DerivativesSourceResource()) == PERPETUALS


def test_gap_healing_requests_and_refills_a_lost_window(sqlite_url, monkeypatch):
    monkeypatch.setenv("CRYPTO_DB_URL", sqlite_url)
    now = utc_now()
    end = datetime(now.year, now.month, now.day, now.hour, now.minute - now.minute % 5) - SETTLE
    start = end - timedelta(hours=1)
    wh = Warehouse(sqlite_url)
    frame = simulated_derivatives_frame(load_universe(), start, end)
    wh.write_partition("derivatives_data", frame, start=start, end=end, run_id="seed", code_version="1")
    lost = start + 4 * WINDOW
    with wh.engine.begin() as conn:
        for table in (DERIVATIVES.table, wh.table("partition_log")):
            conn.execute(sa.delete(table).where(table.c.window_start == lost))
    target = replace(FIVE_MINUTE_TARGET, horizon=timedelta(hours=1))
    sensor = build_gap_sensor(ASSETS, targets=[target], clock=lambda: end + SETTLE)
    with dg.DagsterInstance.ephemeral() as instance:
        requests = sensor.evaluate_tick(context(instance)).run_requests
        ours = [r for r in requests if dg.AssetKey("derivatives_data") in (r.asset_selection or [])]
        assert len(ours) == 1 and ours[0].partition_key == lost.strftime("%Y-%m-%d-%H:%M")
        job = build_definitions(load_settings()).resolve_job_def("five_minute_job")
        healed = job.execute_in_process(
            instance=instance, partition_key=ours[0].partition_key, asset_selection=[dg.AssetKey("derivatives_data")]
        )
    assert healed.success and len(wh.committed_windows("derivatives_data", start, end)) == 12


def test_backup_retention_and_freshness_pick_it_up(sqlite_url, mysql_url, tmp_path):
    wh = Warehouse(sqlite_url)
    day = datetime(2026, 11, 20)
    _write(wh)
    report = export_warehouse(wh, tmp_path / "backup", start=day, end=day + timedelta(days=1))
    assert report.rows["derivatives_data"] == 12 * len(PERPETUALS)
    restore_warehouse(Warehouse(mysql_url), tmp_path / "backup")
    pd.testing.assert_frame_equal(_rows(mysql_url), _rows(sqlite_url), check_dtype=False)
    with TestClient(make_app(sqlite_url)) as client:
        assets = {a["asset"]: a for a in client.get("/v1/freshness").json()["assets"]}
    assert assets["derivatives_data"]["last_window_start"] == (START + timedelta(minutes=55)).isoformat() + "Z"
    retained = apply_retention(wh, 1, now=day + timedelta(days=3))
    assert retained.rows["derivatives_data"] == 12 * len(PERPETUALS) and _rows(sqlite_url).empty
