"""A fake Guardian, RSS/Atom and Reddit server on loopback, that can be told to misbehave.

One ``ThreadingHTTPServer`` serves the three formats as their providers document them
(see shared/EXTERNAL_APIS.md):

- ``GET /search`` — the Guardian content API (api-key checked, day-level date filter, newest
  first, paging with ``page`` / ``page-size``, the key's ``X-RateLimit-*-day``/``-minute`` headers);
- ``GET /feeds/<name>`` — an RSS 2.0 or Atom feed;
- ``POST /api/v1/access_token`` and ``GET /r/<sub>/new`` — Reddit's OAuth client-credentials
  token and subreddit Listings (bearer token checked, ``after`` paging, ``X-Ratelimit-*``). A
  subreddit that does not exist (one neither given posts nor among Reddit's well-known ones)
  answers as Reddit does: 302 to ``/subreddits/search?q=<sub>``, whose Listing holds subreddit
  records (``kind: "t5"``), not posts. A subreddit named in ``search_listing_for`` answers that
  search Listing directly (200, as a proxy following the redirect would); a post given a
  ``"_kind"`` key is served as that kind of child (``t1`` comment, ``t5`` subreddit, ...).

Faults are queued per route with :meth:`FakeNewsServer.fail`; each request to the route takes
the next one: ``429`` (with ``Retry-After: 0``), ``500``/``502``/``503``/``401``, ``timeout``
(answers after ``timeout_s``), ``malformed`` (the body cut in half), ``html`` (an HTML error
page), ``huge`` (``huge_bytes`` of padding), ``non_utf8`` (the body in Windows-1252), ``empty``,
and ``error_envelope`` (a well-formed error answer).
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape, quoteattr

from testkit.fakes.loopback import LoopbackServer

# Subreddits that exist even when a test gives them no posts (the platform's defaults).
KNOWN_SUBREDDITS = frozenset({"CryptoCurrency", "Bitcoin", "ethereum", "CryptoMarkets"})
FAULTS = (
    "429",
    "500",
    "502",
    "503",
    "401",
    "timeout",
    "malformed",
    "html",
    "huge",
    "non_utf8",
    "empty",
    "error_envelope",
)


def guardian_result(
    published: datetime, title: str | None, slug: str, trail: str = "", section: str = "technology"
) -> dict[str, Any]:
    """One element of the Guardian's ``response.results``."""
    path = f"{section}/{published:%Y/%b/%d}/{slug}".lower()
    return {
        "id": path,
        "type": "article",
        "sectionId": section,
        "sectionName": section.title(),
        "webPublicationDate": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "webTitle": title,
        "webUrl": f"https://www.theguardian.com/{path}",
        "apiUrl": f"https://content.guardianapis.com/{path}",
        "fields": {"trailText": trail},
        "isHosted": False,
        "pillarId": "pillar/news",
        "pillarName": "News",
    }


def feed_entry(
    published: datetime | None, title: str | None, link: str | None, summary: str = "", guid: str | None = None
) -> dict[str, Any]:
    """One RSS item / Atom entry."""
    return {"published": published, "title": title, "link": link, "summary": summary, "guid": guid}


def reddit_post(
    created: datetime, title: str | None, post_id: str, selftext: str = "", subreddit: str = "CryptoCurrency"
) -> dict[str, Any]:
    """One ``t3`` child's ``data`` of a Listing."""
    return {
        "id": post_id,
        "name": f"t3_{post_id}",
        "title": title,
        "selftext": selftext,
        "created_utc": created.replace(tzinfo=UTC).timestamp(),
        "permalink": f"/r/{subreddit}/comments/{post_id}/slug/",
        "url": f"https://www.reddit.com/r/{subreddit}/",
        "score": 10,
        "num_comments": 2,
        "subreddit": subreddit,
    }


@dataclass
class FeedSpec:
    """A feed the server publishes."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    format: str = "rss"  # or "atom"
    title: str = "Crypto News"
    language: str | None = None  # RSS <language>, e.g. "pt-BR"


@dataclass
class SeenRequest:
    """A request the server answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    route: str


class FakeNewsServer(LoopbackServer):
    """Guardian, RSS and Reddit on ``http://127.0.0.1:<port>``; use as a context manager."""

    protocol_version = "HTTP/1.1"

    def __init__(self) -> None:
        super().__init__()
        self.guardian_api_key = "guardian-test-key"
        self.guardian_results: list[dict[str, Any]] = []
        self.guardian_calls_today = 0  # the developer key's day budget (5,000), in X-RateLimit-* headers
        self.feeds: dict[str, FeedSpec] = {}
        self.reddit_client_id = "reddit-test-id"
        self.reddit_client_secret = "reddit-test-secret"
        self.subreddits: dict[str, list[dict[str, Any]]] = {}
        self.search_listing_for: set[str] = set()
        self.ratelimit_remaining: float | None = None
        self.ratelimit_reset_s = 0
        self.timeout_s = 1.0
        self.huge_bytes = 2 * 1024 * 1024
        self.requests: list[SeenRequest] = []
        self._faults: dict[str, deque[str]] = defaultdict(deque)
        self._tokens: set[str] = set()
        self._token_count = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ control
    def feed_url(self, name: str) -> str:
        """URL of feed ``name``."""
        return f"{self.url}/feeds/{name}"

    def fail(self, route: str, *faults: str) -> None:
        """Queue ``faults`` for ``route`` (``guardian``, ``rss:<name>``, ``reddit-token``,
        ``reddit:<sub>``): the next requests to it get them, in order."""
        for fault in faults:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}")
            self._faults[route].append(fault)

    def expire_tokens(self) -> None:
        """Revoke every Reddit token issued so far (their next use gets a 401)."""
        with self._lock:
            self._tokens.clear()

    def hits(self, route: str) -> int:
        """How many requests ``route`` received."""
        return sum(1 for r in self.requests if r.route == route)

    # ------------------------------------------------------------------ routes
    def _take_fault(self, route: str) -> str | None:
        with self._lock:
            queue = self._faults.get(route)
            return queue.popleft() if queue else None

    def respond(
        self, method: str, path: str, query: dict[str, str], headers: Message, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Route one request, record it, and answer it (or its queued fault)."""
        if method == "POST" and path == "/api/v1/access_token":
            route, answer = "reddit-token", self._reddit_token
        elif method == "GET" and path == "/search":
            route, answer = "guardian", self._guardian
        elif method == "GET" and path.startswith("/feeds/"):
            route, answer = f"rss:{path.removeprefix('/feeds/')}", self._feed
        elif method == "GET" and path.startswith("/r/") and path.endswith("/new"):
            route, answer = f"reddit:{path.split('/')[2]}", self._reddit_listing
        elif method == "GET" and path == "/subreddits/search":
            route, answer = "reddit-search", self._reddit_search
        else:
            return 404, {"Content-Type": "application/json"}, b'{"error": 404}'
        with self._lock:
            self.requests.append(SeenRequest(method, path, query, dict(headers.items()), route))
        fault = self._take_fault(route)
        if fault == "timeout":
            time.sleep(self.timeout_s)
            fault = None
        status, payload, content_type, extra = answer(route, query, headers, body)
        if fault is not None:
            status, payload, content_type, extra = self._apply_fault(fault, status, payload, content_type, extra)
        return status, {"Content-Type": content_type, **extra}, payload

    def _apply_fault(
        self, fault: str, status: int, body: bytes, content_type: str, headers: dict[str, str]
    ) -> tuple[int, bytes, str, dict[str, str]]:
        if fault == "429":
            return 429, b'{"message": "Too Many Requests", "error": 429}', "application/json", {"Retry-After": "0"}
        if fault in ("500", "502", "503", "401"):
            return int(fault), f"upstream error {fault}".encode(), "text/plain", {}
        if fault == "malformed":
            return 200, body[: max(1, len(body) // 2)], content_type, headers
        if fault == "html":
            page = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
            return 200, page, "text/html; charset=utf-8", {}
        if fault == "huge":
            return 200, b" " * self.huge_bytes + body, content_type, headers
        if fault == "non_utf8":  # Latin-1 text as raw bytes: re-encoded, and JSON escapes \u00e0 unescaped
            raw = body.decode("utf-8").encode("cp1252", "replace")
            raw = re.sub(rb"\\u00([89a-fA-F][0-9a-fA-F])", lambda m: bytes([int(m.group(1), 16)]), raw)
            return 200, raw, content_type, headers
        if fault == "empty":
            return 200, b"", content_type, headers
        if fault == "error_envelope":
            envelope = {"response": {"status": "error", "message": "The query is invalid"}}
            return 200, json.dumps(envelope).encode(), "application/json", {}
        raise AssertionError(fault)

    def _guardian(self, route: str, query: dict[str, str], headers: Message, content: bytes):
        if query.get("api-key") != self.guardian_api_key:
            return 401, b'{"message": "Unauthorized"}', "application/json", {}
        start_day, end_day = query.get("from-date", "0000-00-00"), query.get("to-date", "9999-99-99")

        def day(result: Any) -> str:
            return str(result.get("webPublicationDate") or "")[:10] if isinstance(result, dict) else start_day

        results = [r for r in self.guardian_results if start_day <= day(r) <= end_day]
        results.sort(key=lambda r: str(r.get("webPublicationDate") or "") if isinstance(r, dict) else "", reverse=True)
        size = max(1, min(200, int(query.get("page-size", 10))))
        page = max(1, int(query.get("page", 1)))
        pages = max(1, math.ceil(len(results) / size))
        body = {
            "response": {
                "status": "ok",
                "userTier": "developer",
                "total": len(results),
                "startIndex": (page - 1) * size + 1,
                "pageSize": size,
                "currentPage": page,
                "pages": pages,
                "orderBy": "newest",
                "results": results[(page - 1) * size : page * size],
            }
        }
        with self._lock:
            self.guardian_calls_today += 1
            left = max(0, 5000 - self.guardian_calls_today)
        limits = {
            "X-RateLimit-Limit-day": "5000",
            "X-RateLimit-Remaining-day": str(left),
            "X-RateLimit-Limit-minute": "720",
            "X-RateLimit-Remaining-minute": "719",
        }
        return 200, json.dumps(body, ensure_ascii=False).encode("utf-8"), "application/json", limits

    def _feed(self, route: str, query: dict[str, str], headers: Message, content: bytes):
        name = route.removeprefix("rss:")
        spec = self.feeds.get(name)
        if spec is None:
            return 404, b"not found", "text/plain", {}
        xml = _atom(spec, self.feed_url(name)) if spec.format == "atom" else _rss(spec, self.feed_url(name))
        kind = "application/atom+xml" if spec.format == "atom" else "application/rss+xml"
        return 200, xml.encode("utf-8"), f"{kind}; charset=utf-8", {}

    def _reddit_token(self, route: str, query: dict[str, str], headers: Message, content: bytes):
        form = parse_qs(content.decode())
        expected = base64.b64encode(f"{self.reddit_client_id}:{self.reddit_client_secret}".encode()).decode()
        if headers.get("Authorization") != f"Basic {expected}":
            return 401, b'{"message": "Unauthorized", "error": 401}', "application/json", {}
        if form.get("grant_type") != ["client_credentials"]:
            return 200, b'{"error": "unsupported_grant_type"}', "application/json", {}
        with self._lock:
            self._token_count += 1
            token = f"token-{self._token_count}"
            self._tokens.add(token)
        body = {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"}
        return 200, json.dumps(body).encode(), "application/json", {}

    def _reddit_listing(self, route: str, query: dict[str, str], headers: Message, content: bytes):
        auth = headers.get("Authorization", "")
        if not auth.lower().startswith("bearer ") or auth.split(" ", 1)[1] not in self._tokens:
            return 401, b'{"message": "Unauthorized", "error": 401}', "application/json", {}
        subreddit = route.removeprefix("reddit:")
        if subreddit in self.search_listing_for:
            return self._reddit_search(route, {"q": subreddit}, headers, content)
        if subreddit not in self.subreddits and subreddit not in KNOWN_SUBREDDITS:
            return 302, b"", "text/html; charset=utf-8", {"Location": f"/subreddits/search?q={subreddit}"}
        posts = sorted(self.subreddits.get(subreddit, []), key=_created, reverse=True)
        after = query.get("after")
        if after:
            names = [p.get("name") for p in posts]
            posts = posts[names.index(after) + 1 :] if after in names else []
        limit = max(1, min(100, int(query.get("limit", 25))))
        page = posts[:limit]
        next_after = page[-1].get("name") if len(posts) > limit and page else None
        listing = {
            "kind": "Listing",
            "data": {
                "after": next_after,
                "dist": len(page),
                "before": None,
                "children": [
                    {"kind": p.get("_kind", "t3"), "data": {k: v for k, v in p.items() if k != "_kind"}} for p in page
                ],
            },
        }
        ratelimit: dict[str, str] = {}
        if self.ratelimit_remaining is not None:
            with self._lock:
                self.ratelimit_remaining = max(0.0, self.ratelimit_remaining - 1)
                ratelimit = {
                    "X-Ratelimit-Used": "1",
                    "X-Ratelimit-Remaining": f"{self.ratelimit_remaining:.1f}",
                    "X-Ratelimit-Reset": str(self.ratelimit_reset_s),
                }
        # ASCII escapes, as Reddit sends them: a lone surrogate in a title stays valid JSON.
        return 200, json.dumps(listing).encode("utf-8"), "application/json", ratelimit

    def _reddit_search(self, route: str, query: dict[str, str], headers: Message, content: bytes):
        """Subreddits whose name resembles ``q``: a Listing of ``t5`` records (as Reddit answers a
        misspelled name, e.g. 37 of them)."""
        q = query.get("q", "")
        names = sorted(KNOWN_SUBREDDITS | set(self.subreddits)) + [f"{q}{i}" for i in range(37)]
        children = [
            {
                "kind": "t5",
                "data": {
                    "display_name": name,
                    "name": f"t5_{i:05x}",
                    "id": f"{i:05x}",
                    "title": f"r/{name}",
                    "public_description": f"All about {name}",
                    "subscribers": 1000 + i,
                    "url": f"/r/{name}/",
                    "created_utc": 1262304000.0 + i * 86400 * 60,
                },
            }
            for i, name in enumerate(names)
        ]
        listing = {
            "kind": "Listing",
            "data": {"after": None, "dist": len(children), "before": None, "children": children},
        }
        return 200, json.dumps(listing).encode("utf-8"), "application/json", {}


def _created(post: dict[str, Any]) -> float:
    try:
        return float(post.get("created_utc") or 0)
    except (TypeError, ValueError):
        return 0.0


def _rss(spec: FeedSpec, url: str) -> str:
    items = []
    for e in spec.entries:
        parts = []
        if e["title"] is not None:
            parts.append(f"<title>{escape(e['title'])}</title>")
        if e["link"] is not None:
            parts.append(f"<link>{escape(e['link'])}</link>")
        if e.get("guid"):
            parts.append(f'<guid isPermaLink="false">{escape(e["guid"])}</guid>')
        if e.get("published_text"):  # a date as the site writes it, e.g. pt-BR "Seg, 24 Set 2018 10:00:00 -0300"
            parts.append(f"<pubDate>{escape(e['published_text'])}</pubDate>")
        elif e["published"] is not None:
            parts.append(f"<pubDate>{format_datetime(e['published'].replace(tzinfo=UTC), usegmt=True)}</pubDate>")
        if e["summary"]:
            parts.append(f"<description>{escape(e['summary'])}</description>")
        items.append("<item>" + "".join(parts) + "</item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{escape(spec.title)}</title><link>{escape(url)}</link><description>news</description>"
        + (f"<language>{escape(spec.language)}</language>" if spec.language else "")
        + "".join(items)
        + "</channel></rss>\n"
    )


def _atom(spec: FeedSpec, url: str) -> str:
    entries = []
    for e in spec.entries:
        parts = []
        if e["title"] is not None:
            parts.append(f"<title>{escape(e['title'])}</title>")
        if e["link"] is not None:
            parts.append(f"<link href={quoteattr(e['link'])}/>")
        parts.append(f"<id>{escape(e.get('guid') or e['link'] or '')}</id>")
        if e["published"] is not None:
            stamp = e["published"].strftime("%Y-%m-%dT%H:%M:%SZ")
            parts.append(f"<published>{stamp}</published><updated>{stamp}</updated>")
        if e["summary"]:
            parts.append(f'<summary type="html">{escape(e["summary"])}</summary>')
        entries.append("<entry>" + "".join(parts) + "</entry>")
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(spec.title)}</title><id>{escape(url)}</id><updated>2026-01-01T00:00:00Z</updated>"
        + "".join(entries)
        + "</feed>\n"
    )
