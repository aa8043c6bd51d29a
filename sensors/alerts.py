"""Alert sensors: failed checks, late windows and failed runs, one webhook message each.

Three sensors read Dagster's records in storage order (each check's executions, or the run
failure events), each from its own cursor:

- ``check_alert_sensor``: failed data-quality checks (``crypto_assets/checks.py``);
- ``freshness_alert_sensor``: failed partition freshness checks, i.e. a window that was due and
  is not committed;
- ``run_failure_alert_sensor``: runs that failed for good.

Exactly once: each sensor's progress (the last record handled per check or of the run events,
and the checks currently failing) is written to the instance's key-value store as each alert is
accepted by the webhook, as well as returned as the tick's cursor. A tick that dies after
delivering (a timeout, a killed daemon or code server) never had its cursor saved by Dagster, but
the next tick starts from that ledger and sends only what was not sent; a webhook outage delays
alerts and loses none, since the progress only moves past an alert once it was accepted. Each
message carries a stable alert id, so a receiver can drop the one duplicate a crash between the
webhook's answer and the ledger's write could cause.

Bounded ticks: records are read after the cursor by id, a page at a time (planned records of a
multi-window run handled in bulk: one run lookup per run, not per record), and a tick stops with
its progress saved once it has spent ``TICK_BUDGET_S`` or read ``MAX_ROWS_PER_TICK`` rows; the
next tick continues. A tick's cost is thus the new work since the last one, not the history.

A check alerts when it starts failing: its later failures (the same problem seen by the next run,
a retried run, a re-evaluated freshness check) are folded into that message until it passes
again. A run alerts when it will not be retried (``dagster/will_retry`` is false), and not when
it failed only because a blocking check failed, which has its own message. With no webhook
configured (``CRYPTO_ALERT_WEBHOOK_URL``) the messages are logged.
"""

import json
import logging
import re
import time
from dataclasses import dataclass, field

import dagster as dg

from crypto_assets.freshness_checks import FRESHNESS_CHECK_NAME
from resources.config.settings import Settings, ui_url_of
from resources.dagster_private import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    WILL_RETRY_TAG,
    kv_get,
    kv_set,
)
from resources.storage.dagster_resources import resource_value
from sensors.check_history import RunStates, check_rows_after
from sensors.webhook import Alert, WebhookError, WebhookNotifier

PAGE_SIZE = 1000
MAX_ALERTS_PER_TICK = 25
# A tick stops (its progress saved) past either bound; the next tick continues from there.
TICK_BUDGET_S = 15.0
MAX_ROWS_PER_TICK = 50_000
# Events older than this when first seen (a sensor started on an old instance) are not sent.
MAX_EVENT_AGE_S = 24 * 3600
# How long a failed run may go without its dagster/will_retry tag before it is taken as final.
WILL_RETRY_GRACE_S = 120
RUN_FAILURES = "run_failures"
PARTITION_TAG = "dagster/partition"
LEDGER_PREFIX = "crypto/alert_progress/"
_EXPECTED_PARTITION = re.compile(r"partition (\S+?)[ ,.]")


class AlertResource(dg.ConfigurableResource):
    """Where alerts go (``CRYPTO_ALERT_WEBHOOK_URL``; empty: they are logged) and the Dagster UI
    their links point at (``CRYPTO_UI_URL``)."""

    webhook_url: str = ""
    ui_url: str = ui_url_of(None, None)

    @classmethod
    def from_settings(cls, settings: Settings) -> "AlertResource":
        """The webhook and UI of ``settings``."""
        return cls(webhook_url=resource_value(settings, "alert_webhook_url"), ui_url=settings.ui_url)

    def notifier(self, logger: logging.Logger) -> WebhookNotifier:
        """A notifier posting to the webhook (or logging, without one)."""
        return WebhookNotifier(self.webhook_url or None, logger=logger)


@dataclass
class AlertCursor:
    """An alert sensor's progress: the last record handled (per check, or of the run events), the
    checks currently failing (already alerted), and ``seq``, which grows with every alert sent."""

    after: dict[str, int] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    seq: int = 0

    @classmethod
    def parse(cls, raw: str | None) -> "AlertCursor":
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(
            after={k: int(v) for k, v in data.get("after", {}).items()},
            failing=set(data.get("failing", [])),
            seq=int(data.get("seq", 0)),
        )

    def dump(self) -> str:
        return json.dumps({"after": dict(sorted(self.after.items())), "failing": sorted(self.failing), "seq": self.seq})


class ProgressLedger:
    """A sensor's :class:`AlertCursor`, kept in the instance's key-value store as alerts go out.

    Dagster saves a sensor's cursor only when its tick completes (``context.update_cursor`` and
    ``SensorResult(cursor=...)`` alike); this ledger is written after every accepted alert, so the
    progress of a tick that died survives it. Dagster has no public key-value store, hence
    ``kv_get``/``kv_set`` of ``resources/dagster_private.py``.
    """

    def __init__(self, instance: dg.DagsterInstance, sensor_name: str):
        self._instance = instance
        self.key = f"{LEDGER_PREFIX}{sensor_name}"

    def load(self, dagster_cursor: str | None) -> AlertCursor:
        """The most advanced of the ledger and the cursor Dagster saved."""
        saved = AlertCursor.parse(dagster_cursor)
        ledger = AlertCursor.parse(kv_get(self._instance, self.key))
        return ledger if ledger.seq > saved.seq else saved

    def save(self, cursor: AlertCursor) -> None:
        """Persist ``cursor`` now."""
        kv_set(self._instance, self.key, cursor.dump())


@dataclass
class TickBudget:
    """What one tick may still spend, and what it did."""

    deadline: float
    sent: int = 0
    rows: int = 0

    @classmethod
    def start(cls) -> "TickBudget":
        return cls(deadline=time.monotonic() + TICK_BUDGET_S)

    @property
    def spent(self) -> bool:
        """True once the time or the rows of this tick are used up."""
        return self.rows >= MAX_ROWS_PER_TICK or time.monotonic() >= self.deadline


def run_url(ui_url: str, run_id: str | None) -> str | None:
    """The run's page in the Dagster UI."""
    return f"{ui_url}/runs/{run_id}" if run_id else None


def window_of_run(run: dg.DagsterRun | None) -> str | None:
    """The run's partition, or its partition range, as text."""
    if run is None:
        return None
    if run.tags.get(ASSET_PARTITION_RANGE_START_TAG):
        return f"{run.tags[ASSET_PARTITION_RANGE_START_TAG]} to {run.tags.get(ASSET_PARTITION_RANGE_END_TAG, '?')}"
    return run.tags.get(PARTITION_TAG)


def _metadata_text(evaluation: dg.AssetCheckEvaluation, key: str) -> str | None:
    value = evaluation.metadata.get(key)
    return None if value is None else str(getattr(value, "value", value))


def check_alert(
    evaluation: dg.AssetCheckEvaluation, run: dg.DagsterRun | None, ui_url: str, alert_id: str | None = None
) -> Alert:
    """The message of a failed asset check (data-quality or freshness)."""
    asset = evaluation.asset_key.to_user_string()
    run_id = run.run_id if run else None
    severity = evaluation.severity.value if evaluation.severity else "ERROR"
    if evaluation.check_name == FRESHNESS_CHECK_NAME:
        expected = _EXPECTED_PARTITION.search(evaluation.description or "")
        return Alert(
            kind="freshness",
            title=f"{asset} is late",
            severity=severity,
            asset=asset,
            window=expected.group(1) if expected else None,
            detail=evaluation.description or "the latest due window is not committed",
            run_id=run_id,
            run_url=run_url(ui_url, run_id),
            alert_id=alert_id,
        )
    start, end = _metadata_text(evaluation, "window_start"), _metadata_text(evaluation, "window_end")
    window = f"{start} to {end}" if start and end else window_of_run(run)
    blocking = " (blocking: downstream assets were not computed)" if evaluation.blocking and severity == "ERROR" else ""
    return Alert(
        kind="check",
        title=f"{asset}: check {evaluation.check_name} failed{blocking}",
        severity=severity,
        asset=asset,
        window=window,
        detail=evaluation.description or "",
        run_id=run_id,
        run_url=run_url(ui_url, run_id),
        alert_id=alert_id,
    )


def _deliver(context: dg.SensorEvaluationContext, notifier: WebhookNotifier, alert: Alert) -> str | None:
    """Send ``alert``; the failure's text, or None once the webhook accepted it."""
    try:
        notifier.send(alert)
    except WebhookError as exc:
        context.log.error("alert not delivered, kept for the next tick: %s", exc)
        return str(exc)
    return None


def _record_sent(cursor: AlertCursor, budget: TickBudget, ledger: ProgressLedger) -> None:
    """An alert was accepted: count it and persist the progress at once (exactly once across a dying tick)."""
    budget.sent += 1
    cursor.seq += 1
    ledger.save(cursor)


def _result(cursor: AlertCursor, budget: TickBudget, problem: str | None, more: bool) -> dg.SensorResult:
    message = f"sent {budget.sent} alert(s)"
    if problem:
        message += f"; webhook failed ({problem}); the rest are retried next tick"
    elif more:
        message += f"; read {budget.rows} record(s), the tick's budget: the next tick continues"
    return dg.SensorResult(cursor=cursor.dump(), skip_reason=message)


def build_check_alert_sensor(
    name: str, *, freshness: bool, description: str, minimum_interval_seconds: int = 30
) -> dg.SensorDefinition:
    """A sensor that sends one message when an asset check (freshness or not) starts failing.

    It reads each check's executions after its cursor, oldest first (see
    ``sensors/check_history.py``), within the tick's budget.
    """

    @dg.sensor(
        name=name,
        description=description,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def check_alerts(context: dg.SensorEvaluationContext, alerts: AlertResource) -> dg.SensorResult:
        if context.repository_def is None:
            raise dg.DagsterInvariantViolationError(f"{name} needs the repository to list its checks")
        ledger = ProgressLedger(context.instance, name)
        cursor = ledger.load(context.cursor)
        keys = sorted(
            (
                k
                for k in context.repository_def.asset_graph.asset_check_keys
                if (k.name == FRESHNESS_CHECK_NAME) == freshness
            ),
            key=lambda k: k.to_user_string(),
        )
        reader = _CheckReader(context, alerts.notifier(context.log), ledger, cursor, alerts.ui_url)
        problem, more = None, False
        try:
            for check_key in keys:
                problem, more = reader.alert_new_executions(check_key)
                if problem or more:
                    break
        finally:
            reader.notifier.close()
        ledger.save(cursor)
        return _result(cursor, reader.budget, problem, more)

    return check_alerts


class _CheckReader:
    """One tick of a check alert sensor: its budget, the runs it looked up, its progress."""

    def __init__(
        self,
        context: dg.SensorEvaluationContext,
        notifier: WebhookNotifier,
        ledger: ProgressLedger,
        cursor: AlertCursor,
        ui_url: str,
    ):
        self.context, self.notifier, self.ledger, self.cursor, self.ui_url = context, notifier, ledger, cursor, ui_url
        self.instance = context.instance
        self.budget = TickBudget.start()
        self.runs = RunStates(self.instance)
        self.now = time.time()

    def alert_new_executions(self, check_key: dg.AssetCheckKey) -> tuple[str | None, bool]:
        """Alert the new executions of one check: (the webhook's failure, whether the tick ran out
        of budget or alerts). Stops, leaving the cursor, at an execution whose run is in flight."""
        key = check_key.to_user_string()
        cursor = self.cursor
        while True:
            if self.budget.spent:
                return None, True
            rows = check_rows_after(self.instance, check_key, cursor.after.get(key, -1), PAGE_SIZE)
            self.budget.rows += len(rows)
            self.runs.prefetch(row.run_id for row in rows if row.planned)
            for row in rows:
                evaluation = row.evaluation
                if check_key.name == FRESHNESS_CHECK_NAME and row.run_id:
                    # Lateness is the freshness sensor's verdict (runless, and aware of when the
                    # platform started); a run's own evaluation (a UI or CLI materialization) is not.
                    cursor.after[key] = row.id
                    continue
                if evaluation is None:
                    if not self.runs.finished(row.run_id):
                        return None, False  # planned and still running: its verdict comes later
                    cursor.after[key] = row.id  # planned, but its run ended without evaluating it
                    continue
                if evaluation.passed or key in cursor.failing or self.now - row.created > MAX_EVENT_AGE_S:
                    if evaluation.passed:
                        cursor.failing.discard(key)
                    else:
                        cursor.failing.add(key)
                    cursor.after[key] = row.id
                    continue
                if self.budget.sent >= MAX_ALERTS_PER_TICK:
                    return None, True
                run = self.instance.get_run_by_id(row.run_id) if row.run_id else None
                alert = check_alert(evaluation, run, self.ui_url, alert_id=f"check:{key}:{row.id}")
                problem = _deliver(self.context, self.notifier, alert)
                if problem:
                    return problem, False
                cursor.failing.add(key)
                cursor.after[key] = row.id
                _record_sent(cursor, self.budget, self.ledger)
            if len(rows) < PAGE_SIZE:
                return None, False


check_alert_sensor = build_check_alert_sensor(
    "check_alert_sensor",
    freshness=False,
    description="Sends one webhook message when a data-quality check starts failing "
    "(duplicate or null keys, impossible prices, coverage, gaps, NaN ratio, label mix).",
)

freshness_alert_sensor = build_check_alert_sensor(
    "freshness_alert_sensor",
    freshness=True,
    description="Sends one webhook message when a window is late: its partition freshness check failed.",
)


def step_failures(instance: dg.DagsterInstance, run_id: str) -> list[dg.DagsterEvent]:
    """The run's step failure events, in order: the read behind Dagster's public
    ``RunFailureSensorContext.get_step_failure_events``."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    return [record.event_log_entry.dagster_event for record in records if record.event_log_entry.dagster_event]


def _failed_only_on_blocking_checks(failures: list[dg.DagsterEvent]) -> bool:
    errors = [event.step_failure_data.error for event in failures]
    return bool(errors) and all(
        error is not None and error.cls_name == "DagsterAssetCheckFailedError" for error in errors
    )


def run_failure_alert(
    run: dg.DagsterRun, failures: list[dg.DagsterEvent], ui_url: str, alert_id: str | None = None
) -> Alert:
    """The message of a run that failed for good (``failures``: its :func:`step_failures`): its
    job, window, failed steps and first error."""
    steps = sorted({event.step_key for event in failures if event.step_key})
    error = next(
        (event.step_failure_data.error for event in failures if event.step_failure_data.error),
        None,
    )
    while error is not None and error.cls_name == "DagsterExecutionStepExecutionError" and error.cause:
        error = error.cause  # the user code's own exception
    detail = f"steps failed: {', '.join(steps)}" if steps else "the run failed outside its steps"
    if error is not None:
        first_line = error.message.strip().splitlines()[0] if error.message.strip() else str(error.cls_name)
        detail += f"; {error.cls_name}: {first_line[:300]}"
    attempts = run.tags.get("dagster/retry_number")
    if attempts:
        detail += f" (after {int(attempts)} automatic retr{'y' if attempts == '1' else 'ies'})"
    return Alert(
        kind="run",
        title=f"run of {run.job_name} failed",
        detail=detail,
        asset=", ".join(sorted(k.to_user_string() for k in run.asset_selection or [])) or None,
        window=window_of_run(run),
        run_id=run.run_id,
        run_url=run_url(ui_url, run.run_id),
        alert_id=alert_id,
    )


@dg.sensor(
    name="run_failure_alert_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends one webhook message for each run that failed for good (not when a run "
    "retry follows, nor when only a blocking check failed: that has its own alert).",
)
def run_failure_alert_sensor(context: dg.SensorEvaluationContext, alerts: AlertResource) -> dg.SensorResult:
    """One message per run that failed and will not be retried, with its window and a link."""
    notifier = alerts.notifier(context.log)
    ledger = ProgressLedger(context.instance, "run_failure_alert_sensor")
    cursor = ledger.load(context.cursor)
    instance = context.instance
    after = cursor.after.get(RUN_FAILURES, -1)
    records = instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(
            event_type=dg.DagsterEventType.RUN_FAILURE, after_storage_id=after if after >= 0 else None
        ),
        limit=PAGE_SIZE,
        ascending=True,
    ).records
    budget = TickBudget.start()
    budget.rows = len(records)
    problem, more = None, len(records) == PAGE_SIZE
    now = time.time()
    try:
        for record in records:
            if budget.spent:
                more = True
                break
            entry = record.event_log_entry
            run = instance.get_run_by_id(entry.run_id)
            age = now - entry.timestamp
            if (
                run is not None
                and instance.run_retries_enabled
                and WILL_RETRY_TAG not in run.tags
                and age < WILL_RETRY_GRACE_S
            ):
                more = False
                break  # the retry decision is not recorded yet: look again next tick
            if run is None or age > MAX_EVENT_AGE_S or run.tags.get(WILL_RETRY_TAG) == "true":
                cursor.after[RUN_FAILURES] = record.storage_id
                continue
            failures = step_failures(instance, run.run_id)
            if _failed_only_on_blocking_checks(failures):
                cursor.after[RUN_FAILURES] = record.storage_id
                continue  # the blocking check has its own alert
            if budget.sent >= MAX_ALERTS_PER_TICK:
                more = True
                break
            problem = _deliver(
                context, notifier, run_failure_alert(run, failures, alerts.ui_url, alert_id=f"run:{run.run_id}")
            )
            if problem:
                break
            cursor.after[RUN_FAILURES] = record.storage_id
            _record_sent(cursor, budget, ledger)
    finally:
        notifier.close()
    ledger.save(cursor)
    return _result(cursor, budget, problem, more and not problem)


ALERT_SENSORS: tuple[dg.SensorDefinition, ...] = (check_alert_sensor, freshness_alert_sensor, run_failure_alert_sensor)
