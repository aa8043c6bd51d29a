"""A private, throwaway MariaDB server that a test may kill, stop and start again.

Fault tests must not disturb the shared server at 127.0.0.1:3306 (other suites use it at the
same time), so they get a ``mariadbd`` of their own: a fresh data directory, socket and loopback
port, root without a password. :class:`PrivateMariaDB` starts it, stops it gracefully
(``SIGTERM``) or brutally (``SIGKILL``, a crash: InnoDB recovers on the next start and rolls
back whatever was uncommitted), and starts it again on the same port and data.

The ``private_mariadb`` fixture of ``tests/conftest.py`` (module scope) yields a running server, or
skips (fails under ``CI=true``) when no ``mariadbd`` binary is installed, naming the package to
install; ``private_db_url`` gives each test a fresh database on it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pymysql

from testkit.fakes.loopback import free_port

MARIADBD = os.environ.get("CRYPTO_TEST_MARIADBD") or shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db") or "/usr/bin/mariadb-install-db"


class PrivateMariaDB:
    """One ``mariadbd`` with its own data directory under ``root``, on a free loopback port."""

    def __init__(self, root: Path, port: int | None = None):
        self.root = Path(root)
        self.datadir = self.root / "data"
        self.socket = self.root / "mysqld.sock"
        self.error_log = self.root / "error.log"
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0

    # ------------------------------------------------------------------ lifecycle
    def install(self) -> None:
        """Create the system tables in a fresh data directory (root, no password)."""
        self.root.mkdir(parents=True, exist_ok=True)
        command = [
            INSTALL_DB,
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]
        if os.geteuid() == 0:
            command.append("--user=root")
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {done.stdout[-1000:]}{done.stderr[-1000:]}")

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server and wait until it accepts connections."""
        if self.running:
            return
        if not (self.datadir / "mysql").is_dir():
            self.install()
        command = [
            MARIADBD,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.root / 'mysqld.pid'}",
            f"--log-error={self.error_log}",
            f"--tmpdir={self.root}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=128M",
            "--max-connections=300",
            "--skip-log-bin",
        ]
        if os.geteuid() == 0:
            command.append("--user=root")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.process.returncode}: {self.log_tail()}")
            try:
                self.admin().close()
                return
            except pymysql.err.OperationalError:
                time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"mariadbd did not accept connections within {timeout_s}s: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> None:
        """Stop the server: ``SIGTERM`` shuts down cleanly, ``SIGKILL`` crashes it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def kill(self) -> None:
        """Crash the server (``SIGKILL``): connections drop, uncommitted work is lost."""
        self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop with ``sig`` and start again on the same port and data."""
        self.stop(sig)
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's error log."""
        try:
            return self.error_log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ access
    @property
    def server_url(self) -> str:
        """SQLAlchemy URL of the server (no database)."""
        return f"mysql+pymysql://root@127.0.0.1:{self.port}"

    def url(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` on this server."""
        return f"{self.server_url}/{database}"

    def admin(self, database: str | None = None) -> pymysql.connections.Connection:
        """A fresh autocommit connection as root."""
        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            password="",
            database=database,
            autocommit=True,
            connect_timeout=5,
        )

    def execute(self, sql: str, args: tuple | None = None, database: str | None = None) -> list[tuple]:
        """Run one statement on a fresh connection and return its rows."""
        conn = self.admin(database)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, args)
                return list(cursor.fetchall())
        finally:
            conn.close()

    def create_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        name = f"fault_{uuid.uuid4().hex[:12]}"
        self.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return self.url(name)
