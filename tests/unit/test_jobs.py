"""Jobs, schedules, freshness policies and checks: what they select, when they tick, what they ask."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from crypto_assets.catalog import ASSETS, FRESHNESS_CHECKS
from crypto_assets.definitions import build_definitions, defs
from crypto_assets.derivatives import derivatives_data
from crypto_assets.freshness_checks import (
    DAILY_POLICY,
    FIVE_MINUTE_POLICY,
    FRESHNESS_CHECK_NAME,
    build_freshness_checks,
    freshness_rules,
    with_freshness_policies,
)
from crypto_assets.jobs import (
    LATE_DATA_OFFSET_MINUTES,
    build_macro_schedule,
    five_minute_job,
    five_minute_schedule,
    macro_job,
    macro_run_days,
)
from crypto_assets.partitions import DAILY_PARTITIONS, FIVE_MINUTE_PARTITIONS, offset_cron
from crypto_assets.prices import price_data_real
from resources.config.settings import load_settings
from sensors.freshness import build_freshness_sensor
from testkit.dagster_private import create_execution_plan

DAY = dg.BackfillPolicy.multi_run(max_partitions_per_run=288)
macro_schedule = build_macro_schedule(load_settings().macro_lookback_days)


@dg.asset(partitions_def=FIVE_MINUTE_PARTITIONS, group_name="sentiment", backfill_policy=DAY)
def news_like() -> None:
    """A 5-minute asset of another group, as news_items will be."""


@dg.asset(
    partitions_def=FIVE_MINUTE_PARTITIONS, group_name="features", deps=[price_data_real, news_like], backfill_policy=DAY
)
def features_like() -> None:
    """A downstream 5-minute asset."""


@dg.asset(partitions_def=DAILY_PARTITIONS, group_name="macro")
def macro_like() -> None:
    """A daily macro asset."""


PLUGGED = with_freshness_policies([price_data_real, news_like, features_like, macro_like])
# The platform's assets and freshness checks (which the jobs leave to their sensor), and the plugged ones.
PLUGGED_DEFS = dg.Definitions(
    assets=[*(a for a in ASSETS if a.key != price_data_real.key), *PLUGGED],
    asset_checks=FRESHNESS_CHECKS,
    jobs=[five_minute_job, macro_job],
    schedules=[five_minute_schedule, macro_schedule],
    resources=defs.resources,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_new_assets_join_the_jobs_through_their_groups_in_dependency_order():
    job = PLUGGED_DEFS.resolve_job_def("five_minute_job")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {"price_data_real", "news_like", "features_like"} <= keys and not {"macro_like", "macro_indicators"} & keys
    assert job.partitions_def == FIVE_MINUTE_PARTITIONS
    order = [step.key for step in create_execution_plan(job).get_steps_to_execute_in_topo_order()]
    assert order.index("features_like") > max(order.index("price_data_real"), order.index("news_like"))
    # Every asset of the job must run a day of windows a run, or backfills fall back to one a run.
    assert job.backfill_policy == DAY
    macro = PLUGGED_DEFS.resolve_job_def("macro_job")
    assert {k.to_user_string() for k in macro.asset_layer.executable_asset_keys} == {"macro_like", "macro_indicators"}


def test_the_jobs_leave_the_freshness_checks_to_their_sensor():
    """A run judges the windows it writes; whether the newest due window is late is the sensor's question."""
    for name in ("five_minute_job", "macro_job"):
        checks = defs.resolve_job_def(name).asset_layer.asset_graph.asset_check_keys
        assert checks and not [k for k in checks if k.name == FRESHNESS_CHECK_NAME], name


def test_the_job_retries_failed_steps_and_carries_kubernetes_tags():
    job = defs.resolve_job_def("five_minute_job")
    assert job.backfill_policy == DAY
    policy = job.op_retry_policy
    assert (policy.max_retries, policy.delay, policy.backoff, policy.jitter) == (
        2,
        30,
        dg.Backoff.EXPONENTIAL,
        dg.Jitter.PLUS_MINUS,
    )
    assert job.tags["crypto/workload"] == "five-minute"
    k8s = json.loads(job.tags["dagster-k8s/config"])
    assert (
        k8s["job_metadata"]["labels"]
        == k8s["pod_template_spec_metadata"]["labels"]
        == {"crypto/workload": "five-minute"}
    )
    assert price_data_real.op.pool == "price_sources"
    assert derivatives_data.op.pool == "derivatives_sources"  # the futures hosts' own rate limits
    assert {"price_data_real", "derivatives_data"} <= {
        k.to_user_string() for k in job.asset_layer.executable_asset_keys
    }


@pytest.mark.parametrize(
    "tick, window",
    [
        (utc(2026, 11, 20, 12, 1), "2026-11-20-11:55"),
        (utc(2026, 11, 20, 12, 6), "2026-11-20-12:00"),
        (utc(2026, 11, 21, 0, 1), "2026-11-20-23:55"),
    ],
)
def test_the_schedule_runs_the_window_that_just_closed_a_minute_late(tick, window):
    assert five_minute_schedule.cron_schedule == offset_cron(LATE_DATA_OFFSET_MINUTES) == "1-59/5 * * * *"
    assert five_minute_schedule.execution_timezone == "UTC"
    assert five_minute_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.DagsterInstance.ephemeral() as instance:
        data = five_minute_schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        )
    (request,) = data.run_requests
    assert request.partition_key == request.run_key == window
    assert request.tags["crypto/trigger"] == "schedule"


def macro_tick(day: int) -> dg.RunRequest:
    with dg.DagsterInstance.ephemeral() as instance:
        # Built as the definitions build it, from the settings of the environment now.
        data = build_macro_schedule(load_settings().macro_lookback_days).evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=utc(2026, 11, day, 1, 0))
        )
    (request,) = data.run_requests
    return request


def test_the_macro_schedule_re_fetches_the_trailing_days_in_one_run(monkeypatch):
    assert macro_schedule.cron_schedule == "0 1 * * *"
    monkeypatch.setenv("CRYPTO_MACRO_LOOKBACK_DAYS", "3")
    request = macro_tick(21)
    assert (request.partition_key_range.start, request.partition_key_range.end) == ("2026-11-18", "2026-11-20")
    assert request.run_key == "2026-11-18...2026-11-20" and request.tags["crypto/trigger"] == "schedule"
    monkeypatch.setenv("CRYPTO_MACRO_LOOKBACK_DAYS", "1")
    assert macro_tick(21).partition_key_range.start == "2026-11-20"


def test_the_macro_lookback_stops_at_the_first_partition(monkeypatch):
    monkeypatch.setenv("CRYPTO_MACRO_LOOKBACK_DAYS", "100000")
    request = macro_tick(21)
    assert request.partition_key_range.start == DAILY_PARTITIONS.get_first_partition_key()
    assert request.partition_key_range.end == "2026-11-20"
    assert macro_run_days(utc(2026, 11, 21, 1, 0), 45)[-1] == "2026-11-20"
    assert macro_run_days(DAILY_PARTITIONS.start, 45) == []


def test_offset_must_stay_inside_the_window():
    with pytest.raises(ValueError):
        offset_cron(5)


def test_freshness_policies_are_added_where_missing_and_kept_where_declared():
    own = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=1))

    @dg.asset(partitions_def=FIVE_MINUTE_PARTITIONS, freshness_policy=own)
    def declared() -> None:
        """Declares its own policy."""

    policies = {
        spec.key.to_user_string(): spec.freshness_policy
        for asset in with_freshness_policies([price_data_real, macro_like, declared])
        for spec in asset.specs
    }
    assert policies == {"price_data_real": FIVE_MINUTE_POLICY, "macro_like": DAILY_POLICY, "declared": own}
    assert {spec.freshness_policy for a in ASSETS for spec in a.specs} == {FIVE_MINUTE_POLICY, DAILY_POLICY}


def test_freshness_checks_cover_each_live_asset_with_a_deadline():
    checks = build_freshness_checks(PLUGGED)
    keys = {k.to_user_string() for c in checks for k in c.check_keys}
    assert keys == {
        "price_data_real:freshness_check",
        "news_like:freshness_check",
        "features_like:freshness_check",
        "macro_like:freshness_check",
    }
    deadlines = {
        spec.metadata["dagster/freshness_params"].value["deadline_cron"] for c in checks for spec in c.check_specs
    }
    assert deadlines == {"4-59/5 * * * *", "0 3 * * *"}


def test_the_freshness_sensor_evaluates_in_the_daemon_and_records_only_changes():
    """No run is launched; an evaluation is recorded when a window becomes due or arrives."""
    now = {"t": utc(2026, 11, 20, 12, 6)}  # 12:04 deadline passed: window 11:55 is due
    rules = freshness_rules(PLUGGED)
    assert {r.asset_key.to_user_string(): r.deadline_cron for r in rules} == {
        "price_data_real": "4-59/5 * * * *",
        "news_like": "4-59/5 * * * *",
        "features_like": "4-59/5 * * * *",
        "macro_like": "0 3 * * *",
    }
    sensor = build_freshness_sensor(rules, clock=lambda: now["t"])
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.DagsterInstance.ephemeral() as instance:

        def tick(cursor):
            data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))
            assert not data.run_requests
            for event in data.asset_events:
                instance.report_runless_asset_event(event)
            return data.cursor, {e.asset_key.to_user_string(): (e.passed, e.description) for e in data.asset_events}

        dg.materialize([news_like], partition_key="2026-11-20-11:55", instance=instance)
        cursor, events = tick(json.dumps({"since": "2026-11-01T00:00:00+00:00"}))  # running since the 1st
        assert set(events) == {"price_data_real", "news_like", "features_like", "macro_like"}
        assert events["news_like"] == (
            True,
            "Asset is currently fresh, since partition 2026-11-20-11:55 has been observed/materialized.",
        )
        assert events["price_data_real"][0] is False and "partition 2026-11-20-11:55 " in events["price_data_real"][1]
        assert "partition 2026-11-19 " in events["macro_like"][1]  # due since 03:00 of the 20th
        cursor, events = tick(cursor)
        assert events == {}  # nothing changed: nothing recorded
        now["t"] = utc(2026, 11, 20, 12, 10)  # 12:09 passed: 12:00 is due, and missing
        cursor, events = tick(cursor)
        assert set(events) == {"price_data_real", "news_like", "features_like"}
        assert events["news_like"][0] is False and "Asset is overdue" in events["news_like"][1]
        dg.materialize([news_like], partition_key="2026-11-20-12:00", instance=instance)
        cursor, events = tick(cursor)
        assert events == {
            "news_like": (
                True,
                "Asset is currently fresh, since partition 2026-11-20-12:00 has been observed/materialized.",
            )
        }
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("news_like"), "freshness_check")]
        )
        (record,) = latest.values()
        assert record.status.value == "SUCCEEDED"
        assert instance.get_runs() and all(r.job_name == "__ephemeral_asset_job__" for r in instance.get_runs())


def test_windows_due_before_the_platform_started_are_not_late():
    """At first start nothing fails: a window due before then is recorded only once it arrives;
    the first window due after the start is late if it is missing."""
    now = {"t": utc(2026, 11, 20, 12, 6)}  # started now: 11:55 (due 12:04) and the 19th (due 03:00) are not late
    sensor = build_freshness_sensor(freshness_rules(PLUGGED), clock=lambda: now["t"])
    with dg.DagsterInstance.ephemeral() as instance:

        def tick(cursor):
            data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))
            for event in data.asset_events:
                instance.report_runless_asset_event(event)
            return data.cursor, {e.asset_key.to_user_string(): e.passed for e in data.asset_events}

        cursor, events = tick(None)
        assert events == {} and json.loads(cursor)["since"] == "2026-11-20T12:06:00+00:00"
        dg.materialize([news_like], partition_key="2026-11-20-11:55", instance=instance)  # healed
        cursor, events = tick(cursor)
        assert events == {"news_like": True}
        now["t"] = utc(2026, 11, 20, 12, 10)  # 12:00, due at 12:09, is the first due after the start
        cursor, events = tick(cursor)
        assert events == {"price_data_real": False, "news_like": False, "features_like": False}


def test_every_schedule_and_sensor_of_the_definitions_evaluates(sqlite_url, monkeypatch):
    monkeypatch.setenv("CRYPTO_DB_URL", sqlite_url)
    defs = build_definitions(load_settings())
    repo = defs.get_repository_def()
    assert {s.name for s in repo.schedule_defs} == {
        "five_minute_schedule",
        "macro_schedule",
        "backup_schedule",
        "retention_schedule",
        "lake_maintenance_schedule",
    }
    assert {s.name for s in repo.sensor_defs} == {
        "freshness_checks_sensor",
        "check_alert_sensor",
        "freshness_alert_sensor",
        "run_failure_alert_sensor",
        "gap_healing_sensor",
    }
    with dg.DagsterInstance.ephemeral() as instance:
        for schedule in repo.schedule_defs:
            data = schedule.evaluate_tick(
                dg.build_schedule_context(instance=instance, scheduled_execution_time=utc(2026, 11, 20, 12, 1))
            )
            assert data.run_requests
        for sensor in repo.sensor_defs:
            context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
            data = sensor.evaluate_tick(context)
            assert data.run_requests or data.skip_message, sensor.name
