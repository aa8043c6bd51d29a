"""The hot path: cached answers of the polled routes, served before routing, behave like the routes."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.integration.test_api_support import PRICE_END, make_app, seed


def hot_hits(app) -> float:
    metrics = app.state.gateway.metrics
    return metrics.registry.get_sample_value("api_cache_hits_total", {"tier": "hot_path"}) or 0.0


def test_second_poll_is_served_by_the_hot_path_with_the_same_answer(sqlite_url):
    seed(sqlite_url)
    app = make_app(sqlite_url, CRYPTO_API_STATE_TTL="60")
    with TestClient(app) as c:
        first = c.get("/v1/prices/latest", headers={"Accept-Encoding": "identity"})
        assert first.headers["X-Cache"] == "miss" and hot_hits(app) == 0
        second = c.get("/v1/prices/latest", headers={"Accept-Encoding": "identity"})
        assert hot_hits(app) == 1
        assert second.content == first.content
        for name in ("ETag", "Cache-Control", "X-Data-As-Of", "content-type"):
            assert second.headers[name] == first.headers[name]
        assert second.headers["X-Data-As-Of"] == PRICE_END.isoformat() + "Z"
        not_modified = c.get("/v1/prices/latest", headers={"If-None-Match": first.headers["ETag"]})
        assert not_modified.status_code == 304 and not_modified.content == b""
        raw = c.get("/v1/prices/latest", headers={"Accept-Encoding": "gzip"})
        assert raw.headers["Content-Encoding"] == "gzip" and raw.json() == first.json()
        assert c.get("/v1/prices/latest", params={"symbols": "BTC"}).json()["count"] == 1  # another key: a miss
        metrics = c.get("/metrics").text
        assert 'api_requests_total{handler="/v1/prices/latest",method="GET",status="200"}' in metrics


def test_latest_derivatives_polls_are_served_by_the_hot_path(sqlite_url):
    seed(sqlite_url)
    app = make_app(sqlite_url, CRYPTO_API_STATE_TTL="60")
    with TestClient(app) as c:
        first = c.get("/v1/derivatives/latest", headers={"Accept-Encoding": "identity"})
        assert first.headers["X-Cache"] == "miss" and first.json()["count"] == 3
        second = c.get("/v1/derivatives/latest", headers={"Accept-Encoding": "identity"})
        assert hot_hits(app) == 1 and second.content == first.content
        assert second.headers["X-Data-As-Of"] == first.headers["X-Data-As-Of"] == PRICE_END.isoformat() + "Z"
        assert c.get("/v1/derivatives/latest", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304


def test_hot_path_still_checks_keys_and_rate_limits(sqlite_url):
    seed(sqlite_url)
    app = make_app(sqlite_url, CRYPTO_API_STATE_TTL="60", CRYPTO_API_KEYS="k", CRYPTO_API_RATE_LIMIT="3")
    with TestClient(app) as c:
        assert c.get("/v1/prices/latest", headers={"X-API-Key": "k"}).status_code == 200
        assert c.get("/v1/prices/latest").status_code == 401
        assert c.get("/v1/prices/latest", headers={"X-API-Key": "bad"}).status_code == 403
        assert c.get("/v1/prices/latest", headers={"Authorization": "Bearer k"}).status_code == 200
        assert hot_hits(app) == 1
        assert c.get("/v1/prices/latest", headers={"X-API-Key": "k"}).status_code == 200
        limited = c.get("/v1/prices/latest", headers={"X-API-Key": "k"})
        assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_gzip_body_decompresses_to_the_json(sqlite_url):
    seed(sqlite_url)
    app = make_app(sqlite_url)
    with TestClient(app) as c:
        plain = c.get("/v1/prices", headers={"Accept-Encoding": "identity"})
        response = c.get("/v1/prices", headers={"Accept-Encoding": "gzip"})
        assert response.headers["Content-Encoding"] == "gzip" and response.json()["count"] > 0
        assert response.content == plain.content  # decompressed by httpx: the same JSON
        assert int(response.headers["content-length"]) < len(plain.content)
        small = c.get("/v1/symbols", headers={"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in small.headers  # too small to be worth compressing
