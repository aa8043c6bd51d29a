"""Pool slots are handed over when the step that held them ends, not when its run ends.

The instance is configured from the shipped ``deploy/local/dagster.yaml`` (its pools and run
monitoring sections), and the assets run through an in-process executor like every job of the
platform: a long run's news step frees ``news_sources`` for a waiting run at once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dagster as dg
import yaml

LOCAL_INSTANCE = Path(__file__).resolve().parents[2] / "deploy" / "local" / "dagster.yaml"
EVENTS: dict[str, float] = {}


@dg.asset(pool="news_sources")
def backfill_news() -> None:
    """Holds the pool's one slot briefly."""
    EVENTS["backfill_news_done"] = time.monotonic()


@dg.asset(deps=[backfill_news])
def backfill_rest() -> None:
    """The long rest of the backfill run, outside the pool."""
    time.sleep(15)


@dg.asset(pool="news_sources")
def live_news() -> None:
    """The waiting single-window run's step in the same pool."""
    EVENTS["live_news_started"] = time.monotonic()


def test_a_waiting_run_gets_the_slot_when_the_step_ends(tmp_path):
    config = yaml.safe_load(LOCAL_INSTANCE.read_text())
    assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    overrides = {
        "concurrency": {"pools": config["concurrency"]["pools"]},
        # Two runs in threads of one process, each capturing the process's stdout and stderr (file
        # descriptors both threads share): one CI run hung with the backfill stopped after its first
        # step while both captured. This test is about slots, not logs: no capture.
        "compute_logs": {
            "module": "dagster._core.storage.noop_compute_log_manager",
            "class": "NoOpComputeLogManager",
        },
    }
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path)) as instance:
        # Each run's start calls logging.config.dictConfig for the instance's python_logs handlers
        # (none here): it takes the logging module's lock, then each handler's, while the other
        # run's thread, inside a handler, waits for the module's lock. Two runs in threads of one
        # process (never so on the platform, where each run has its own process) then deadlock now
        # and then (under a loaded CPU: two test workers): the runs get the handlers without it.
        instance.get_yaml_python_handlers = lambda: []  # type: ignore[method-assign]
        backfill = threading.Thread(target=lambda: dg.materialize([backfill_news, backfill_rest], instance=instance))
        backfill.start()
        deadline = time.monotonic() + 60
        while "backfill_news_done" not in EVENTS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "backfill_news_done" in EVENTS
        assert dg.materialize([live_news], instance=instance).success
        waited = EVENTS["live_news_started"] - EVENTS["backfill_news_done"]
        assert backfill.is_alive()  # the backfill run still holds its other step
        backfill.join()
        assert instance.event_log_storage.get_pool_limits()[0].name == "news_sources"
    assert waited < 5, f"the waiting run's step started {waited:.1f} s after the slot's step ended"
