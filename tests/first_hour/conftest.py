"""The first hour: the platform started as a user starts it (``testkit/platform.py``), shared by
every test of this directory (the ``first_hour`` marker, added to each of them here).

The session's ``platform`` fixture starts ``scripts/start.sh`` with a fresh home, free ports and a
fake alert webhook, waits until the latest windows' features are committed, starts the gateway,
and then leaves the platform untouched until ``FIRST_HOUR_MINUTES`` (default 15) after its start
before it yields, so that every test here sees a platform that has been running that long (e.g.
``FIRST_HOUR_MINUTES=4`` for a quick run). A test that needs more calls
``platform.wait_until(minutes)`` itself. Tests run in file order: one that must see the platform
before anything else touched it sorts before ``test_snippets.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.platform import Platform, started_platform

ROOT = Path(__file__).resolve().parents[2]


def _minutes() -> float:
    return float(os.environ.get("FIRST_HOUR_MINUTES", "15"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.first_hour)
            # The first test's setup holds the wait, on top of the install and start.
            item.add_marker(pytest.mark.timeout(int(_minutes() * 60) + 900))


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with started_platform(ROOT, tmp_path_factory.mktemp("first_hour")) as started:
        started.wait_until(_minutes())
        yield started
