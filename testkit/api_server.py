"""The gateway as a subprocess (``uvicorn api.app:app`` on a loopback port), for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_api(
    db_url: str, port: int, env: Mapping[str, str] | None = None, options: Sequence[str] = (), timeout: float = 30.0
) -> subprocess.Popen:
    """Start ``uvicorn api.app:app`` on 127.0.0.1:``port`` serving ``db_url``; return once ``/health`` answers 200.

    The server's environment is this process's plus ``CRYPTO_DB_URL``, ``PYTHONPATH`` (the
    repository root) and ``env``; ``options`` are more uvicorn arguments (e.g. ``--workers``). Its
    log level is ``warning``, without the access log; its stderr goes to a temporary file, whose
    end a ``RuntimeError`` quotes (after killing the server) if it exits or is not ready within
    ``timeout`` seconds.
    """
    import httpx

    stderr = tempfile.TemporaryFile()
    command = [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--log-level", "warning", "--no-access-log", *options],
        cwd=ROOT,
        env={**os.environ, "CRYPTO_DB_URL": db_url, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    if process.poll() is None:
        process.kill()
        process.wait()
    stderr.seek(0)
    tail = stderr.read().decode(errors="replace")[-2000:]
    raise RuntimeError(f"uvicorn did not start on port {port} (exit status {process.returncode}): {tail}")


def stop_api(process: subprocess.Popen) -> None:
    """Terminate a server from :func:`start_api` and wait for it (killed after 10 s); nothing if it has exited."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def api_server(
    db_url: str, port: int, env: Mapping[str, str] | None = None, options: Sequence[str] = (), timeout: float = 30.0
) -> Iterator[subprocess.Popen]:
    """:func:`start_api` as a context manager: yields the running server, stops it at the end."""
    process = start_api(db_url, port, env, options, timeout)
    try:
        yield process
    finally:
        stop_api(process)
