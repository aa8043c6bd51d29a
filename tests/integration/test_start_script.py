"""``scripts/start.sh`` as a user starts it, in the background: SIGTERM and SIGINT stop the whole
platform (webserver, daemon, code server) within seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from testkit.fakes.loopback import free_port

ROOT = Path(__file__).resolve().parents[2]


def _start_in_background(tmp_path: Path, port: int) -> int:
    """``scripts/start.sh &`` from a non-interactive shell (SIGINT ignored, as for any background job)."""
    env = {**os.environ, "CRYPTO_HOME": str(tmp_path / "home"), "DAGSTER_PORT": str(port)}
    env.pop("DAGSTER_HOME", None)
    log = tmp_path / f"start-{port}.log"
    out = subprocess.run(
        ["bash", "-c", f"scripts/start.sh > {log} 2>&1 & echo $!"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                return pid
        except httpx.HTTPError:
            pass
        assert psutil.pid_exists(pid), log.read_text()[-3000:]
        time.sleep(1)
    raise AssertionError(f"the UI did not come up: {log.read_text()[-3000:]}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_start_script_stops_cleanly_on_a_signal(tmp_path, signum):
    port = free_port()
    pid = _start_in_background(tmp_path, port)
    tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    commands = " ".join(" ".join(p.cmdline()) for p in tree)
    assert "dagster_webserver" in commands and "dagster._daemon" in commands
    started = time.monotonic()
    os.kill(pid, signum)
    gone, alive = psutil.wait_procs(tree, timeout=20)
    elapsed = time.monotonic() - started
    for proc in alive:
        proc.kill()
    assert not alive, f"still running {elapsed:.0f} s after {signum.name}: {[p.cmdline() for p in alive]}"
    assert elapsed < 20
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2)
    log = (tmp_path / f"start-{port}.log").read_text()
    assert "Shutting down Dagster services" in log  # dagster dev's own clean path, not only the kill
