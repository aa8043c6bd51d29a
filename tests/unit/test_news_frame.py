"""From collected items to ``news_items`` rows: windows, late items, duplicates, merging with stored rows."""

from collections import Counter
from datetime import datetime, timedelta

import pandas as pd

from resources.config.universe import load_universe
from resources.sources.coin_tagging import tagger_for
from resources.sources.news_common import FeedOutcome, RawItem, make_item_id
from resources.sources.news_sources import NEWS_COLUMNS, NewsCollection, collect_news, merge_with_stored, news_frame

TAGGER = tagger_for(load_universe())
W1 = datetime(2026, 11, 20, 12, 0)
W2 = W1 + timedelta(minutes=5)
NOW = W2 + timedelta(minutes=6)


def _item(source: str, url: str, published: datetime, title: str = "Bitcoin rallies", summary: str = "") -> RawItem:
    return RawItem(source, url, published, title, summary, url)


def _collection(*outcomes: FeedOutcome) -> NewsCollection:
    return NewsCollection(list(outcomes), NOW)


def test_rows_hold_only_the_range_each_in_its_publication_window():
    items = [
        _item("rss", "https://a.example/late", W1 + timedelta(minutes=4, seconds=59)),  # W1: late for a W2 run
        _item("rss", "https://a.example/in", W2 + timedelta(seconds=1), "Solana (SOL) and $ETH slide"),
        _item("rss", "https://a.example/edge", W2 + timedelta(minutes=4, seconds=59)),
        _item("rss", "https://a.example/future", W2 + timedelta(minutes=5)),
    ]
    built = news_frame(
        _collection(FeedOutcome("rss:a", "rss", "ok", items=items)), TAGGER, W2, W2 + timedelta(minutes=5)
    )
    frame = built.frame
    assert list(frame.columns) == NEWS_COLUMNS
    assert frame["url"].tolist() == ["https://a.example/in", "https://a.example/edge"]
    assert set(frame["window_start"]) == {pd.Timestamp(W2)}
    assert frame["symbols"].tolist() == ["ETH,SOL", "BTC"]
    assert frame["collected_at"].tolist() == [pd.Timestamp(NOW)] * 2
    assert built.counts == {
        "items_received": 4,
        "outside_before": 1,
        "outside_after": 1,
        "duplicates": 0,
        "items_without_coins": 0,
    }


def test_a_range_spreads_items_over_its_windows():
    items = [_item("simulated", f"https://s.example/{k}", W1 + timedelta(minutes=2 * k)) for k in range(5)]
    frame = news_frame(
        _collection(FeedOutcome("simulated", "simulated", "ok", items=items)), TAGGER, W1, W1 + timedelta(minutes=10)
    ).frame
    assert frame["window_start"].tolist() == [pd.Timestamp(W1)] * 3 + [pd.Timestamp(W2)] * 2


def test_the_same_article_from_two_sources_is_one_row_from_the_preferred_source():
    url = "https://news.example/btc-etf"
    guardian = _item("guardian", url, W1 + timedelta(minutes=1), "Bitcoin ETF approved")
    rss = _item("rss", url + "?utm_source=rss", W1 + timedelta(minutes=1), "Bitcoin ETF approved (feed)")
    built = news_frame(
        _collection(
            FeedOutcome("rss:x", "rss", "ok", items=[rss]),
            FeedOutcome("guardian", "guardian", "ok", items=[guardian, guardian]),
        ),
        TAGGER,
        W1,
        W2,
    )
    assert len(built.frame) == 1 and built.counts["duplicates"] == 2
    row = built.frame.iloc[0]
    assert row["source"] == "guardian" and row["item_id"] == make_item_id("rss", url)


def test_failed_and_skipped_feeds_contribute_nothing():
    failed = FeedOutcome("rss:x", "rss", "failed", items=[_item("rss", "https://x.example/1", W1)], error="boom")
    skipped = FeedOutcome("reddit", "reddit", "skipped", error="no credentials")
    collection = _collection(failed, skipped)
    assert news_frame(collection, TAGGER, W1, W2).frame.empty
    assert collection.all_failed and len(collection.failed) == 1 and len(collection.skipped) == 1
    assert not _collection(skipped).all_failed


def test_collect_news_isolates_a_feed_that_raises():
    class Good:
        name = source = "good"

        def fetch(self, start, end, skipped):
            skipped["empty_title"] += 2
            skipped["truncated_kept"] += 1
            return [_item("rss", "https://g.example/1", start)]

    class Broken:
        name = source = "broken"

        def fetch(self, start, end, skipped):
            from resources.sources.http import SourceError

            raise SourceError("broken", "HTTP 503")

    collection = collect_news([Broken(), Good()], W1, W2, now=NOW)
    assert [o.status for o in collection.outcomes] == ["failed", "ok"]
    assert collection.items_skipped() == 2  # kept-but-truncated items are not skips
    assert collection.reports()[0]["error"] == "broken: HTTP 503"
    assert collection.collected_at == NOW


def test_merge_keeps_stored_rows_and_first_collection_time():
    def rows(specs, collected):
        items = [_item("rss", f"https://m.example/{k}", W1 + timedelta(minutes=1), title) for k, title in specs]
        return news_frame(
            NewsCollection([FeedOutcome("rss:m", "rss", "ok", items=items)], collected), TAGGER, W1, W2
        ).frame

    first = rows([(1, "Bitcoin rallies"), (2, "Ether slides")], NOW)
    # later the feed no longer holds item 1, has an edited title for item 2, and a new item 3
    later = rows([(2, "Ether slides 5%"), (3, "Solana flat")], NOW + timedelta(hours=1))
    merged = merge_with_stored(later, first)
    by_url = merged.set_index("url")
    assert sorted(by_url.index) == ["https://m.example/1", "https://m.example/2", "https://m.example/3"]
    assert by_url.loc["https://m.example/2", "title"] == "Ether slides 5%"
    assert by_url.loc["https://m.example/2", "collected_at"] == pd.Timestamp(NOW)
    assert by_url.loc["https://m.example/3", "collected_at"] == pd.Timestamp(NOW + timedelta(hours=1))
    assert merge_with_stored(later, later.iloc[0:0]).equals(later)
    assert len(merge_with_stored(later.iloc[0:0], first)) == 2
    assert Counter(merged["symbols"]) == Counter({"BTC": 1, "ETH": 1, "SOL": 1})
