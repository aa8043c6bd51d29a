"""A private, throwaway Redis server on a free loopback port (no persistence), for a test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import redis

from testkit.fakes.loopback import free_port

REDIS_SERVER = os.environ.get("CRYPTO_TEST_REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"


class PrivateRedis:
    """One ``redis-server`` with its working directory under ``root``, on a free loopback port."""

    def __init__(self, root: Path, port: int | None = None):
        self.root = Path(root)
        self.port = port or free_port()
        self.log = self.root / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The server's URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the server and wait until it answers PING."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--logfile",
                str(self.log),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self._log_tail()}")
            try:
                client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
                client.ping()
                client.close()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {timeout_s}s: {self._log_tail()}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""
