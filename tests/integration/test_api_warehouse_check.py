"""The gateway on a warehouse that does not exist: it refuses to start or to say ready, and says where it looked."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import api.__main__ as api_main
from api.warehouse_check import PUBLIC_DETAIL
from resources.storage.warehouse import get_warehouse
from tests.conftest import mysql_admin, mysql_database
from tests.integration.test_api_support import ROOT, make_app, seed


@pytest.fixture
def no_uvicorn(monkeypatch):
    """``uvicorn.run`` replaced by a recorder: the tests check what main() decides, not uvicorn."""
    calls: list[dict] = []
    monkeypatch.setattr(api_main.uvicorn, "run", lambda *a, **kw: calls.append(kw))
    monkeypatch.delenv("CRYPTO_API_KEYS", raising=False)
    return calls


def test_python_m_api_from_another_directory_refuses_a_missing_warehouse(tmp_path):
    """The real command, started elsewhere with the default CRYPTO_HOME: exit 2, the absolute path, the fix."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CRYPTO_HOME", "CRYPTO_DB_URL")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "api", "--port", "1"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    expected = elsewhere / ".crypto" / "warehouse.sqlite"
    assert f"there is no SQLite file at {expected}" in done.stderr
    assert "CRYPTO_HOME" in done.stderr and "python -m cli.migrate" in done.stderr
    assert not expected.exists()


def test_the_gateway_starts_once_the_warehouse_is_created(tmp_path, monkeypatch, no_uvicorn):
    """The gateway never creates the warehouse; once the migration (or the first run) has, it starts."""
    monkeypatch.setenv("CRYPTO_HOME", str(tmp_path / "home"))
    assert api_main.main([]) == 2 and no_uvicorn == []
    assert not (tmp_path / "home" / "warehouse.sqlite").exists()
    get_warehouse(f"sqlite:///{tmp_path / 'home' / 'warehouse.sqlite'}").ensure_schema()  # what cli.migrate does
    assert api_main.main([]) == 0 and len(no_uvicorn) == 1


def test_an_unreachable_server_does_not_stop_the_start(monkeypatch, no_uvicorn, caplog):
    monkeypatch.setenv("CRYPTO_DB_URL", "mysql+pymysql://root:hunter2@127.0.0.1:1/crypto")
    with caplog.at_level(logging.WARNING, logger="api"):
        assert api_main.main([]) == 0 and len(no_uvicorn) == 1
    text = caplog.text
    assert "cannot open the warehouse at mysql+pymysql://root:***@127.0.0.1:1/crypto" in text
    assert "hunter2" not in text


def test_ready_is_503_on_a_missing_warehouse_and_nothing_is_created(tmp_path, caplog):
    path = tmp_path / "missing" / "warehouse.sqlite"
    url = f"sqlite:///{path}"
    with caplog.at_level(logging.ERROR, logger="api"):
        with TestClient(make_app(url)) as c:
            for route in ("/ready", "/v1/prices/latest", "/v1/freshness", "/ready"):
                response = c.get(route)
                assert response.status_code == 503, (route, response.text)
                assert response.json()["detail"] == PUBLIC_DETAIL and response.headers["Retry-After"] == "30"
            assert not path.exists()
            seed(url)  # the platform writes its first windows: the same gateway is ready now
            assert c.get("/ready").json()["status"] == "ready"
            assert c.get("/v1/prices/latest").status_code == 200
    refusals = [r.getMessage() for r in caplog.records if "the warehouse does not exist" in r.getMessage()]
    assert len(refusals) == 1 and f"there is no SQLite file at {path}" in refusals[0]  # logged once, with the path
    assert str(path) not in PUBLIC_DETAIL


def test_price_stream_closes_saying_the_warehouse_does_not_exist(tmp_path):
    with TestClient(make_app(f"sqlite:///{tmp_path / 'none.sqlite'}")) as c:
        with c.websocket_connect("/v1/stream/prices") as ws:
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_bytes()
    assert closed.value.code == 1011 and closed.value.reason == "the warehouse does not exist"
    assert not (tmp_path / "none.sqlite").exists()


@pytest.mark.mysql
def test_mysql_missing_database_or_tables_are_refused_with_the_url_without_password(monkeypatch, no_uvicorn, caplog):
    with mysql_database(create=False) as url:
        name = url.rsplit("/", 1)[1]
        monkeypatch.setenv("CRYPTO_DB_URL", url)
        with caplog.at_level(logging.ERROR, logger="api"):
            assert api_main.main([]) == 2
        assert f"the database '{name}' does not exist" in caplog.text
        admin = mysql_admin()
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{name}`")
        finally:
            admin.close()
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="api"):
            assert api_main.main([]) == 2
        assert "has no partition_log table" in caplog.text and no_uvicorn == []
        with TestClient(make_app(url)) as c:
            assert c.get("/ready").status_code == 503
        get_warehouse(url).ensure_schema()
        assert api_main.main([]) == 0 and len(no_uvicorn) == 1
        with TestClient(make_app(url)) as c:
            assert c.get("/ready").status_code == 200
