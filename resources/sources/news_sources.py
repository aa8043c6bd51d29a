"""Where ``news_items`` rows come from: the simulated feed offline; Guardian, RSS and Reddit live.

:func:`collect_news` runs each feed on its own: a feed whose response is unusable fails alone
(its items are dropped, none of them half-written) and the others still land; a source without
credentials is skipped with a warning. :func:`news_frame` turns what was collected into rows of
``news_items``: one stable ``item_id`` per item across sources and runs, its coins tagged, and
only the items published inside the run's window range, each in its own publication window.

``NewsSourcesResource`` is the thin Dagster resource over these plain functions and clients.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field

from resources.config.settings import Settings, setting_default
from resources.config.universe import Coin, load_universe
from resources.sources.coin_tagging import CoinTagger, symbols_field
from resources.sources.http import HttpSource, MalformedPayload, SourceError
from resources.sources.news_common import DEFAULT_MAX_RESPONSE_BYTES, FeedOutcome, NewsFeed, make_item_id
from resources.sources.news_guardian import DEFAULT_QUERY as GUARDIAN_QUERY
from resources.sources.news_guardian import GuardianClient, guardian_http
from resources.sources.news_reddit import RateLimit, RedditAuth, SubredditFeed, reddit_http
from resources.sources.news_rss import DEFAULT_FEEDS as RSS_DEFAULT_FEEDS
from resources.sources.news_rss import RssFeed, rss_http
from resources.sources.news_simulated import SimulatedNewsFeed
from resources.storage.dagster_resources import resource_value
from resources.storage.warehouse import utc_now
from resources.storage.windows import WINDOW

NEWS_COLUMNS = [
    "item_id",
    "source",
    "published_at",
    "collected_at",
    "window_start",
    "title",
    "summary",
    "url",
    "symbols",
]
# When the same article arrives from several sources, the row keeps the first of these.
SOURCE_PRIORITY = {"guardian": 0, "rss": 1, "reddit": 2, "simulated": 3}
# Item notes that are not skips: the item was kept.
KEPT_NOTES = frozenset({"truncated_kept", "feed_quirks_tolerated", "localised_date"})


@dataclass
class NewsCollection:
    """What every feed of a run returned, or why it returned nothing."""

    outcomes: list[FeedOutcome]
    collected_at: datetime

    @property
    def failed(self) -> list[FeedOutcome]:
        """Feeds whose response was unusable."""
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def skipped(self) -> list[FeedOutcome]:
        """Sources not tried (no credentials, nothing configured)."""
        return [o for o in self.outcomes if o.status == "skipped"]

    @property
    def all_failed(self) -> bool:
        """True when at least one feed was tried and every tried feed failed."""
        tried = [o for o in self.outcomes if o.status != "skipped"]
        return bool(tried) and all(o.status == "failed" for o in tried)

    def items_skipped(self) -> int:
        """Items dropped for being unusable (no title, no date, ...), over every feed."""
        return sum(n for o in self.outcomes for reason, n in o.skipped.items() if reason not in KEPT_NOTES)

    def reports(self) -> list[dict[str, Any]]:
        """One summary per feed, for run metadata."""
        return [o.report() for o in self.outcomes]


def collect_news(
    feeds: Sequence[NewsFeed],
    start: datetime,
    end: datetime,
    *,
    skipped: Sequence[FeedOutcome] = (),
    now: datetime | None = None,
) -> NewsCollection:
    """Run every feed for [start, end); a feed that raises a source error fails alone."""
    outcomes = list(skipped)
    for feed in feeds:
        began = time.perf_counter()
        problems: Counter = Counter()
        http = getattr(feed, "http", None)
        stats_before = http.stats.as_metadata() if isinstance(http, HttpSource) else {}
        try:
            items = feed.fetch(start, end, problems)
        except (SourceError, MalformedPayload) as exc:
            outcome = FeedOutcome(feed.name, feed.source, "failed", skipped=problems, error=str(exc))
        else:
            outcome = FeedOutcome(feed.name, feed.source, "ok", items=items, skipped=problems)
        if isinstance(http, HttpSource):  # this feed's share of a client that feeds may share
            outcome.http = {k: round(v - stats_before.get(k, 0), 3) for k, v in http.stats.as_metadata().items()}
        outcome.seconds = time.perf_counter() - began
        outcomes.append(outcome)
    return NewsCollection(outcomes, now or utc_now())


@dataclass
class NewsFrame:
    """Rows for ``news_items`` and what was left out of them."""

    frame: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def news_frame(collection: NewsCollection, tagger: CoinTagger, start: datetime, end: datetime) -> NewsFrame:
    """``news_items`` rows for [start, end) from what the feeds returned.

    Items are keyed by :func:`~resources.sources.news_common.make_item_id` and deduplicated (the same
    article from two sources is one row, kept from the higher-priority source). Only items
    published in [start, end) are kept, each with the ``window_start`` of its publication time:
    an item published in an earlier window that a live source delivers only now is *not* written
    here (that would put it in the wrong window and leak it into later features); re-running its
    own window, which queries the sources for that time range, stores it where it belongs.
    """
    records = []
    for outcome in collection.outcomes:
        if outcome.status != "ok":
            continue
        for item in outcome.items:
            records.append(
                {
                    "item_id": make_item_id(item.source, item.key),
                    "source": item.source,
                    "published_at": item.published_at,
                    "collected_at": item.collected_at or collection.collected_at,
                    "title": item.title,
                    "summary": item.summary,
                    "url": item.url,
                }
            )
    counts = {"items_received": len(records), "outside_before": 0, "outside_after": 0, "duplicates": 0}
    if not records:
        return NewsFrame(pd.DataFrame({c: pd.Series(dtype="object") for c in NEWS_COLUMNS}), counts)
    frame = pd.DataFrame.from_records(records)
    frame["published_at"] = pd.to_datetime(frame["published_at"]).astype("datetime64[us]")
    frame["collected_at"] = pd.to_datetime(frame["collected_at"]).astype("datetime64[us]")
    before = frame["published_at"] < pd.Timestamp(start)
    after = frame["published_at"] >= pd.Timestamp(end)
    counts["outside_before"] = int(before.sum())
    counts["outside_after"] = int(after.sum())
    frame = frame.loc[~before & ~after]
    frame = frame.assign(_priority=frame["source"].map(SOURCE_PRIORITY).fillna(len(SOURCE_PRIORITY)))
    frame = frame.sort_values(["_priority", "published_at", "item_id"], kind="stable")
    deduped = frame.drop_duplicates("item_id", keep="first")
    counts["duplicates"] = len(frame) - len(deduped)
    frame = deduped.drop(columns="_priority").sort_values(["published_at", "item_id"]).reset_index(drop=True)
    frame["window_start"] = frame["published_at"].dt.floor(f"{int(WINDOW.total_seconds())}s")
    frame["symbols"] = [symbols_field(tagger.tag(f"{t}\n{s}")) for t, s in zip(frame["title"], frame["summary"])]
    counts["items_without_coins"] = int((frame["symbols"] == "").sum())
    return NewsFrame(frame[NEWS_COLUMNS], counts)


def items_before(collection: NewsCollection, start: datetime) -> pd.DataFrame:
    """``item_id`` and ``window_start`` of the items published before ``start`` that the feeds
    returned: a live source's late arrivals, or (RSS) older entries it still holds."""
    records = [
        (make_item_id(item.source, item.key), item.published_at)
        for outcome in collection.outcomes
        if outcome.status == "ok"
        for item in outcome.items
        if item.published_at < start
    ]
    frame = pd.DataFrame.from_records(records, columns=["item_id", "published_at"]).drop_duplicates("item_id")
    frame["window_start"] = pd.to_datetime(frame["published_at"]).dt.floor(f"{int(WINDOW.total_seconds())}s")
    return frame[["item_id", "window_start"]].reset_index(drop=True)


def merge_with_stored(frame: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """The window range's rows after this run: every stored row, updated by what was fetched now.

    A re-fetched item takes its new content and tags but keeps the ``collected_at`` of when it
    was first stored, so a re-run never makes an item look newer than it is (the strict as-of
    view reads ``collected_at``). Stored items that the sources no longer serve (an RSS feed
    holds only recent entries) stay: a re-run never loses what an earlier run stored.
    """
    if stored.empty:
        return frame
    stored = stored[NEWS_COLUMNS]
    if frame.empty:
        return stored.sort_values(["published_at", "item_id"]).reset_index(drop=True)
    first_seen = stored.set_index("item_id")["collected_at"]
    known = pd.to_datetime(frame["item_id"].map(first_seen)).astype(frame["collected_at"].dtype)
    refreshed = frame.assign(collected_at=known.where(known < frame["collected_at"], frame["collected_at"]))
    kept = stored.loc[~stored["item_id"].isin(frame["item_id"])].astype(
        {
            "published_at": frame["published_at"].dtype,
            "collected_at": frame["collected_at"].dtype,
            "window_start": frame["window_start"].dtype,
        }
    )
    merged = pd.concat([refreshed, kept], ignore_index=True) if len(kept) else refreshed
    return merged.sort_values(["published_at", "item_id"]).reset_index(drop=True)


class NewsSourcesResource(ConfigurableResource):
    """The news sources of ``news_items``.

    ``mode`` ``simulated`` (offline default) or ``live`` (Guardian, RSS feeds, Reddit). The
    definitions fill the fields from the settings (:meth:`from_settings`); an empty key skips its
    source, empty ``rss_feeds`` means a built-in list of crypto news feeds, and empty base URLs the
    providers' hosts. ``universe_file`` (empty: the shipped universe) names the coins tagged.
    """

    mode: str = setting_default("source")
    universe_file: str = ""
    guardian_api_key: str = ""
    guardian_base_url: str = ""
    guardian_query: str = GUARDIAN_QUERY
    rss_feeds: list[str] = Field(default_factory=list)
    reddit_client_id: str = ""
    reddit_client_secret: str = ""
    reddit_auth_url: str = ""
    reddit_api_url: str = ""
    reddit_subreddits: list[str] = Field(default_factory=lambda: list(setting_default("reddit_subreddits")))
    reddit_username: str = "crypto-data-platform"
    reddit_max_ratelimit_wait_s: float = 120.0
    guardian_min_interval_s: float = 0.1  # the free key allows 12 calls a second
    reddit_min_interval_s: float = 0.6  # 100 calls a minute per client id
    timeout_s: float = 15.0
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    max_retry_after_s: float = 120.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    live_run_deadline_s: int = setting_default("live_run_deadline_s")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> NewsSourcesResource:
        """The news sources ``settings`` configure; ``overrides`` replace fields (a test's fake servers)."""
        values: dict[str, Any] = dict(
            mode=settings.source,
            universe_file=str(settings.universe_file or ""),
            guardian_api_key=resource_value(settings, "guardian_api_key"),
            guardian_base_url=settings.guardian_base_url or "",
            rss_feeds=list(settings.rss_feeds),
            reddit_client_id=resource_value(settings, "reddit_client_id"),
            reddit_client_secret=resource_value(settings, "reddit_client_secret"),
            reddit_auth_url=settings.reddit_auth_url or "",
            reddit_api_url=settings.reddit_api_url or "",
            reddit_subreddits=list(settings.reddit_subreddits),
            live_run_deadline_s=settings.live_run_deadline_s,
        )
        return cls(**{**values, **overrides})

    def coins(self) -> tuple[Coin, ...]:
        """The universe whose coins are tagged (in ``news_items`` and again in ``sentiment_data``)."""
        return load_universe(self.universe_file)

    def resolved_mode(self) -> str:
        """``simulated`` or ``live``."""
        mode = self.mode.strip().lower()
        if mode not in ("simulated", "live"):
            raise ValueError(f"news source mode {mode!r}: expected 'simulated' or 'live'")
        return mode

    def _options(self, deadline: datetime | None) -> dict[str, Any]:
        """The retry settings of every news client."""
        return {
            "timeout_s": self.timeout_s,
            "max_attempts": self.max_attempts,
            "backoff_base_s": self.backoff_base_s,
            "max_retry_after_s": self.max_retry_after_s,
            "deadline": deadline,
        }

    def feeds(self, stack: ExitStack, deadline: datetime | None = None) -> tuple[list[NewsFeed], list[FeedOutcome]]:
        """The feeds to run, and the outcomes of those skipped for want of credentials or config;
        no retry waits past ``deadline`` (a live run's)."""
        if self.resolved_mode() == "simulated":
            return [SimulatedNewsFeed(self.coins())], []
        feeds: list[NewsFeed] = []
        skipped: list[FeedOutcome] = []
        max_bytes = self.max_response_bytes
        options = self._options(deadline)

        guardian_key = self.guardian_api_key
        if guardian_key:
            http = stack.enter_context(
                guardian_http(self.guardian_base_url, min_interval_s=self.guardian_min_interval_s, **options)
            )
            feeds.append(GuardianClient(http, guardian_key, query=self.guardian_query, max_bytes=max_bytes))
        else:
            skipped.append(FeedOutcome("guardian", "guardian", "skipped", error="GUARDIAN_API_KEY is not set"))

        urls = list(self.rss_feeds or RSS_DEFAULT_FEEDS)
        for url in urls:
            http = stack.enter_context(rss_http(url, **options))
            feeds.append(RssFeed(http, url, max_bytes=max_bytes))

        client_id = self.reddit_client_id
        client_secret = self.reddit_client_secret
        subreddits = list(self.reddit_subreddits)
        if client_id and client_secret and subreddits:
            auth_http, api = reddit_http(
                self.reddit_auth_url,
                self.reddit_api_url,
                self.reddit_username,
                api_min_interval_s=self.reddit_min_interval_s,
                **options,
            )
            stack.enter_context(auth_http)
            stack.enter_context(api)
            auth = RedditAuth(auth_http, client_id, client_secret, max_bytes=max_bytes)
            ratelimit = RateLimit()  # one budget per client id, shared by its subreddits
            feeds.extend(
                SubredditFeed(
                    api,
                    auth,
                    sub,
                    max_bytes=max_bytes,
                    ratelimit=ratelimit,
                    max_ratelimit_wait_s=self.reddit_max_ratelimit_wait_s,
                )
                for sub in subreddits
            )
        else:
            missing = (
                "REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET are not set"
                if not (client_id and client_secret)
                else "no subreddits configured"
            )
            skipped.append(FeedOutcome("reddit", "reddit", "skipped", error=missing))
        return feeds, skipped

    def collect(self, start: datetime, end: datetime, deadline: datetime | None = None) -> NewsCollection:
        """Collect every feed for [start, end); a feed whose retry would wait past ``deadline`` fails."""
        with ExitStack() as stack:
            feeds, skipped = self.feeds(stack, deadline)
            return collect_news(feeds, start, end, skipped=skipped)
