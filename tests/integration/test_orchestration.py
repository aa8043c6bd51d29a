"""The platform's own definitions end to end: a failed check and a late window each reach the
webhook exactly once, through the real checks and sensors, on a real instance (healing a deleted
window with the real job is in tests/unit/test_gaps.py)."""

import json
from datetime import UTC, timedelta

import dagster as dg
import sqlalchemy as sa

from crypto_assets.definitions import build_definitions
from crypto_assets.partitions import PARTITION_KEY_FORMAT
from resources.config.settings import load_settings
from resources.storage.schema import price_data_real as price_table
from resources.storage.warehouse import Warehouse, utc_now
from testkit.fakes.fake_webhook import FakeWebhook


def tick(defs: dg.Definitions, name: str, instance, cursor=None) -> str | None:
    """One tick of the sensor ``name`` as the daemon makes it, with the definitions' resources:
    the asset events it returns are recorded."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources)
    data = defs.get_repository_def().get_sensor_def(name).evaluate_tick(context)
    for event in data.asset_events:
        instance.report_runless_asset_event(event)
    return data.cursor


def test_bad_prices_and_a_late_window_each_send_one_message(sqlite_url, monkeypatch):
    monkeypatch.setenv("CRYPTO_DB_URL", sqlite_url)
    now = utc_now()
    window = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) - timedelta(hours=1)
    key = window.strftime(PARTITION_KEY_FORMAT)
    with FakeWebhook() as hook, dg.DagsterInstance.ephemeral() as instance:  # in memory: no disk commit per event
        monkeypatch.setenv("CRYPTO_ALERT_WEBHOOK_URL", hook.url)
        defs = build_definitions(load_settings())  # as a run worker loads them, in this environment
        job = defs.resolve_job_def("five_minute_job")
        assert job.execute_in_process(instance=instance, partition_key=key).success
        # The window an hour ago is there; the latest due one is not: on a platform running since
        # yesterday, the freshness check fails.
        since = json.dumps({"since": (now - timedelta(days=1)).replace(tzinfo=UTC).isoformat()})
        tick(defs, "freshness_checks_sensor", instance, since)
        freshness = tick(defs, "freshness_alert_sensor", instance)
        # Every 5-minute asset's latest window, and yesterday's macro series (due at 03:00).
        late_assets = sorted([*(k.to_user_string() for k in job.asset_layer.executable_asset_keys), "macro_indicators"])
        late = len(late_assets)
        assert sorted(m["text"].split(" | ")[0] for m in hook.messages) == [f"[ERROR] {a} is late" for a in late_assets]
        # Someone writes a price around the write primitive; the next check run catches it.
        with Warehouse(sqlite_url).engine.begin() as conn:
            conn.execute(sa.update(price_table).where(price_table.c.symbol == "BTC").values(close=-1.0))
        sanity = dg.AssetCheckKey(dg.AssetKey("price_data_real"), "price_sanity")
        checks = job.get_subset(asset_selection=set(), asset_check_selection={sanity}).execute_in_process(
            instance=instance, partition_key=key, raise_on_error=False
        )
        assert not checks.success
        cursor = tick(defs, "check_alert_sensor", instance)
        runs = tick(defs, "run_failure_alert_sensor", instance)  # the blocked run is the check's message
        # The day before the window was never run: not a gap, so no gap check has a message.
        sanity_text = (
            "[ERROR] price_data_real: check price_sanity failed (blocking: downstream assets were not computed)"
        )
        check_texts = [t.split(" | ")[0] for t in hook.texts()[late:]]
        assert check_texts == [sanity_text]
        sanity_message = next(m for m in hook.messages if m["text"].startswith(sanity_text))
        assert f"/runs/{checks.run_id}" in sanity_message["text"]
        sent = len(hook.messages)
        for name, state in (
            ("check_alert_sensor", cursor),
            ("freshness_alert_sensor", freshness),
            ("run_failure_alert_sensor", runs),
        ):
            tick(defs, name, instance, state)
        assert len(hook.messages) == sent  # nothing twice
