"""Gap healing: planning runs for missing windows, and the sensor against a real instance."""

import json
import time
from dataclasses import replace
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from crypto_assets.catalog import ASSETS
from crypto_assets.definitions import build_definitions, defs
from crypto_assets.partitions import PARTITION_KEY_FORMAT
from resources.config.settings import load_settings
from resources.config.universe import load_universe
from resources.sources.simulated import simulated_price_frame
from resources.storage.dagster_resources import LakeResource, WarehouseResource
from resources.storage.schema import partition_log
from resources.storage.schema import price_data_real as price_table
from resources.storage.warehouse import Warehouse, utc_now
from sensors.gaps import FIVE_MINUTE_TARGET, GAP_HEALING, HealRequest, build_gap_sensor, plan_heal_requests
from testkit.dagster_private import PartitionBackfill, create_run_for_test

W = timedelta(minutes=5)
T0 = datetime(2026, 11, 20, 12, 0)


def windows(start: datetime, n: int) -> list[datetime]:
    return [start + i * W for i in range(n)]


def test_contiguous_windows_missing_the_same_assets_make_one_run_newest_first():
    missing = {w: {"price_data_real"} for w in windows(T0, 3)}
    missing.update({w: {"price_data_real", "news_items"} for w in windows(T0 + 5 * W, 2)})
    plan = plan_heal_requests(
        missing,
        {},
        {"price_data_real": {"features"}, "news_items": {"sentiment", "features"}},
        window=W,
        max_windows_per_run=288,
        max_runs=10,
    )
    assert plan == [
        HealRequest(("features", "news_items", "price_data_real", "sentiment"), T0 + 5 * W, T0 + 7 * W, 2),
        HealRequest(("features", "price_data_real"), T0, T0 + 3 * W, 3),
    ]


def test_covered_windows_are_skipped_and_runs_are_bounded():
    missing = {w: {"a"} for w in windows(T0, 10)}
    covered = {"a": {T0 + 4 * W, T0 + 5 * W}}
    plan = plan_heal_requests(missing, covered, {}, window=W, max_windows_per_run=3, max_runs=2)
    assert plan == [HealRequest(("a",), T0 + 7 * W, T0 + 10 * W, 3), HealRequest(("a",), T0 + 6 * W, T0 + 7 * W, 1)]
    assert plan_heal_requests(missing, {"a": set(missing)}, {}, window=W, max_windows_per_run=3, max_runs=2) == []


SETTLE = FIVE_MINUTE_TARGET.settle
# A platform that has been running since long before the data of the tests.
RUNNING = json.dumps({"since": "2000-01-01T00:00:00"})


@pytest.fixture
def env(sqlite_url, monkeypatch):
    """Two hours of prices ending ``SETTLE`` before the current window's start: the sensor's clock (see ``sensor``)."""
    monkeypatch.setenv("CRYPTO_DB_URL", sqlite_url)
    now = utc_now()
    end = datetime(now.year, now.month, now.day, now.hour, now.minute - now.minute % 5) - SETTLE
    start = end - timedelta(hours=2)
    wh = Warehouse(sqlite_url)
    wh.write_partition(
        "price_data_real",
        simulated_price_frame(load_universe(), start, end),
        start=start,
        end=end,
        run_id="seed",
        code_version="1",
    )
    with dg.DagsterInstance.ephemeral() as instance:  # in memory: no disk commit per event
        yield instance, wh, start, end


def delete_windows(wh: Warehouse, *starts: datetime) -> None:
    with wh.engine.begin() as conn:
        for start in starts:
            conn.execute(sa.delete(partition_log).where(partition_log.c.window_start == start))
            conn.execute(sa.delete(price_table).where(price_table.c.window_start == start))


# The fixture seeds only prices; the sensor's logic is the same for every asset.
PRICES = [asset for asset in ASSETS if asset.key == dg.AssetKey("price_data_real")]


def sensor(end: datetime, **options) -> dg.SensorDefinition:
    """The sensor on a clock fixed at the start of the window the fixture's data was seeded for
    (``end + SETTLE``), however long the test takes: a tick never crosses into the next window."""
    target = replace(FIVE_MINUTE_TARGET, horizon=timedelta(hours=2), **options)
    return build_gap_sensor(PRICES, targets=[target], clock=lambda: end + SETTLE)


def context(instance, cursor: str | None = RUNNING) -> dg.SensorEvaluationContext:
    """A tick's context as the daemon builds it: the definitions' resources, the warehouse of the settings."""
    warehouse = WarehouseResource.from_settings(load_settings())
    return dg.build_sensor_context(
        instance=instance,
        definitions=defs,
        resources={"warehouse": warehouse, "lake": LakeResource.from_settings(load_settings())},
        cursor=cursor,
    )


def tick(instance, end: datetime) -> dg.SensorResult:
    return sensor(end).evaluate_tick(context(instance))


def key(w: datetime) -> str:
    return w.strftime(PARTITION_KEY_FORMAT)


def test_no_gaps_no_runs(env):
    instance, wh, start, end = env
    data = tick(instance, end)
    assert not data.run_requests and data.skip_message == "no gaps"


def test_a_deleted_window_is_requested_once_and_healed(env):
    instance, wh, start, end = env
    lost = start + 6 * W
    delete_windows(wh, lost, start + 10 * W, start + 11 * W)
    requests = tick(instance, end).run_requests
    assert [
        (
            r.partition_key,
            r.tags.get("dagster/asset_partition_range_start"),
            r.tags.get("dagster/asset_partition_range_end"),
        )
        for r in requests
    ] == [(None, key(start + 10 * W), key(start + 11 * W)), (key(lost), None, None)]
    assert all(
        r.tags["crypto/trigger"] == GAP_HEALING and r.asset_selection == [dg.AssetKey("price_data_real")]
        for r in requests
    )
    job = build_definitions(load_settings()).resolve_job_def("five_minute_job")
    for request in requests:  # run them as the daemon would: the job, the request's partition or range
        result = job.execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            tags=request.tags,
            asset_selection=request.asset_selection,
        )
        assert result.success
    assert len(wh.committed_windows("price_data_real", start, end)) == 24
    assert not tick(instance, end).run_requests


def test_windows_already_targeted_by_runs_or_backfills_are_not_requested_again(env):
    instance, wh, start, end = env
    running, backfilled, failed = start + 3 * W, start + 8 * W, start + 12 * W
    delete_windows(wh, running, backfilled, failed)
    create_run_for_test(
        instance,
        job_name="five_minute_job",
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": key(running)},
    )
    create_run_for_test(
        instance,
        job_name="five_minute_job",
        status=dg.DagsterRunStatus.FAILURE,
        tags={"dagster/partition": key(failed), "crypto/trigger": GAP_HEALING},
        asset_selection=frozenset({dg.AssetKey("price_data_real")}),
    )
    instance.add_backfill(
        PartitionBackfill.from_asset_partitions(
            backfill_id="healing-test",
            asset_graph=defs.get_repository_def().asset_graph,
            partition_names=[key(backfilled)],
            asset_selection=[dg.AssetKey("price_data_real")],
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=None,
            description=None,
            run_config=None,
        )
    )
    data = tick(instance, end)
    assert not data.run_requests
    assert data.skip_message == "five_minute_job: 3 missing window(s), all already being handled"


def test_windows_too_recent_for_healing_are_left_to_the_schedule(env):
    instance, wh, start, end = env
    delete_windows(wh, end - W)  # closed 10 to 15 minutes ago: eligible
    (request,) = tick(instance, end).run_requests
    assert request.partition_key == key(end - W)
    recent = sensor(end, settle=timedelta(minutes=20))
    data = recent.evaluate_tick(context(instance))
    assert not data.run_requests


def test_at_first_start_every_window_before_the_schedules_next_one_is_healed_at_once(env):
    """A window whose schedule tick came before the platform started gets no scheduled run: the
    first tick heals it without waiting for ``settle``, up to the window the schedule runs next."""
    instance, wh, start, end = env
    now = end + SETTLE  # the sensor's clock: the newest seeded window closed 10 minutes ago
    first = build_gap_sensor(
        PRICES, targets=[replace(FIVE_MINUTE_TARGET, horizon=timedelta(hours=2))], clock=lambda: now
    )
    data = first.evaluate_tick(context(instance, cursor=None))
    (request,) = data.run_requests
    # now is a window start: the window that just closed is the schedule's (its tick is a minute
    # from now); the one before it, closed 5 minutes ago and never seeded, is healed at once.
    assert request.partition_key == key(end) == key(now - 2 * W)
    assert json.loads(data.cursor) == {"since": now.isoformat()}
    later = first.evaluate_tick(context(instance, cursor=data.cursor))
    assert [r.partition_key for r in later.run_requests] == [key(end)]  # still missing: the run never ran
    assert not sensor(end).evaluate_tick(context(instance)).run_requests  # running for long: left to the schedule


def test_features_whose_lookback_saw_a_later_commit_are_stale(sqlite_url, tmp_path):
    from resources.storage.lake import FeatureLake
    from sensors.gaps import HISTORY_LOOKBACKS, WindowLogs, stale_windows

    wh = Warehouse(sqlite_url)
    logs = WindowLogs(wh, FeatureLake(str(tmp_path / "lake")))
    end = T0 + 12 * W
    prices = simulated_price_frame(load_universe()[:3], T0, end)
    wh.write_partition("price_data_real", prices, start=T0, end=end, run_id="live", code_version="1")
    features = "ml_features_materialized"
    wh.write_partition(
        features,
        pd.DataFrame(columns=["symbol", "timestamp", "feature_set_version"]),
        start=T0,
        end=end,
        run_id="live",
        code_version="1",
        time_column="timestamp",
    )
    assert stale_windows(logs, HISTORY_LOOKBACKS, T0, end, W) == {}
    time.sleep(0.01)
    healed = T0 + 4 * W  # a price window re-committed after the features that read it
    wh.write_partition(
        "price_data_real",
        prices[prices.window_start == healed],
        start=healed,
        end=healed + W,
        run_id="heal",
        code_version="1",
    )
    assert stale_windows(logs, HISTORY_LOOKBACKS, T0, end, W) == {w: {features} for w in windows(healed, 8)}
