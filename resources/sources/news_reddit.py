"""Reddit: new posts of a list of subreddits, through OAuth (client credentials).

``POST https://www.reddit.com/api/v1/access_token`` (basic auth, ``grant_type=client_credentials``)
gives a bearer token; ``GET https://oauth.reddit.com/r/{sub}/new?limit=100&after=...`` returns a
Listing, newest first, paged with ``after``. Every call carries a descriptive User-Agent, and the
``X-Ratelimit-Remaining`` / ``X-Ratelimit-Reset`` headers are honoured: when the budget is spent
the client sleeps until the reset (or gives up if that is further away than it may wait, or than
the run's deadline allows).

Strict: only ``kind: "t3"`` children are posts. A misspelled, banned or unknown subreddit answers
302 to the subreddit search, whose Listing holds subreddit records (``t5``): listings are fetched
without following redirects, and a redirect or a listing with no post among its entries fails that
subreddit ("r/X not found") while the other subreddits land.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from resources.sources.http import HttpSource, MalformedPayload, SourceError, json_body
from resources.sources.news_common import DEFAULT_MAX_RESPONSE_BYTES, RawItem, build_item

SOURCE = "reddit"
DEFAULT_AUTH_URL = "https://www.reddit.com"
DEFAULT_API_URL = "https://oauth.reddit.com"
APP_VERSION = "0.1.0"


def user_agent(username: str, version: str = APP_VERSION) -> str:
    """The User-Agent Reddit asks for: ``<platform>:<app id>:<version> (by /u/<name>)``."""
    return f"python:crypto-data-platform:{version} (by /u/{username})"


def reddit_http(
    auth_url: str | None = None,
    api_url: str | None = None,
    username: str = "crypto-data-platform",
    *,
    api_min_interval_s: float = 0.0,
    **options: Any,
) -> tuple[HttpSource, HttpSource]:
    """Reddit's token and API clients (its hosts unless given), with the User-Agent it asks for;
    ``options`` go to both :class:`HttpSource` s."""
    headers = {"User-Agent": user_agent(username)}
    auth = HttpSource("reddit-auth", auth_url or DEFAULT_AUTH_URL, headers=headers, **options)
    api = HttpSource(SOURCE, api_url or DEFAULT_API_URL, headers=headers, min_interval_s=api_min_interval_s, **options)
    return auth, api


def _listing(response: httpx.Response) -> dict[str, Any]:
    data = json_body(response)
    if not isinstance(data, dict) or data.get("kind") != "Listing" or not isinstance(data.get("data"), dict):
        raise MalformedPayload("not a Listing")
    if not isinstance(data["data"].get("children"), list):
        raise MalformedPayload("Listing without a 'children' list")
    return data["data"]


def _detail_of(exc: SourceError) -> str:
    """The error's message without the source name in front."""
    return str(exc).removeprefix(f"{exc.source}: ")


def _token(response: httpx.Response) -> dict[str, Any]:
    data = json_body(response)
    if not isinstance(data, dict):
        raise MalformedPayload("token response is not an object")
    if "error" in data or not data.get("access_token"):
        raise SourceError(SOURCE, f"token request refused: {data.get('error', 'no access_token')}")
    return data


@dataclass
class RateLimit:
    """Reddit's per-client budget as its headers last reported it."""

    remaining: float | None = None
    reset_s: float | None = None
    used: float | None = None
    waits: int = 0
    waited_s: float = 0.0

    def update(self, headers: Mapping[str, str]) -> None:
        """Read the budget from a response's ``X-Ratelimit-*`` headers."""

        def number(name: str) -> float | None:
            try:
                return float(headers[name])
            except (KeyError, TypeError, ValueError):
                return None

        self.remaining = number("x-ratelimit-remaining")
        self.reset_s = number("x-ratelimit-reset")
        self.used = number("x-ratelimit-used")


class RedditAuth:
    """Holds one bearer token for a client id, refreshing it before it expires."""

    def __init__(
        self,
        http: HttpSource,
        client_id: str,
        client_secret: str,
        *,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.http = http
        self.client_id = client_id
        self.client_secret = client_secret
        self.max_bytes = max_bytes
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def token(self, refresh: bool = False) -> str:
        """A valid bearer token (a new one when ``refresh`` or when the old one is about to expire)."""
        with self._lock:
            if refresh or self._token is None or self.clock() >= self._expires - 60:
                data, _ = self.http.fetch(
                    "POST",
                    "/api/v1/access_token",
                    _token,
                    data={"grant_type": "client_credentials"},
                    auth=(self.client_id, self.client_secret),
                    max_bytes=self.max_bytes,
                )
                self._token = str(data["access_token"])
                try:
                    lifetime = float(data.get("expires_in") or 3600)
                except (TypeError, ValueError):
                    lifetime = 3600.0
                self._expires = self.clock() + lifetime
            return self._token


class SubredditFeed:
    """New posts of one subreddit."""

    source = SOURCE

    def __init__(
        self,
        http: HttpSource,
        auth: RedditAuth,
        subreddit: str,
        *,
        limit: int = 100,
        max_pages: int = 10,
        max_ratelimit_wait_s: float = 120.0,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        ratelimit: RateLimit | None = None,
    ):
        self.http = http
        self.auth = auth
        self.subreddit = subreddit.strip().removeprefix("r/")
        self.name = f"{SOURCE}:r/{self.subreddit}"
        self.limit = limit
        self.max_pages = max_pages
        self.max_ratelimit_wait_s = max_ratelimit_wait_s
        self.max_bytes = max_bytes
        self.sleep = sleep
        self.ratelimit = ratelimit or RateLimit()

    def _wait_for_budget(self) -> None:
        rl = self.ratelimit
        if rl.remaining is None or rl.remaining >= 1:
            return
        wait = max(0.0, rl.reset_s or 0.0)
        if wait > self.max_ratelimit_wait_s:
            raise SourceError(
                SOURCE,
                f"rate limit spent; it resets in {wait:.0f}s, more than the "
                f"{self.max_ratelimit_wait_s:.0f}s this client waits",
            )
        self.http.check_deadline(wait, f"rate limit spent (resets in {wait:.0f} s)")
        rl.waits += 1
        rl.waited_s += wait
        self.sleep(wait)
        rl.remaining = None

    def _page(self, params: dict[str, Any]) -> dict[str, Any]:
        path = f"/r/{self.subreddit}/new"
        for refreshed in (False, True):
            self._wait_for_budget()
            headers = {"Authorization": f"bearer {self.auth.token(refresh=refreshed)}"}
            try:
                data, response = self.http.fetch(
                    "GET",
                    path,
                    _listing,
                    params=params,
                    headers=headers,
                    max_bytes=self.max_bytes,
                    follow_redirects=False,
                )
            except SourceError as exc:
                if exc.status == 401 and not refreshed:
                    continue  # the token expired or was revoked: get a new one, once
                if exc.status is not None and 300 <= exc.status < 400:
                    raise SourceError(
                        SOURCE,
                        f"r/{self.subreddit} not found: Reddit answered the listing with {_detail_of(exc)}",
                        status=exc.status,
                        url=exc.url,
                    ) from None
                raise
            self.ratelimit.update(response.headers)
            return data
        raise AssertionError("unreachable")

    def fetch(self, start: datetime, end: datetime, skipped: Counter) -> list[RawItem]:
        """Posts newer than ``start`` (paging until a page reaches back past it)."""
        items: list[RawItem] = []
        after: str | None = None
        for _ in range(self.max_pages):
            params: dict[str, Any] = {"limit": self.limit, "raw_json": 1}
            if after:
                params["after"] = after
            listing = self._page(params)
            kinds = Counter(child.get("kind") if isinstance(child, dict) else None for child in listing["children"])
            if kinds and not kinds.get("t3"):
                found = ", ".join(f"{n} {k!r}" for k, n in kinds.most_common())
                raise SourceError(
                    SOURCE, f"r/{self.subreddit} not found: its listing holds no posts (t3), only {found} entries"
                )
            oldest: datetime | None = None
            for child in listing["children"]:
                post = child.get("data") if isinstance(child, dict) else None
                if not isinstance(post, dict):
                    skipped["not_an_object"] += 1
                    continue
                if child.get("kind") != "t3":
                    skipped["not_a_post"] += 1
                    continue
                try:
                    published = datetime.fromtimestamp(float(post["created_utc"]), tz=UTC).replace(tzinfo=None)
                except (KeyError, TypeError, ValueError, OverflowError, OSError):
                    skipped["bad_date"] += 1
                    continue
                oldest = published if oldest is None else min(oldest, published)
                permalink = post.get("permalink")
                url = (
                    f"https://www.reddit.com{permalink}"
                    if isinstance(permalink, str) and permalink.startswith("/")
                    else None
                )
                selftext = post.get("selftext")
                if selftext in ("[removed]", "[deleted]"):
                    selftext = ""
                item = build_item(
                    SOURCE,
                    key=post.get("name") or post.get("id"),
                    published_at=published,
                    title=post.get("title"),
                    summary=selftext,
                    url=url,
                    skipped=skipped,
                )
                if item is not None:
                    items.append(item)
            after = listing.get("after")
            if not after or (oldest is not None and oldest < start):
                break
        return items
