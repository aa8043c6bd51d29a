"""The platform started as a user starts it, for tests of the first hour.

:func:`started_platform` runs ``scripts/start.sh`` in the background with a fresh ``CRYPTO_HOME``,
a free UI port and alerts going to a fake webhook; waits until the features and their lake copy of
one of the two latest windows are committed (the gap-healing sensor and the 5-minute schedule, on
their own); starts the gateway (``python -m api``) on a free port with the same environment; and
yields a :class:`Platform`. On exit it stops the gateway and the platform (SIGTERM, as Ctrl-C).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from resources.storage.lake import FeatureLake
from resources.storage.schema import FEATURES, partition_log
from resources.storage.windows import WINDOW, window_floor
from testkit.fakes.fake_webhook import FakeWebhook
from testkit.fakes.loopback import free_port
from testkit.snippets import API_ADDRESS, UI_ADDRESS


@dataclass
class Platform:
    """A started platform: its addresses, the environment it runs with, and the alerts it sent."""

    root: Path
    home: Path
    ui_url: str
    api_url: str
    env: dict[str, str]
    webhook: FakeWebhook
    started: float

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """The alert messages the webhook accepted so far."""
        return self.webhook.messages

    @property
    def addresses(self) -> dict[str, str]:
        """The documented addresses (``127.0.0.1:3000``, ``127.0.0.1:8000``) and this platform's."""
        return {UI_ADDRESS: self.ui_url.removeprefix("http://"), API_ADDRESS: self.api_url.removeprefix("http://")}

    def wait_until(self, minutes: float) -> None:
        """Sleep until ``minutes`` after the platform was started (at once if that has passed)."""
        time.sleep(max(0.0, self.started + minutes * 60 - time.monotonic()))


def _holds(db: sa.Engine, lake: FeatureLake, due: datetime) -> bool:
    """Whether the features of a window from ``due`` on are both committed and copied into the lake."""
    features = sa.select(sa.func.max(partition_log.c.window_start)).where(partition_log.c.asset == FEATURES.asset)
    with db.connect() as conn:
        try:
            latest = conn.execute(features).scalar()
        except sa.exc.OperationalError:  # the tables are not created yet
            return False
    return latest is not None and latest >= due and len(lake.windows(due, due + 3 * WINDOW)) > 0


def _wait_for_features(home: Path, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    """Until the features and the lake hold one of the two latest closed windows."""
    db = sa.create_engine(f"sqlite:///{home / 'warehouse.sqlite'}")
    lake = FeatureLake(str(home / "lake"))
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"scripts/start.sh exited: {log.read_text()[-3000:]}"
            due = window_floor(datetime.now(UTC).replace(tzinfo=None), WINDOW) - 2 * WINDOW
            if (home / "warehouse.sqlite").exists():
                if _holds(db, lake, due):
                    return
            time.sleep(5)
    finally:
        db.dispose()
    raise AssertionError(
        f"no committed features of the latest windows after {timeout_s:.0f} s: {log.read_text()[-3000:]}"
    )


def _start_gateway(root: Path, env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """``python -m api`` as the README starts it, on ``port``; returns once ``/ready`` answers 200."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(root / ".venv/bin/python"), "-m", "api", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the gateway exited: {log.read_text()[-3000:]}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise AssertionError(f"the gateway did not become ready: {log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM, then SIGKILL to its process group if it is still running after ``grace_s``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextmanager
def started_platform(root: Path, workdir: Path, *, ready_timeout_s: float = 900) -> Iterator[Platform]:
    """The platform of the checkout ``root`` started in the background (its files under ``workdir``)."""
    home, ui_port, api_port = workdir / "home", free_port(), free_port()
    with FakeWebhook() as webhook:
        env = {
            **os.environ,
            "CRYPTO_HOME": str(home),
            "DAGSTER_PORT": str(ui_port),
            "CRYPTO_ALERT_WEBHOOK_URL": webhook.url,
            # The notebook's own variable: the gateway it reads (examples/quickstart.ipynb).
            "CRYPTO_API_URL": f"http://127.0.0.1:{api_port}",
        }
        env.pop("DAGSTER_HOME", None)
        log = workdir / "start.log"
        started = time.monotonic()
        with log.open("ab") as out:
            platform_process = subprocess.Popen(
                ["scripts/start.sh"], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        gateway = None
        try:
            _wait_for_features(home, platform_process, log, ready_timeout_s)
            gateway = _start_gateway(root, env, api_port, workdir / "gateway.log")
            yield Platform(
                root, home, f"http://127.0.0.1:{ui_port}", f"http://127.0.0.1:{api_port}", env, webhook, started
            )
        finally:
            if gateway is not None:
                _stop(gateway, 10)
            _stop(platform_process)
