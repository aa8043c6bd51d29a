"""``news_items -> sentiment_data`` through Dagster, on SQLite and MariaDB.

Offline default (simulated news, lexicon), the transformers path on a tiny local CryptoBERT, re-runs
that score nothing twice, live sources on fake servers with faults, and late items.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from datetime import UTC, datetime, timedelta  # noqa: E402

import dagster as dg  # noqa: E402
import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from crypto_assets.news import news_items  # noqa: E402
from crypto_assets.partitions import PARTITION_KEY_FORMAT  # noqa: E402
from crypto_assets.sentiment import sentiment_data  # noqa: E402
from resources.config.settings import load_settings  # noqa: E402
from resources.model.sentiment_scorers import SentimentModelResource  # noqa: E402
from resources.sources.news_sources import NewsSourcesResource  # noqa: E402
from resources.storage.dagster_resources import WarehouseResource  # noqa: E402
from resources.storage.schema import news_items as news_table  # noqa: E402
from resources.storage.schema import sentiment_data as sentiment_table  # noqa: E402
from resources.storage.warehouse import Warehouse  # noqa: E402
from testkit.fakes.fake_news_servers import FakeNewsServer, FeedSpec, feed_entry, guardian_result, reddit_post  # noqa: E402
from testkit.fakes.tiny_model import save_tiny_cryptobert  # noqa: E402

# Windows two days ago: inside the rolling partition horizon whenever the suite runs.
DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
W1 = DAY + timedelta(hours=12)
W2 = W1 + timedelta(minutes=5)


def key(window: datetime) -> str:
    return window.strftime(PARTITION_KEY_FORMAT)


def run(
    url: str,
    assets,
    *,
    news: NewsSourcesResource | None = None,
    model: SentimentModelResource | None = None,
    window: datetime | None = W1,
    last: datetime | None = None,
) -> dg.ExecuteInProcessResult:
    options: dict = {}
    if last is not None:
        options["tags"] = {
            "dagster/asset_partition_range_start": key(window),
            "dagster/asset_partition_range_end": key(last),
        }
    else:
        options["partition_key"] = key(window)
    return dg.materialize(
        assets,
        resources={
            "warehouse": WarehouseResource(db_url=url),
            "news_sources": news or NewsSourcesResource(),
            "sentiment_model": model or SentimentModelResource(),
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        **options,
    )


def meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


def rows(url: str, table: sa.Table, *columns: str) -> list[tuple]:
    with Warehouse(url).engine.connect() as conn:
        cols = [table.c[c] for c in columns]
        return conn.execute(sa.select(*cols).order_by(*cols)).all()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_cryptobert(tmp_path_factory.mktemp("models") / "cryptobert-tiny")


def test_offline_default_fills_both_tables_with_lineage(db_url):
    result = run(db_url, [news_items, sentiment_data], window=W1, last=W1 + timedelta(minutes=55))
    assert result.success
    items = rows(db_url, news_table, "item_id", "window_start", "source", "symbols")
    scored = rows(db_url, sentiment_table, "item_id", "symbol", "model", "label", "sentiment_score", "confidence")
    assert len({r.window_start for r in items}) == 12 and {r.source for r in items} == {"simulated"}
    pairs = {(r.item_id, s) for r in items for s in r.symbols.split(",") if s}
    assert {(r.item_id, r.symbol) for r in scored} == pairs
    assert {r.model for r in scored} == {next(iter({r.model for r in scored}))}
    assert scored[0].model.startswith("lexicon-vader-crypto@")
    assert {r.label for r in scored} == {"bearish", "neutral", "bullish"}
    assert all(-1 <= r.sentiment_score <= 1 and 0 < r.confidence <= 1 for r in scored)

    news_meta, sentiment_meta = meta(result, "news_items"), meta(result, "sentiment_data")
    assert news_meta["source"] == "simulated" and news_meta["sources_ok"] == 1
    assert sentiment_meta["model_name"] == "lexicon-vader-crypto" and len(sentiment_meta["model_revision"]) == 12
    assert sentiment_meta["items_scored"] == len({i for i, _ in pairs}) and sentiment_meta["pairs_scored"] == len(pairs)
    assert sentiment_meta["items_skipped"] == sentiment_meta["items_without_coins"] > 0
    assert sum(sentiment_meta["label_mix"].values()) == len(pairs)

    assert sentiment_data.asset_deps[dg.AssetKey("sentiment_data")] == {dg.AssetKey("news_items")}
    committed = Warehouse(db_url).committed_windows("sentiment_data")
    assert len(committed) == 12 and committed["row_count"].sum() == len(pairs)


def test_rerunning_a_window_scores_nothing_twice(db_url):
    assert run(db_url, [news_items, sentiment_data]).success
    items_before = rows(db_url, news_table, "item_id", "collected_at", "symbols")
    scored_before = rows(db_url, sentiment_table, "item_id", "symbol", "model", "analyzed_at", "sentiment_score")
    again = run(db_url, [news_items, sentiment_data])
    assert again.success
    assert rows(db_url, news_table, "item_id", "collected_at", "symbols") == items_before
    assert (
        rows(db_url, sentiment_table, "item_id", "symbol", "model", "analyzed_at", "sentiment_score") == scored_before
    )
    m = meta(again, "sentiment_data")
    assert m["pairs_scored"] == 0 and m["items_scored"] == 0 and m["texts_scored"] == 0
    assert m["pairs_already_scored"] == len(scored_before) and m["dagster/row_count"] == len(scored_before)
    assert Warehouse(db_url).committed_windows("sentiment_data")["row_count"].tolist() == [len(scored_before)]


def test_the_transformers_path_scores_the_same_windows(db_url, tiny_dir, monkeypatch):
    assert run(db_url, [news_items, sentiment_data]).success
    lexicon_rows = rows(db_url, sentiment_table, "item_id", "symbol", "model")
    monkeypatch.setenv("CRYPTO_SENTIMENT_MODEL", str(tiny_dir))
    model = SentimentModelResource.from_settings(load_settings(), device="cpu", batch_size=4)
    result = run(db_url, [sentiment_data], model=model)
    assert result.success
    m = meta(result, "sentiment_data")
    assert m["model_kind"] == "transformers" and m["model_name"] == "cryptobert-tiny" and m["device"] == "cpu"
    assert m["pairs_scored"] == len(lexicon_rows)
    by_model: dict[str, set] = {}
    for r in rows(db_url, sentiment_table, "item_id", "symbol", "model"):
        by_model.setdefault(r.model, set()).add((r.item_id, r.symbol))
    assert len(by_model) == 2 and len(set(map(frozenset, by_model.values()))) == 1
    assert m["model"] in by_model and m["model"] == f"cryptobert-tiny@{m['model_revision']}"
    again = run(db_url, [sentiment_data], model=model)
    assert meta(again, "sentiment_data")["pairs_scored"] == 0


# ----------------------------------------------------------------------------- live, on fake servers
def live(server: FakeNewsServer, **overrides) -> NewsSourcesResource:
    options = dict(
        mode="live",
        guardian_api_key=server.guardian_api_key,
        guardian_base_url=server.url,
        rss_feeds=[server.feed_url("coindesk")],
        reddit_client_id=server.reddit_client_id,
        reddit_client_secret=server.reddit_client_secret,
        reddit_auth_url=server.url,
        reddit_api_url=server.url,
        reddit_subreddits=["Bitcoin"],
        reddit_username="tester",
        timeout_s=0.5,
        max_attempts=2,
        backoff_base_s=0.0,
        guardian_min_interval_s=0.0,
        reddit_min_interval_s=0.0,
    )
    options.update(overrides)
    return NewsSourcesResource(**options)


def fill(server: FakeNewsServer, at: datetime) -> None:
    server.guardian_results = [
        guardian_result(
            at + timedelta(minutes=1), "Bitcoin ETF inflows surge", "btc-etf", trail="Funds bought $1bn of bitcoin."
        ),
        guardian_result(at + timedelta(minutes=2), "", "empty-title"),
    ]
    server.feeds["coindesk"] = FeedSpec(
        entries=[
            feed_entry(
                at + timedelta(minutes=3), "Solana (SOL) slides 6% after an outage", "https://coindesk.example/sol"
            ),
            feed_entry(
                at + timedelta(minutes=3),
                "Same ETF story, syndicated",
                "https://www.theguardian.com/" + server.guardian_results[0]["id"] + "?utm_source=rss",
            ),
            feed_entry(None, "An entry without a date", "https://coindesk.example/nodate"),
        ]
    )
    server.subreddits["Bitcoin"] = [reddit_post(at + timedelta(minutes=4), "$ETH looking strong", "p1")]


def test_live_sources_land_and_a_failed_source_lands_nothing(sqlite_url, monkeypatch):
    for name in ("GUARDIAN_API_KEY", "REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with FakeNewsServer() as server:
        fill(server, W1)
        server.fail("reddit:Bitcoin", "html", "html")  # Reddit answers an HTML page twice: it fails
        result = run(sqlite_url, [news_items, sentiment_data], news=live(server))
        assert result.success
        stored = rows(sqlite_url, news_table, "source", "title", "symbols")
        assert {(r.source, r.title, r.symbols) for r in stored} == {
            ("guardian", "Bitcoin ETF inflows surge", "BTC"),
            ("rss", "Solana (SOL) slides 6% after an outage", "SOL"),
        }
        m = meta(result, "news_items")
        assert (m["sources_ok"], m["sources_failed"], m["sources_skipped"]) == (2, 1, 0)
        assert m["items_skipped"] == 2 and m["items_duplicate"] == 1
        failed = [s for s in m["sources"] if s["status"] == "failed"]
        assert failed[0]["feed"] == "reddit:r/Bitcoin" and "not JSON" in failed[0]["error"]
        assert {s.headers["User-Agent"] for s in server.requests if s.route.startswith("reddit")} == {
            "python:crypto-data-platform:0.1.0 (by /u/tester)"
        }
        assert {r.symbol for r in rows(sqlite_url, sentiment_table, "symbol")} == {"BTC", "SOL"}

        # The next run gets Reddit back: its post lands, nothing stored before is lost or re-scored.
        again = run(sqlite_url, [news_items, sentiment_data], news=live(server))
        assert again.success and len(rows(sqlite_url, news_table, "item_id")) == 3
        assert meta(again, "sentiment_data")["pairs_scored"] == 1


def test_sources_without_credentials_are_skipped_with_a_warning(sqlite_url, monkeypatch):
    for name in ("GUARDIAN_API_KEY", "REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with FakeNewsServer() as server:
        fill(server, W1)
        result = run(sqlite_url, [news_items], news=live(server, guardian_api_key="", reddit_client_id=""))
        assert result.success
        m = meta(result, "news_items")
        assert (m["sources_ok"], m["sources_skipped"]) == (1, 2)
        skipped = {s["feed"]: s["error"] for s in m["sources"] if s["status"] == "skipped"}
        assert skipped == {
            "guardian": "GUARDIAN_API_KEY is not set",
            "reddit": "REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET are not set",
        }
        assert server.hits("guardian") == 0 and server.hits("reddit-token") == 0
        assert [r.source for r in rows(sqlite_url, news_table, "source")] == ["rss", "rss"]


def test_when_every_source_fails_the_run_fails_and_writes_nothing(sqlite_url):
    with FakeNewsServer() as server:
        fill(server, W1)
        server.fail("guardian", "500", "500")
        server.fail("rss:coindesk", "malformed", "malformed")
        server.fail("reddit-token", "503", "503")
        result = run(sqlite_url, [news_items], news=live(server))
        assert not result.success
        assert rows(sqlite_url, news_table, "item_id") == []
        assert Warehouse(sqlite_url).committed_windows("news_items").empty


def test_a_late_item_goes_to_its_own_window_on_that_window_s_rerun(db_url):
    with FakeNewsServer() as server:
        server.feeds["coindesk"] = FeedSpec(
            entries=[
                feed_entry(W2 + timedelta(minutes=1), "Bitcoin rallies", "https://coindesk.example/on-time"),
            ]
        )
        news = live(server, guardian_api_key="", reddit_client_id="")
        assert run(db_url, [news_items], news=news, window=W2).success
        # An item published in W1 shows up only after W1 ran (feeds lag): the W2 run must not take it.
        server.feeds["coindesk"].entries.append(
            feed_entry(W1 + timedelta(minutes=4), "Ether slides", "https://coindesk.example/late")
        )
        second = run(db_url, [news_items], news=news, window=W2)
        assert meta(second, "news_items")["items_late"] == 1
        assert meta(second, "news_items")["late_item_windows"] == [key(W1)]
        assert [(r.window_start, r.title) for r in rows(db_url, news_table, "window_start", "title")] == [
            (W2, "Bitcoin rallies")
        ]
        # Re-running W1 (gap healing, a backfill) queries the sources for W1's time range: it lands in W1.
        assert run(db_url, [news_items], news=news, window=W1).success
        assert [(r.window_start, r.title) for r in rows(db_url, news_table, "window_start", "title")] == [
            (W1, "Ether slides"),
            (W2, "Bitcoin rallies"),
        ]
        third = run(db_url, [news_items], news=news, window=W2)
        assert meta(third, "news_items")["items_late"] == 0 and meta(third, "news_items")["items_before_window"] == 1
