"""What every news source shares: the raw item, text cleaning, stable ids, payload checks.

A source client turns a provider's payload into :class:`RawItem` objects and counts the items it
had to skip (no title, no date, ...) by reason. A response it cannot use at all (not JSON, not a
feed, an error envelope, too large) raises :class:`~resources.retry_policy.SourceError`: that source then
contributes nothing to the run, and the others still land.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dateparser

MAX_TITLE_CHARS = 500
MAX_SUMMARY_CHARS = 4000
MAX_URL_CHARS = 1024
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
FEED_USER_AGENT = "crypto-data-platform/0.1.0 (news collector)"

_TAGS = re.compile(r"<[^>]{0,2000}>")
_SPACE = re.compile(r"\s+")
_TRACKING_PARAMS = re.compile(r"^(utm_[a-z]+|fbclid|gclid|mc_cid|mc_eid|ref|ref_src|cmpid|ito)$", re.I)


@dataclass(frozen=True)
class RawItem:
    """One news item or post as a source delivered it (times naive UTC, text cleaned)."""

    source: str
    key: str  # the URL, or the source's guid when there is no URL
    published_at: datetime
    title: str
    summary: str
    url: str | None
    collected_at: datetime | None = None  # None: when the run collected it


class NewsFeed(Protocol):
    """One unit of collection: a Guardian query, an RSS feed, a subreddit, the simulation."""

    name: str
    source: str

    def fetch(self, start: datetime, end: datetime, skipped: Counter) -> list[RawItem]:
        """Items published in (roughly) [start, end); count skipped items in ``skipped`` by reason."""
        ...


@dataclass
class FeedOutcome:
    """What one feed did in a run: its items, or why it has none."""

    name: str
    source: str
    status: str  # "ok", "failed" or "skipped"
    items: list[RawItem] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    error: str | None = None
    http: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def report(self) -> dict[str, Any]:
        """A JSON-able summary for run metadata."""
        out: dict[str, Any] = {
            "feed": self.name,
            "source": self.source,
            "status": self.status,
            "items": len(self.items),
            "items_skipped": dict(self.skipped),
            "seconds": round(self.seconds, 3),
        }
        if self.error:
            out["error"] = self.error
        if self.http:
            out["http"] = self.http
        return out


def clean_text(value: Any, limit: int) -> tuple[str, bool]:
    """Plain text from a provider's field: tags stripped, entities decoded, whitespace collapsed,
    control characters and lone surrogates removed, cut to ``limit`` characters.

    Returns the text and whether it was cut.
    """
    if value is None:
        return "", False
    text = value if isinstance(value, str) else str(value)
    text = html.unescape(_TAGS.sub(" ", text))
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> '?'
    text = "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch)[0] != "C")
    text = _SPACE.sub(" ", text).strip()
    if len(text) > limit:
        return text[:limit].rstrip() + "…", True
    return text, False


def canonical_url(url: str) -> str:
    """The URL an item is identified by: https, lower-case host, no fragment, no tracking
    parameters, sorted query, no trailing slash. The same article reached through two feeds (or
    with ``?utm_source=...``) gets one identity."""
    parts = urlsplit(url.strip())
    scheme = "https" if parts.scheme in ("http", "https", "") else parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if parts.port and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING_PARAMS.match(k))
    path = parts.path.rstrip("/") if parts.path not in ("", "/") else ""
    return urlunsplit((scheme, host, path, urlencode(query), ""))


def make_item_id(source: str, key: str) -> str:
    """A stable 64-hex-character id: of the canonical URL when ``key`` is a URL (so the same
    article from two sources is one item), else of the source and its guid."""
    if key.startswith(("http://", "https://")):
        basis = "url:" + canonical_url(key)
    else:
        basis = f"guid:{source}:{key}"
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()


def to_utc_naive(value: datetime) -> datetime:
    """A naive UTC datetime (aware values converted, naive ones taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def parse_iso_utc(value: Any) -> datetime | None:
    """An ISO 8601 timestamp (``Z`` or offset) as naive UTC, or None when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return to_utc_naive(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


# Absolute dates only ("yesterday" or "2 hours ago" would be read relative to now), with a day,
# a month and a year; a date without a zone is UTC.
_LOCALISED_SETTINGS = {
    "PARSERS": ["timestamp", "custom-formats", "absolute-time"],
    "REQUIRE_PARTS": ["day", "month", "year"],
    "TIMEZONE": "UTC",
    "TO_TIMEZONE": "UTC",
    "RETURN_AS_TIMEZONE_AWARE": True,
}


def parse_localised_date(value: Any, language: str | None = None) -> datetime | None:
    """A date written in another language or a loose format (pt-BR ``Seg, 24 Set 2018 10:00:00
    -0300``) as naive UTC, read by ``dateparser``; None when it is not an absolute date.

    The fallback after a strict RFC 822 / ISO 8601 parse. ``language`` (a feed's ``pt-BR``,
    ``de``, ...) narrows the languages tried; without it ``dateparser`` detects the language.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    languages = [language.split("-")[0].split("_")[0].lower()] if language else None
    try:
        parsed = dateparser.parse(value.strip(), languages=languages, settings=_LOCALISED_SETTINGS)
    except ValueError:  # a language code dateparser does not know
        parsed = None
    if parsed is None and languages:
        parsed = dateparser.parse(value.strip(), settings=_LOCALISED_SETTINGS)
    return to_utc_naive(parsed) if parsed is not None else None


def build_item(
    source: str, *, key: Any, published_at: datetime | None, title: Any, summary: Any, url: Any, skipped: Counter
) -> RawItem | None:
    """A :class:`RawItem` from a provider's fields, or None (counted in ``skipped``) when the item
    has no usable title, date or identity. Over-long text is cut and counted as ``truncated``."""
    if published_at is None:
        skipped["no_date"] += 1
        return None
    title_text, title_cut = clean_text(title, MAX_TITLE_CHARS)
    if not title_text:
        skipped["empty_title"] += 1
        return None
    summary_text, summary_cut = clean_text(summary, MAX_SUMMARY_CHARS)
    url_text = url.strip() if isinstance(url, str) and url.strip().startswith(("http://", "https://")) else None
    if url_text is not None and len(url_text) > MAX_URL_CHARS:
        skipped["url_too_long"] += 1
        return None
    identity = url_text or (str(key).strip() if key is not None else "")
    if not identity:
        skipped["no_identity"] += 1
        return None
    if title_cut or summary_cut:
        skipped["truncated_kept"] += 1
    return RawItem(
        source=source, key=identity, published_at=published_at, title=title_text, summary=summary_text, url=url_text
    )
