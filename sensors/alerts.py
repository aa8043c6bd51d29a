"""Alert sensors: failed checks, late windows and failed runs, one webhook message each.

Three sensors read Dagster's records in storage order (each check's executions, or the run
failure events), each from its own cursor:

- ``check_alert_sensor``: failed data-quality checks (``crypto_assets/checks.py``);
- ``freshness_alert_sensor``: failed partition freshness checks, i.e. a window that was due and
  is not committed;
- ``run_failure_alert_sensor``: runs that failed for good.

Exactly once, in practice: the cursor (persisted by Dagster with each tick) only moves past an
event once its message was accepted by the webhook, so a webhook outage or a daemon restart
delays alerts but loses none; a tick that cannot deliver stops there and the next one resumes.
A check alerts when it starts failing: its later failures (the same problem seen by the next run,
a retried run, a re-evaluated freshness check) are folded into that message until it passes
again. A run alerts when it will not be retried (``dagster/will_retry`` is false), and not when
it failed only because a blocking check failed, which has its own message. With no webhook
configured (``CRYPTO_ALERT_WEBHOOK_URL``) the messages are logged.
"""

import json
import re
import time
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    WILL_RETRY_TAG,
)

from resources.settings import load_settings
from sensors.webhook import Alert, WebhookError, WebhookNotifier

FETCH_LIMIT = 500
MAX_ALERTS_PER_TICK = 25
# Events older than this when first seen (a sensor started on an old instance) are not sent.
MAX_EVENT_AGE_S = 24 * 3600
# How long a failed run may go without its dagster/will_retry tag before it is taken as final.
WILL_RETRY_GRACE_S = 120
FRESHNESS_CHECK_NAME = "freshness_check"
RUN_FAILURES = "run_failures"
PARTITION_TAG = "dagster/partition"
_EXPECTED_PARTITION = re.compile(r"partition (\S+?)[ ,.]")


@dataclass
class AlertCursor:
    """An alert sensor's cursor: the last record handled (per check, or of the run events), and
    the checks currently failing (already alerted)."""

    after: dict[str, int] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, raw: str | None) -> "AlertCursor":
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(after={k: int(v) for k, v in data.get("after", {}).items()},
                   failing=set(data.get("failing", [])))

    def dump(self) -> str:
        return json.dumps({"after": dict(sorted(self.after.items())), "failing": sorted(self.failing)})


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


def check_alert(evaluation: dg.AssetCheckEvaluation, run: dg.DagsterRun | None, ui_url: str) -> Alert:
    """The message of a failed asset check (data-quality or freshness)."""
    asset = evaluation.asset_key.to_user_string()
    run_id = run.run_id if run else None
    severity = evaluation.severity.value if evaluation.severity else "ERROR"
    if evaluation.check_name == FRESHNESS_CHECK_NAME:
        expected = _EXPECTED_PARTITION.search(evaluation.description or "")
        return Alert(kind="freshness", title=f"{asset} is late", severity=severity, asset=asset,
                     window=expected.group(1) if expected else None,
                     detail=evaluation.description or "the latest due window is not committed",
                     run_id=run_id, run_url=run_url(ui_url, run_id))
    start, end = _metadata_text(evaluation, "window_start"), _metadata_text(evaluation, "window_end")
    window = f"{start} to {end}" if start and end else window_of_run(run)
    blocking = " (blocking: downstream assets were not computed)" if evaluation.blocking and severity == "ERROR" else ""
    return Alert(kind="check", title=f"{asset}: check {evaluation.check_name} failed{blocking}", severity=severity,
                 asset=asset, window=window, detail=evaluation.description or "", run_id=run_id,
                 run_url=run_url(ui_url, run_id))


def _deliver(context: dg.SensorEvaluationContext, notifier: WebhookNotifier, alert: Alert) -> str | None:
    """Send ``alert``; the failure's text, or None once the webhook accepted it."""
    try:
        notifier.send(alert)
    except WebhookError as exc:
        context.log.error("alert not delivered, kept for the next tick: %s", exc)
        return str(exc)
    return None


def _result(cursor: AlertCursor, sent: int, problem: str | None) -> dg.SensorResult:
    if problem:
        message = f"sent {sent} alert(s); webhook failed ({problem}); the rest are retried next tick"
    else:
        message = f"sent {sent} alert(s)"
    return dg.SensorResult(cursor=cursor.dump(), skip_reason=message)


def build_check_alert_sensor(name: str, *, freshness: bool, description: str,
                             minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    """A sensor that sends one message when an asset check (freshness or not) starts failing.

    It reads each check's executions (the table behind the UI's check history, which every
    instance storage, run-sharded SQLite included, orders by one global id), oldest first.
    """

    @dg.sensor(name=name, description=description, minimum_interval_seconds=minimum_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def check_alerts(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        if context.repository_def is None:
            raise dg.DagsterInvariantViolationError(f"{name} needs the repository to list its checks")
        settings = load_settings()
        notifier = WebhookNotifier(settings.alert_webhook_url, logger=context.log)
        cursor = AlertCursor.parse(context.cursor)
        keys = sorted((k for k in context.repository_def.asset_graph.asset_check_keys
                       if (k.name == FRESHNESS_CHECK_NAME) == freshness), key=lambda k: k.to_user_string())
        sent, problem = 0, None
        try:
            for check_key in keys:
                sent, problem = _alert_check_executions(context, notifier, cursor, check_key, settings.ui_url, sent)
                if problem or sent >= MAX_ALERTS_PER_TICK:
                    break
        finally:
            notifier.close()
        return _result(cursor, sent, problem)

    return check_alerts


def _alert_check_executions(context: dg.SensorEvaluationContext, notifier: WebhookNotifier, cursor: AlertCursor,
                            check_key: dg.AssetCheckKey, ui_url: str, sent: int) -> tuple[int, str | None]:
    """Alert the new executions of one check; returns the running count of sent alerts and the
    webhook's failure, if any. Stops (leaving the cursor) at an execution still in progress."""
    instance = context.instance
    key = check_key.to_user_string()
    after = cursor.after.get(key, -1)
    history = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=FETCH_LIMIT)
    now = time.time()
    for record in sorted((r for r in history if r.id > after), key=lambda r: r.id):
        evaluation = record.event.dagster_event.event_specific_data if record.event and record.event.dagster_event \
            else None
        if not isinstance(evaluation, dg.AssetCheckEvaluation):
            run = instance.get_run_by_id(record.run_id)
            if run is not None and not run.is_finished:
                break  # planned and still running: its verdict comes later
            cursor.after[key] = record.id  # planned, but its run ended without evaluating it
            continue
        if evaluation.passed or key in cursor.failing or now - record.create_timestamp > MAX_EVENT_AGE_S:
            if evaluation.passed:
                cursor.failing.discard(key)
            else:
                cursor.failing.add(key)
            cursor.after[key] = record.id
            continue
        if sent >= MAX_ALERTS_PER_TICK:
            break
        problem = _deliver(context, notifier, check_alert(evaluation, instance.get_run_by_id(record.run_id), ui_url))
        if problem:
            return sent, problem
        sent += 1
        cursor.failing.add(key)
        cursor.after[key] = record.id
    return sent, None


check_alert_sensor = build_check_alert_sensor(
    "check_alert_sensor", freshness=False,
    description="Sends one webhook message when a data-quality check starts failing "
                "(duplicate or null keys, impossible prices, coverage, gaps, NaN ratio, label mix).")

freshness_alert_sensor = build_check_alert_sensor(
    "freshness_alert_sensor", freshness=True,
    description="Sends one webhook message when a window is late: its partition freshness check failed.")


def _failed_only_on_blocking_checks(instance: dg.DagsterInstance, run_id: str) -> bool:
    failures = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    errors = [entry.dagster_event.event_specific_data.error for entry in failures if entry.dagster_event]
    return bool(errors) and all(error is not None and error.cls_name == "DagsterAssetCheckFailedError"
                                for error in errors)


def run_failure_alert(run: dg.DagsterRun, instance: dg.DagsterInstance, ui_url: str) -> Alert:
    """The message of a run that failed for good: its job, window, failed steps and first error."""
    failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    steps = sorted({entry.step_key for entry in failures if entry.step_key})
    error = next((entry.dagster_event.event_specific_data.error for entry in failures
                  if entry.dagster_event and entry.dagster_event.event_specific_data.error), None)
    while error is not None and error.cls_name == "DagsterExecutionStepExecutionError" and error.cause:
        error = error.cause  # the user code's own exception
    detail = f"steps failed: {', '.join(steps)}" if steps else "the run failed outside its steps"
    if error is not None:
        first_line = error.message.strip().splitlines()[0] if error.message.strip() else error.cls_name
        detail += f"; {error.cls_name}: {first_line[:300]}"
    attempts = run.tags.get("dagster/retry_number")
    if attempts:
        detail += f" (after {int(attempts)} automatic retr{'y' if attempts == '1' else 'ies'})"
    return Alert(kind="run", title=f"run of {run.job_name} failed", detail=detail,
                 asset=", ".join(sorted(k.to_user_string() for k in run.asset_selection or [])) or None,
                 window=window_of_run(run), run_id=run.run_id, run_url=run_url(ui_url, run.run_id))


@dg.sensor(name="run_failure_alert_sensor", minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Sends one webhook message for each run that failed for good (not when a run "
                       "retry follows, nor when only a blocking check failed: that has its own alert).")
def run_failure_alert_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """One message per run that failed and will not be retried, with its window and a link."""
    settings = load_settings()
    notifier = WebhookNotifier(settings.alert_webhook_url, logger=context.log)
    cursor = AlertCursor.parse(context.cursor)
    instance = context.instance
    after = cursor.after.get(RUN_FAILURES, -1)
    records = instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(event_type=dg.DagsterEventType.RUN_FAILURE,
                                        after_storage_id=after if after >= 0 else None),
        limit=FETCH_LIMIT, ascending=True).records
    sent, problem = 0, None
    now = time.time()
    try:
        for record in records:
            entry = record.event_log_entry
            run = instance.get_run_by_id(entry.run_id)
            age = now - entry.timestamp
            if run is not None and instance.run_retries_enabled and WILL_RETRY_TAG not in run.tags \
                    and age < WILL_RETRY_GRACE_S:
                break  # the retry decision is not recorded yet: look again next tick
            if (run is None or age > MAX_EVENT_AGE_S or run.tags.get(WILL_RETRY_TAG) == "true"
                    or _failed_only_on_blocking_checks(instance, run.run_id)):
                cursor.after[RUN_FAILURES] = record.storage_id
                continue
            if sent >= MAX_ALERTS_PER_TICK:
                break
            problem = _deliver(context, notifier, run_failure_alert(run, instance, settings.ui_url))
            if problem:
                break
            sent += 1
            cursor.after[RUN_FAILURES] = record.storage_id
    finally:
        notifier.close()
    return _result(cursor, sent, problem)


ALERT_SENSORS: tuple[dg.SensorDefinition, ...] = (check_alert_sensor, freshness_alert_sensor,
                                                  run_failure_alert_sensor)
