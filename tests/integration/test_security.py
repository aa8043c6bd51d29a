"""Security review, as tests: secrets stay out of logs, events and metadata; SQL takes no injection.

* Live runs of ``price_data_real`` and ``news_items`` against the fake servers, with recognisable
  fake secrets in every credential variable (CoinGecko key, Guardian key, Reddit id and secret,
  FRED key, gateway keys, webhook URL, a database password) and sources that fail and retry:
  no secret appears in any Dagster event, run record, captured log record (every logger at
  DEBUG, ``httpx`` included) or in stdout/stderr. Failed runs (a source down, a wrong database
  password) are included, since error messages carry URLs and driver errors.
* The gateway under the same secrets: access logs and error bodies never echo a key.
* Every string parameter of every GET route in the OpenAPI schema, fed injection payloads, on
  SQLite and MariaDB: the answer is a 4xx or a 200 with no rows, never a 5xx, and the tables are
  intact afterwards.
"""

import logging
import re
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster import serialize_value
from fastapi.testclient import TestClient

from crypto_assets.news import news_items
from crypto_assets.partitions import PARTITION_KEY_FORMAT
from crypto_assets.prices import price_data_real
from resources.config.settings import load_settings
from resources.sources.news_sources import NewsSourcesResource
from resources.sources.price_sources import PriceSourceResource
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.schema import METADATA
from resources.storage.warehouse import get_warehouse
from testkit.fakes.fake_news_servers import FakeNewsServer, FeedSpec, feed_entry, guardian_result, reddit_post
from testkit.fakes.price_servers import FakeBinance, FakeCoinGecko
from testkit.fakes.private_mariadb import PrivateMariaDB

SECRETS = {
    "COINGECKO_API_KEY": "CG-sEcReT-7d41c0ffee",
    "GUARDIAN_API_KEY": "guardian-sEcReT-91ab",
    "REDDIT_CLIENT_ID": "reddit-id-sEcReT-55",
    "REDDIT_CLIENT_SECRET": "reddit-sEcReT-0042xyz",
    "FRED_API_KEY": "fred-sEcReT-3141",
    "CRYPTO_API_KEYS": "gateway-sEcReT-one,gateway-sEcReT-two",
    "CRYPTO_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/services/T000/B000/webhook-sEcReT-token",
}
DB_PASSWORD = "db-sEcReT-pa55"
SECRET_VALUES = [v for value in SECRETS.values() for v in value.split(",")] + ["webhook-sEcReT-token", DB_PASSWORD]


def _current_key() -> tuple[str, datetime]:
    now = datetime.now(UTC).replace(tzinfo=None)
    start = now.replace(second=0, microsecond=0, minute=now.minute - now.minute % 5) - timedelta(minutes=5)
    return start.strftime(PARTITION_KEY_FORMAT), start


def _leaks(text: str) -> list[str]:
    return [s for s in SECRET_VALUES if s.lower() in text.lower()]


@pytest.fixture
def secret_db_url(private_mariadb: PrivateMariaDB):
    """A database on the private server, reached as a user with a password."""
    name = "secrets_db"
    private_mariadb.execute(f"DROP DATABASE IF EXISTS {name}")
    private_mariadb.execute(f"CREATE DATABASE {name}")
    private_mariadb.execute("CREATE USER IF NOT EXISTS 'crypto'@'127.0.0.1' IDENTIFIED BY %s", (DB_PASSWORD,))
    private_mariadb.execute(f"GRANT ALL ON {name}.* TO 'crypto'@'127.0.0.1'")
    return f"mysql+pymysql://crypto:{DB_PASSWORD}@127.0.0.1:{private_mariadb.port}/{name}"


def test_no_secret_reaches_events_logs_metadata_or_output(secret_db_url, monkeypatch, caplog, capfd):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COINGECKO_PLAN", "pro")
    monkeypatch.setenv("CRYPTO_DB_URL", secret_db_url)
    monkeypatch.setenv("CRYPTO_SOURCE", "live")
    key, start = _current_key()
    instance = dg.DagsterInstance.ephemeral()
    results = []
    caplog.set_level(logging.DEBUG)

    with FakeCoinGecko() as cg, FakeBinance() as ex, FakeNewsServer() as news:
        news.guardian_api_key = SECRETS["GUARDIAN_API_KEY"]
        news.reddit_client_id = SECRETS["REDDIT_CLIENT_ID"]
        news.reddit_client_secret = SECRETS["REDDIT_CLIENT_SECRET"]
        news.guardian_results = [guardian_result(start + timedelta(minutes=1), "Bitcoin rallies", "btc")]
        news.feeds["wire"] = FeedSpec(
            entries=[feed_entry(start + timedelta(minutes=2), "Ether news", "https://x.invalid/e")]
        )
        news.subreddits["CryptoCurrency"] = [reddit_post(start + timedelta(minutes=3), "SOL to the moon", "p1")]
        settings = load_settings()  # the secrets reach the resources as the definitions hand them on
        prices = PriceSourceResource.from_settings(
            settings,
            coingecko_base_url=cg.url,
            exchanges="binance",
            exchange_urls={"binance": ex.url},
            backoff_base_s=0.01,
            timeout_s=1.0,
            max_attempts=3,
        )
        sources = NewsSourcesResource.from_settings(
            settings,
            guardian_base_url=news.url,
            rss_feeds=[news.feed_url("wire")],
            reddit_auth_url=news.url,
            reddit_api_url=news.url,
            reddit_subreddits=["CryptoCurrency"],
            backoff_base_s=0.01,
            timeout_s=1.0,
            max_attempts=3,
            guardian_min_interval_s=0,
            reddit_min_interval_s=0,
        )

        def run(assets, db_url=secret_db_url):
            result = dg.materialize(
                assets,
                partition_key=key,
                instance=instance,
                raise_on_error=False,
                resources={
                    "warehouse": WarehouseResource(db_url=db_url),
                    "price_source": prices,
                    "news_sources": sources,
                },
            )
            results.append(result)
            return result

        cg.faults.extend(["429", "500"])
        ex.faults.extend(["500", "timeout"])
        news.fail("guardian", "500")
        news.fail("rss:wire", "503")
        assert run([price_data_real]).success
        assert run([news_items]).success
        cg.faults.extend(["500"] * 3)  # CoinGecko down: the run fails with a message naming the URL
        news.fail("guardian", "401", "401", "401")
        assert not run([price_data_real]).success
        run([news_items])
        wrong = secret_db_url.replace(DB_PASSWORD, DB_PASSWORD + "-wrong")
        assert not run([price_data_real], db_url=wrong).success
    assert [r.success for r in results] == [True, True, False, True, False]

    texts = {"captured log records": caplog.text, "stdout/stderr": "".join(capfd.readouterr())}
    for result in results:
        run_record = instance.get_run_by_id(result.run_id)
        texts[f"run {result.run_id} record"] = serialize_value(run_record)
        texts[f"run {result.run_id} events"] = "\n".join(serialize_value(e) for e in instance.all_logs(result.run_id))
    assert "HTTP Request" in caplog.text  # httpx's own request log was captured, URLs and all
    leaks = {where: _leaks(text) for where, text in texts.items() if _leaks(text)}
    assert leaks == {}


def test_the_gateway_never_echoes_a_key(sqlite_url, monkeypatch, caplog, capfd):
    from api.app import create_app
    from resources.config.settings import load_settings
    from tests.integration.test_api_support import seed

    seed(sqlite_url)
    settings = load_settings({"CRYPTO_DB_URL": sqlite_url, "CRYPTO_API_KEYS": SECRETS["CRYPTO_API_KEYS"]})
    caplog.set_level(logging.DEBUG)
    bodies = []
    with TestClient(create_app(settings, cache_prefix="security:")) as client:
        good, other = SECRETS["CRYPTO_API_KEYS"].split(",")
        for headers in (
            {"X-API-Key": good},
            {"Authorization": f"Bearer {other}"},
            {"X-API-Key": good + "x"},
            {"Authorization": f"Bearer {good}-nope"},
        ):
            for route in ("/v1/prices/latest", "/v1/prices?symbols=BTC", "/v1/nope"):
                response = client.get(route, headers=headers)
                assert response.status_code in (200, 403, 404)
                bodies.append(response.text + str(dict(response.headers)))
        bodies.append(client.get("/metrics").text)
    leaks = _leaks(caplog.text + "".join(capfd.readouterr()) + "".join(bodies))
    assert leaks == []


PAYLOADS = [
    "' OR 1=1 --",
    '"; DROP TABLE price_data_real; --',
    "%27",
    "BTC' UNION SELECT * FROM partition_log --",
    "') OR ('1'='1",
    "\\",
    "BTC%' OR '%'='",
    "𝔹𝕋ℂ",
    "\x00",
    "1; SELECT SLEEP(5)",
    "*",
    "%",
    "_",
]


def _string_params(schema: dict) -> list[tuple[str, str, str]]:
    out = []
    for path, methods in schema["paths"].items():
        operation = methods.get("get")
        if not operation:
            continue
        for param in operation.get("parameters", []):
            kinds = param.get("schema", {})
            types = {kinds.get("type")} | {s.get("type") for s in kinds.get("anyOf", [])}
            if "string" in types and "format" not in kinds and not any("format" in s for s in kinds.get("anyOf", [])):
                out.append((path, param["in"], param["name"]))
    return out


def _table_counts(url: str) -> dict[str, int]:
    wh = get_warehouse(url)
    with wh.engine.connect() as conn:
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for name, table in METADATA.tables.items()
            if sa.inspect(conn).has_table(name)
        }


def test_injection_strings_on_every_text_parameter(db_url):
    from tests.integration.test_api_support import make_app, seed

    seed(db_url)
    before = _table_counts(db_url)
    app = make_app(db_url, cache_prefix="inject:")
    params = _string_params(app.openapi())
    names = {name for _, _, name in params}
    assert {"symbols", "columns", "cursor"} <= names, names
    failures = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for path, where, name in params:
            for payload in PAYLOADS:
                if where == "path":
                    url, query = re.sub(r"\{" + name + r"\}", payload.replace("/", "%2F"), path), {}
                else:
                    url, query = path, {name: payload}
                response = client.get(url, params=query)
                ok = response.status_code in (400, 404, 406) or (response.status_code == 200 and _no_rows(response))
                if not ok:
                    failures.append((path, name, payload, response.status_code, response.text[:200]))
    assert failures == []
    assert _table_counts(db_url) == before


def _no_rows(response) -> bool:
    if "json" not in response.headers.get("content-type", ""):
        return False
    body = response.json()
    return isinstance(body, dict) and (not body.get("data") or body.get("count") == 0)
