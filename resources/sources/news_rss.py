"""RSS 2.0 and Atom feeds of crypto news sites, read with ``feedparser``.

Entry dates are read strictly first (RFC 822 / ISO 8601, by ``feedparser``); a date feedparser
cannot read (a localised one, pt-BR ``Seg, 24 Set 2018 10:00:00 -0300``) is read by
``dateparser`` in the feed's declared language, counted as ``localised_date`` (the item is kept).

A feed holds only its most recent entries, so a window is complete only if it is collected while
its items are still in the feed; ``news_items`` therefore merges (never drops what an earlier run
stored). Each feed is its own unit: a broken feed fails alone.
"""

from __future__ import annotations

import calendar
import io
import time
import xml.sax
from collections import Counter
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import feedparser
import httpx

from resources.sources.http import HttpSource, MalformedPayload
from resources.sources.news_common import (
    DEFAULT_MAX_RESPONSE_BYTES,
    FEED_USER_AGENT,
    RawItem,
    build_item,
    parse_localised_date,
)

SOURCE = "rss"
# Well-known crypto news feeds, used in live mode when CRYPTO_RSS_FEEDS is not set.
DEFAULT_FEEDS = (
    "https://www.coindesk.com/arc/outboundfeeds/rss/",
    "https://cointelegraph.com/rss",
    "https://decrypt.co/feed",
    "https://bitcoinmagazine.com/.rss/full/",
)
_CLOSING_TAGS = (b"</rss>", b"</feed>", b"</rdf:RDF>", b"</RDF>")


def feed_name(url: str) -> str:
    """The feed's name in reports and circuit breakers: ``rss:<host>``."""
    return f"{SOURCE}:{(urlsplit(url).hostname or url).lower()}"


def rss_http(url: str, **options: Any) -> HttpSource:
    """The HTTP client of the feed at ``url``; ``options`` go to :class:`HttpSource`."""
    return HttpSource(feed_name(url), url, headers={"User-Agent": FEED_USER_AGENT}, **options)


def parse_feed(response: httpx.Response) -> Any:
    """The parsed feed; :class:`MalformedPayload` for HTML, a document that is no feed, or XML cut
    short. Recoverable quirks (a wrong declared encoding, stray ``&``) are tolerated, as
    ``feedparser`` does."""
    content = response.content
    head = content[:512].lstrip().lower()
    content_type = response.headers.get("content-type", "").lower()
    if head.startswith((b"<!doctype html", b"<html")) or (
        "text/html" in content_type and b"<rss" not in head and b"<feed" not in head
    ):
        raise MalformedPayload(f"HTML where an RSS/Atom feed was expected (content-type {content_type or 'none'})")
    # BytesIO: feedparser treats a bytes argument that names a local file as that file's path.
    parsed = feedparser.parse(io.BytesIO(content))
    if not parsed.get("version"):
        problem = parsed.get("bozo_exception")
        raise MalformedPayload(f"not an RSS/Atom document ({problem or 'unrecognised root element'})")
    problem = parsed.get("bozo_exception")
    if isinstance(problem, xml.sax.SAXParseException) and not content.rstrip().endswith(_CLOSING_TAGS):
        raise MalformedPayload(f"feed XML ends early ({problem})")
    return parsed


def _entry_time(entry: Any, language: str | None, skipped: Counter) -> datetime | None:
    """The entry's publication time (naive UTC): feedparser's strict parse, else its raw text read
    as a localised date; None when it has no date or none that can be read (counted as ``bad_date``)."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            return datetime(*time.gmtime(calendar.timegm(value))[:6])
    raw = [entry.get(k) for k in ("published", "updated", "created") if entry.get(k)]
    for text in raw:
        parsed = parse_localised_date(text, language)
        if parsed is not None:
            skipped["localised_date"] += 1
            return parsed
    if raw:
        skipped["bad_date"] += 1
    return None


class RssFeed:
    """One RSS or Atom feed."""

    source = SOURCE

    def __init__(
        self,
        http: HttpSource,
        url: str,
        *,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ):
        self.http = http
        self.url = url
        self.name = feed_name(url)
        self.max_bytes = max_bytes

    def fetch(self, start: datetime, end: datetime, skipped: Counter) -> list[RawItem]:
        """Every entry the feed holds now (the caller keeps those published in [start, end))."""
        parsed, _ = self.http.fetch("GET", self.url, parse_feed, max_bytes=self.max_bytes)
        if parsed.get("bozo"):
            skipped["feed_quirks_tolerated"] += 1
        items: list[RawItem] = []
        language = parsed.get("feed", {}).get("language")
        for entry in parsed.entries:
            published = _entry_time(entry, language, skipped)
            if published is None and any(entry.get(k) for k in ("published", "updated", "created")):
                continue
            item = build_item(
                SOURCE,
                key=entry.get("id") or entry.get("guid"),
                published_at=published,
                title=entry.get("title"),
                summary=entry.get("summary"),
                url=entry.get("link"),
                skipped=skipped,
            )
            if item is not None:
                items.append(item)
        return items
