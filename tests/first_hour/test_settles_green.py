"""A fresh clone's first quarter of an hour: started and left alone, the platform settles green by
itself. Runs first (file order), before the snippets touch anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from testkit.platform import Platform
from testkit.platform_health import platform_health

# At start: one healing run for the day of 5-minute windows and one for the macro days; a window
# the schedule computed while the day was being healed may be recomputed once (stale).
MAX_HEALING_RUNS = 4


def test_left_alone_the_platform_settles_green_by_itself(platform: Platform):
    health = platform_health(platform.ui_url, platform.api_url)
    assert platform.alerts == [], health.summary()
    assert not health.failed_runs and health.runs["SUCCESS"] >= 3, health.summary()
    assert health.runs_by_trigger["schedule"] >= 2, health.summary()
    assert 2 <= health.runs_by_trigger["gap_healing"] <= MAX_HEALING_RUNS, health.summary()
    # Every asset check has been evaluated, and its latest evaluation passed (freshness included).
    assert health.checks and set(health.checks.values()) == {"SUCCEEDED"}, health.checks
    assert health.macro_rows > 0, health.summary()
    assert health.newest_window is not None, health.summary()
    newest = datetime.fromisoformat(health.newest_window.replace("Z", "+00:00"))
    assert datetime.now(UTC) - newest < timedelta(minutes=15), health.summary()
    assert None not in health.newest_window_macro.values(), health.summary()
