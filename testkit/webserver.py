"""``dagster-webserver`` over the workspace as a subprocess, with a GraphQL client, and a local platform's environment.

Used by the webserver and operations tests and by the GraphQL benchmark and the asset-graph
screenshot: :func:`platform_env` lays out an instance, a warehouse and a partition horizon under a
directory; :class:`Webserver` starts the UI's server on it and waits until the code location is loaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 120


class Webserver:
    """A running ``dagster-webserver`` and a GraphQL client for it."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.env = env
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dagster-webserver")),
                "-w",
                str(ROOT / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=120)

    def wait_ready(self) -> float:
        """Wait until the server answers and its code location is loaded; return the seconds it took."""
        began = time.monotonic()
        while time.monotonic() - began < STARTUP_TIMEOUT_S:
            if self.process.poll() is not None:
                raise RuntimeError(f"webserver exited: {self.log_path.read_text()[-3000:]}")
            try:
                if self.client.get("/server_info").status_code == 200:
                    # The code location loads in the background: wait until it is there.
                    nodes = self.graphql("{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }")
                    if nodes["repositoriesOrError"].get("nodes"):
                        return time.monotonic() - began
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"webserver not ready after {STARTUP_TIMEOUT_S}s: {self.log_path.read_text()[-3000:]}")

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST ``query`` to ``/graphql`` and return its ``data`` (failing on any error in the answer)."""
        response = self.client.post("/graphql", json={"query": query, "variables": variables or {}})
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def stop(self) -> None:
        """Close the client and terminate the server (killed after 20 s)."""
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def platform_env(home: Path, horizon: str) -> dict[str, str]:
    """The environment of a local platform under ``home``: its instance, warehouse and horizon."""
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "deploy" / "local" / "dagster.yaml", dagster_home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "CRYPTO_HOME": str(home / "crypto"),
        "CRYPTO_DB_URL": f"sqlite:///{home / 'warehouse.sqlite'}",
        "CRYPTO_PARTITION_START": horizon,
        "CRYPTO_SOURCE": "simulated",
    }
