"""API keys, rate limits, CORS, metrics, access logs and the loopback-only default (SQLite, TestClient)."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

import api.__main__ as api_main
from tests.integration.test_api_support import make_app, seed


@pytest.fixture
def seeded(sqlite_url):
    seed(sqlite_url)
    return sqlite_url


def test_keys_401_without_403_with_a_wrong_one(seeded):
    with TestClient(make_app(seeded, CRYPTO_API_KEYS="k-one, k-two")) as c:
        missing = c.get("/v1/prices/latest")
        assert missing.status_code == 401 and "X-API-Key" in missing.json()["detail"]
        assert missing.json()["code"] == "missing_api_key" and missing.json()["parameter"] is None
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert c.get("/v1/prices/latest", headers={"X-API-Key": "k-three"}).status_code == 403
        assert c.get("/v1/prices/latest", headers={"Authorization": "Bearer nope"}).status_code == 403
        assert c.get("/v1/prices/latest", headers={"X-API-Key": "k-two"}).status_code == 200
        assert c.get("/v1/prices/latest", headers={"Authorization": "Bearer k-one"}).status_code == 200
        assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200


def test_openapi_documents_both_key_schemes_and_errors(seeded):
    schema = make_app(seeded).openapi()
    assert {"APIKeyHeader", "HTTPBearer"} <= set(schema["components"]["securitySchemes"])
    prices = schema["paths"]["/v1/prices"]["get"]
    assert {"200", "304", "400", "401", "403", "429", "503"} <= set(prices["responses"])
    assert "422" not in prices["responses"]  # malformed parameters are 400s too
    error = prices["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][error]["required"]) == {"status", "code", "parameter", "detail"}
    assert {
        "application/json",
        "text/csv",
        "application/vnd.apache.parquet",
        "application/vnd.apache.arrow.stream",
    } <= set(prices["responses"]["200"]["content"])
    names = {p["name"] for p in prices["parameters"]}
    assert names == {"symbols", "start", "end", "columns", "limit", "cursor", "format"}
    assert all(p.get("description") for p in prices["parameters"])


def test_rate_limit_answers_429_with_retry_after(seeded):
    with TestClient(make_app(seeded, CRYPTO_API_KEYS="a,b", CRYPTO_API_RATE_LIMIT="3")) as c:
        for _ in range(3):
            assert c.get("/v1/symbols", headers={"X-API-Key": "a"}).status_code == 200
        limited = c.get("/v1/symbols", headers={"X-API-Key": "a"})
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1 and "rate limit" in limited.json()["detail"]
        assert limited.json()["code"] == "rate_limited"
        # The bucket is per key.
        assert c.get("/v1/symbols", headers={"X-API-Key": "b"}).status_code == 200


def test_cors_is_configurable(seeded):
    with TestClient(make_app(seeded, CRYPTO_API_CORS_ORIGINS="https://dash.example.com")) as c:
        allowed = c.get("/v1/symbols", headers={"Origin": "https://dash.example.com"})
        assert allowed.headers["access-control-allow-origin"] == "https://dash.example.com"
        assert "X-Data-As-Of" in allowed.headers["access-control-expose-headers"]
        other = c.get("/v1/symbols", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers
    with TestClient(make_app(seeded)) as c:
        assert "access-control-allow-origin" not in c.get("/v1/symbols", headers={"Origin": "https://x.io"}).headers


def test_metrics_count_requests_per_route_and_access_log_is_json(seeded, caplog):
    caplog.set_level(logging.INFO, logger="api.access")
    logging.getLogger("api.access").addHandler(caplog.handler)
    with TestClient(make_app(seeded)) as c:
        c.get("/v1/prices", params={"symbols": "BTC"})
        c.get("/v1/prices", params={"symbols": "ETH"})
        c.get("/v1/prices", params={"symbols": "NOPE"})
        text = c.get("/metrics").text
    assert 'api_requests_total{handler="/v1/prices",method="GET",status="200"} 2.0' in text
    assert 'api_requests_total{handler="/v1/prices",method="GET",status="400"} 1.0' in text
    assert 'api_request_duration_seconds_count{handler="/v1/prices",method="GET"} 3.0' in text
    logging.getLogger("api.access").removeHandler(caplog.handler)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "api.access"]
    entry = next(line for line in lines if line["route"] == "/v1/prices")
    assert {"method", "path", "status", "ms", "bytes", "client", "principal"} <= set(entry)


def test_metrics_label_every_matched_route_with_its_template(seeded):
    """The framework's own routes (/openapi.json, /docs) and CORS preflights (under the route they ask about)
    are counted by their template; only a path no route serves is ``none``."""
    with TestClient(make_app(seeded, CRYPTO_API_CORS_ORIGINS="https://dash.example.com")) as c:
        assert c.get("/openapi.json").status_code == 200 and c.get("/docs").status_code == 200
        preflight = c.options(
            "/v1/prices", headers={"Origin": "https://dash.example.com", "Access-Control-Request-Method": "GET"}
        )
        assert preflight.status_code == 200
        assert c.get("/no/such/route").status_code == 404
        text = c.get("/metrics").text
    assert 'api_requests_total{handler="/openapi.json",method="GET",status="200"} 1.0' in text
    assert 'api_requests_total{handler="/docs",method="GET",status="200"} 1.0' in text
    assert 'api_requests_total{handler="/v1/prices",method="OPTIONS",status="200"} 1.0' in text
    assert 'api_requests_total{handler="none",method="GET",status="404"} 1.0' in text
    assert 'handler="none",method="GET",status="200"' not in text


def test_open_gateway_logs_a_warning_at_startup(seeded, caplog):
    with caplog.at_level(logging.WARNING, logger="api"):
        with TestClient(make_app(seeded)):
            pass
    assert any("CRYPTO_API_KEYS is empty" in r.message for r in caplog.records)


def test_python_m_api_binds_loopback_without_keys(seeded, monkeypatch):
    monkeypatch.setenv("CRYPTO_DB_URL", seeded)  # an existing warehouse: python -m api refuses a missing one
    calls = []
    monkeypatch.setattr(api_main.uvicorn, "run", lambda *a, **kw: calls.append(kw))
    monkeypatch.delenv("CRYPTO_API_KEYS", raising=False)
    assert api_main.main([]) == 0 and calls[-1]["host"] == "127.0.0.1"
    assert api_main.main(["--host", "0.0.0.0"]) == 2 and len(calls) == 1
    assert api_main.main(["--host", "0.0.0.0", "--allow-open"]) == 0 and calls[-1]["host"] == "0.0.0.0"
    monkeypatch.setenv("CRYPTO_API_KEYS", "secret")
    assert api_main.main([]) == 0 and calls[-1]["host"] == "0.0.0.0"


def test_start_up_messages_say_what_the_bind_really_is(seeded, monkeypatch, caplog):
    """On loopback it says so (no advice to bind to loopback); open to the network, it warns."""
    monkeypatch.setenv("CRYPTO_DB_URL", seeded)
    monkeypatch.delenv("CRYPTO_API_KEYS", raising=False)
    monkeypatch.setattr(api_main.uvicorn, "run", lambda *a, **kw: None)
    with caplog.at_level(logging.INFO, logger="api"):
        assert api_main.main([]) == 0
        with TestClient(make_app(seeded)):
            pass
    messages = [r.getMessage() for r in caplog.records]
    assert not any("bind it to loopback" in m for m in messages)
    assert any("listening on 127.0.0.1:8000, a loopback address: only this machine" in m for m in messages)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="api"):
        assert api_main.main(["--host", "0.0.0.0", "--allow-open", "--port", "9000"]) == 0
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "listening on 0.0.0.0:9000 without API keys" in warning.getMessage()
    assert "anyone who can reach this machine" in warning.getMessage()
