"""Alert sensors against a real (temporary) Dagster instance and a fake webhook.

Events come from real runs of small assets and checks executed into the instance; the sensors
are evaluated with ``build_sensor_context`` the way the daemon does, cursor carried from tick to
tick. The fake webhook records what it accepted, and fails on demand.
"""

import json

import dagster as dg
import pytest

from resources.config.settings import load_settings
from resources.dagster_private import WILL_RETRY_TAG
from sensors.alerts import (
    AlertCursor,
    AlertResource,
    check_alert_sensor,
    freshness_alert_sensor,
    run_failure_alert_sensor,
)
from sensors.webhook import Alert, WebhookNotifier, slack_payload
from testkit.fakes.fake_webhook import FakeWebhook

PARTS = dg.TimeWindowPartitionsDefinition(
    cron_schedule="*/5 * * * *", start="2026-11-01-00:00", fmt="%Y-%m-%d-%H:%M", timezone="UTC"
)
KEY = "2026-11-20-12:00"
UI = "http://dagster.example:3000"
STATE = {"check_passes": False, "asset_raises": False}


@dg.asset(partitions_def=PARTS)
def prices_like(context: dg.AssetExecutionContext) -> None:
    """A stand-in 5-minute asset that fails on demand."""
    if STATE["asset_raises"]:
        raise RuntimeError("exchange: failed after 5 attempts; last error: HTTP 503")


@dg.asset_check(asset=prices_like, blocking=True)
def price_sanity(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """A stand-in blocking check whose verdict the test sets."""
    window = context.op_execution_context.partition_time_window
    return dg.AssetCheckResult(
        passed=STATE["check_passes"],
        severity=dg.AssetCheckSeverity.ERROR,
        description="3 move(s) beyond x3 in one window",
        metadata={
            "window_start": window.start.replace(tzinfo=None).isoformat(),
            "window_end": window.end.replace(tzinfo=None).isoformat(),
        },
    )


@dg.asset(partitions_def=PARTS, deps=[prices_like])
def downstream_like() -> None:
    """Depends on prices_like, so its blocking check gates it."""


FRESHNESS = dg.build_time_partition_freshness_checks(
    assets=[prices_like], deadline_cron="*/5 * * * *", severity=dg.AssetCheckSeverity.ERROR
)
DEFS = dg.Definitions(assets=[prices_like, downstream_like], asset_checks=[price_sanity, *FRESHNESS])


@pytest.fixture
def instance():
    """An in-memory instance (SQL storages on in-memory SQLite): the same queries as a file instance,
    without a disk commit per event, which made a day backfill's 900 events cost 14 s instead of 2."""
    with dg.DagsterInstance.ephemeral(
        settings={"run_retries": {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}}
    ) as inst:
        yield inst


@pytest.fixture
def hook(monkeypatch):
    with FakeWebhook() as server:
        monkeypatch.setenv("CRYPTO_ALERT_WEBHOOK_URL", server.url)
        monkeypatch.setenv("CRYPTO_UI_URL", UI)
        yield server


@pytest.fixture(autouse=True)
def _reset_state():
    STATE.update(check_passes=False, asset_raises=False)


def run(instance, *, check_passes=False, asset_raises=False, key=KEY, tags=None) -> dg.ExecuteInProcessResult:
    STATE.update(check_passes=check_passes, asset_raises=asset_raises)
    return dg.materialize(
        [prices_like, price_sanity, downstream_like],
        partition_key=key,
        instance=instance,
        raise_on_error=False,
        tags=tags,
    )


def tick(sensor: dg.SensorDefinition, instance, cursor: str | None) -> tuple[str | None, str | None]:
    # The alerts resource as the definitions build it, from the settings of the environment now.
    alerts = AlertResource.from_settings(load_settings())
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=DEFS, resources={"alerts": alerts})
    data = sensor.evaluate_tick(context)
    return data.cursor, data.skip_message


def test_a_failed_check_sends_one_message_with_window_and_run_link(instance, hook):
    result = run(instance)
    assert not result.success  # the blocking check stopped the run
    cursor, message = tick(check_alert_sensor, instance, None)
    assert message == "sent 1 alert(s)"
    (payload,) = hook.messages
    assert "prices_like: check price_sanity failed" in payload["text"]
    assert "window 2026-11-20T12:00:00 to 2026-11-20T12:05:00" in payload["text"]
    assert f"{UI}/runs/{result.run_id}" in payload["text"]
    button = payload["blocks"][-1]["elements"][0]
    assert button["url"] == f"{UI}/runs/{result.run_id}"
    # Nothing new: nothing sent, and a restarted daemon (same persisted cursor) sends nothing either.
    cursor, _ = tick(check_alert_sensor, instance, cursor)
    cursor, _ = tick(check_alert_sensor, instance, cursor)
    assert len(hook.messages) == 1


def test_a_check_that_keeps_failing_alerts_once_and_again_after_it_recovered(instance, hook):
    run(instance)
    cursor, _ = tick(check_alert_sensor, instance, None)
    run(instance, key="2026-11-20-12:05")  # still failing: folded into the first message
    cursor, _ = tick(check_alert_sensor, instance, cursor)
    assert len(hook.messages) == 1
    run(instance, check_passes=True, key="2026-11-20-12:10")
    run(instance, key="2026-11-20-12:15")
    cursor, _ = tick(check_alert_sensor, instance, cursor)
    assert len(hook.messages) == 2
    assert "2026-11-20T12:15:00" in hook.messages[1]["text"]
    assert json.loads(cursor)["failing"] == ["prices_like:price_sanity"]


def test_a_webhook_500_is_retried_and_the_alert_is_sent_once(instance, hook):
    run(instance)
    hook.faults.append("500")
    tick(check_alert_sensor, instance, None)
    assert len(hook.attempts) == 2 and len(hook.messages) == 1


def test_a_webhook_that_stays_down_loses_nothing_and_sends_nothing_twice(instance, hook):
    run(instance)
    run(instance, asset_raises=True, key="2026-11-20-12:05")
    hook.down = True
    check_cursor, message = tick(check_alert_sensor, instance, None)
    run_cursor, run_message = tick(run_failure_alert_sensor, instance, None)
    assert hook.messages == [] and len(hook.attempts) == 6  # 3 tries each
    assert "webhook failed" in message and "<webhook>" in message and hook.url not in message
    assert AlertCursor.parse(check_cursor).failing == set()
    hook.down = False
    check_cursor, message = tick(check_alert_sensor, instance, check_cursor)
    run_cursor, run_message = tick(run_failure_alert_sensor, instance, run_cursor)
    assert message == run_message == "sent 1 alert(s)"
    tick(check_alert_sensor, instance, check_cursor)
    tick(run_failure_alert_sensor, instance, run_cursor)
    assert len(hook.messages) == 2


def test_a_failed_run_sends_one_message_and_a_blocked_run_only_its_check_message(instance, hook):
    blocked = run(instance)
    failed = run(instance, asset_raises=True, key="2026-11-20-12:05")
    assert not blocked.success and not failed.success
    cursor, message = tick(run_failure_alert_sensor, instance, None)
    assert message == "sent 1 alert(s)"
    (payload,) = hook.messages
    assert payload["text"].startswith("[ERROR] run of __ephemeral_asset_job__ failed | window 2026-11-20-12:05")
    assert "steps failed: prices_like" in payload["text"]
    assert (
        "RuntimeError: exchange: failed after 5 attempts; last error: HTTP 503" in payload["text"]
        and f"{UI}/runs/{failed.run_id}" in payload["text"]
    )
    tick(run_failure_alert_sensor, instance, cursor)
    assert len(hook.messages) == 1


def test_a_run_that_will_be_retried_is_not_alerted_until_its_last_attempt(instance, hook):
    failed = run(instance, asset_raises=True)
    instance.add_run_tags(failed.run_id, {WILL_RETRY_TAG: "true"})
    cursor, message = tick(run_failure_alert_sensor, instance, None)
    assert hook.messages == [] and message == "sent 0 alert(s)"
    retry = run(instance, asset_raises=True, tags={"dagster/retry_number": "1"})
    cursor, message = tick(run_failure_alert_sensor, instance, cursor)
    assert len(hook.messages) == 1 and retry.run_id in hook.messages[0]["text"]
    assert "after 1 automatic retry" in hook.messages[0]["text"]


def test_a_late_window_sends_one_freshness_message(instance, hook):
    run(instance, check_passes=True)
    # A run's own freshness evaluation (a UI materialization) is not the verdict: no message.
    result = dg.materialize(
        [prices_like, *FRESHNESS], selection=dg.AssetSelection.checks(*FRESHNESS), instance=instance
    )
    assert not result.get_asset_check_evaluations()[0].passed
    cursor, _ = tick(check_alert_sensor, instance, None)
    cursor, _ = tick(freshness_alert_sensor, instance, None)
    assert hook.messages == []
    for _ in range(2):  # the freshness sensor's verdict, recorded twice while still late: one message
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=prices_like.key,
                check_name="freshness_check",
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description="Asset is overdue. We expected partition 2026-11-20-12:00 to have arrived, and it has not.",
            )
        )
    cursor, message = tick(freshness_alert_sensor, instance, cursor)
    (payload,) = hook.messages
    assert payload["text"].startswith("[ERROR] prices_like is late | window ")
    assert "We expected partition" in payload["text"]
    tick(freshness_alert_sensor, instance, cursor)
    assert len(hook.messages) == 1


def test_without_a_webhook_alerts_are_logged_and_the_cursor_moves_on(instance, monkeypatch, caplog):
    monkeypatch.delenv("CRYPTO_ALERT_WEBHOOK_URL", raising=False)
    run(instance)
    cursor, message = tick(check_alert_sensor, instance, None)
    assert message == "sent 1 alert(s)"
    assert AlertCursor.parse(cursor).failing == {"prices_like:price_sanity"}


def test_payload_is_slack_compatible():
    alert = Alert(
        kind="check",
        title="price_data_real: check price_sanity failed",
        detail="2 moves",
        severity="WARN",
        asset="price_data_real",
        window="a to b",
        run_id="r1",
        run_url=f"{UI}/runs/r1",
    )
    payload = slack_payload(alert)
    assert (
        payload["text"] == f"[WARN] price_data_real: check price_sanity failed | window a to b | 2 moves | {UI}/runs/r1"
    )
    assert [b["type"] for b in payload["blocks"]] == ["section", "context", "actions"]
    assert "*Window:* a to b" in payload["blocks"][1]["elements"][0]["text"]


def test_notifier_posts_json_to_the_exact_url(monkeypatch):
    with FakeWebhook() as server:
        notifier = WebhookNotifier(server.url, backoff_base_s=0.01)
        notifier.send(Alert(kind="run", title="t", detail="d"))
        notifier.close()
    assert server.attempts == [{"path": FakeWebhook.path, "fault": None}]
    assert server.texts() == ["[ERROR] t | d"]


def test_a_tick_that_dies_after_delivering_is_not_sent_again(instance, hook, monkeypatch):
    """Three failures; the tick dies after two were delivered (its cursor never saved, as when the
    daemon times it out): the next tick, from the last saved cursor, sends only the third."""
    for minute, passes in ((0, False), (5, True), (10, False), (15, True), (20, False)):
        run(instance, check_passes=passes, key=f"2026-11-20-12:{minute:02d}")
    import sensors.alerts as alerts

    real_deliver = alerts._deliver
    calls = []

    def dying_deliver(context, notifier, alert):
        if len(calls) == 2:
            raise RuntimeError("the tick timed out")
        calls.append(alert)
        return real_deliver(context, notifier, alert)

    monkeypatch.setattr(alerts, "_deliver", dying_deliver)
    with pytest.raises(Exception, match="timed out"):
        tick(check_alert_sensor, instance, None)
    assert len(hook.messages) == 2
    monkeypatch.setattr(alerts, "_deliver", real_deliver)
    cursor, message = tick(check_alert_sensor, instance, None)  # Dagster saved no cursor
    assert message == "sent 1 alert(s)"
    assert [m["text"].split(" | ")[1] for m in hook.messages] == [
        "window 2026-11-20T12:00:00 to 2026-11-20T12:05:00",
        "window 2026-11-20T12:10:00 to 2026-11-20T12:15:00",
        "window 2026-11-20T12:20:00 to 2026-11-20T12:25:00",
    ]
    ids = [m["blocks"][1]["elements"][-1]["text"] for m in hook.messages]
    assert len(set(ids)) == 3 and all(i.startswith("alert id check:prices_like:price_sanity:") for i in ids)
    tick(check_alert_sensor, instance, cursor)
    assert len(hook.messages) == 3


def _backfill_day(instance, day: str, *, check_passes: bool) -> None:
    """One multi-window run over a day of windows: 288 planned check rows, one evaluation."""
    STATE.update(check_passes=check_passes, asset_raises=False)
    tags = {"dagster/asset_partition_range_start": f"{day}-00:00", "dagster/asset_partition_range_end": f"{day}-23:55"}
    dg.materialize([prices_like, price_sanity, downstream_like], instance=instance, raise_on_error=False, tags=tags)


def test_planned_rows_of_backfills_cost_one_run_lookup_per_run(instance, hook):
    """Thousands of planned records (a day backfill plans one per window and check) are skipped in
    bulk: run lookups grow with the runs, not the records, and the tick stays fast."""
    import time as clock

    from sensors.check_history import RunStates, check_rows_after

    days = [f"2026-11-{d:02d}" for d in range(2, 5)]
    for day in days:
        _backfill_day(instance, day, check_passes=day != days[-1])
    key = dg.AssetCheckKey(dg.AssetKey("prices_like"), "price_sanity")
    rows = check_rows_after(instance, key, -1, 100_000)
    assert sum(r.planned for r in rows) == 288 * len(days)
    assert sum(not r.planned for r in rows) == len(days)
    looked_up = []
    real_prefetch = RunStates.prefetch

    def counting_prefetch(self, run_ids):
        before = self.lookups
        real_prefetch(self, run_ids)
        looked_up.append(self.lookups - before)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RunStates, "prefetch", counting_prefetch)
        started = clock.perf_counter()
        cursor, message = tick(check_alert_sensor, instance, None)
        elapsed = clock.perf_counter() - started
    assert message == "sent 1 alert(s)" and "2026-11-04" in hook.messages[0]["text"]
    assert sum(looked_up) <= 2  # one batch a page of rows, not one lookup per record
    assert elapsed < 10
    assert AlertCursor.parse(cursor).after["prices_like:price_sanity"] == rows[-1].id


def test_a_tick_past_its_budget_saves_its_progress_and_the_next_continues(instance, hook, monkeypatch):
    import sensors.alerts as alerts

    for day in ("2026-11-02", "2026-11-03"):
        _backfill_day(instance, day, check_passes=False)
    run(instance, check_passes=True, key="2026-11-20-12:00")
    run(instance, check_passes=False, key="2026-11-20-12:05")
    monkeypatch.setattr(alerts, "PAGE_SIZE", 100)
    monkeypatch.setattr(alerts, "MAX_ROWS_PER_TICK", 150)
    cursor, messages, ticks = None, [], 0
    while True:
        cursor, message = tick(check_alert_sensor, instance, cursor)
        messages.append(message)
        ticks += 1
        if "next tick continues" not in message:
            break
        assert ticks < 20
    assert ticks >= 3  # 580 rows of this check, two pages of 100 a tick
    texts = hook.texts()
    assert len(texts) == 2  # the backfill's failure (folded for its second day) and the later one
    assert "2026-11-02-00:00 to 2026-11-02-23:55" in texts[0] or "2026-11-02T00:00:00" in texts[0]
    assert "2026-11-20T12:05:00" in texts[1]
