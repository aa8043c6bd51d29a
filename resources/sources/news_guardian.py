"""The Guardian content API: crypto articles published in a window.

``GET /search?q=...&from-date=&to-date=&order-by=newest&show-fields=trailText&page-size=200&page=N
&api-key=KEY``. Its dates filter by day only, so the client pages (newest first) until it passes
the window's start and keeps only the items published inside the window.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import httpx

from resources.sources.http import HttpSource, MalformedPayload, SourceError, json_body
from resources.sources.news_common import DEFAULT_MAX_RESPONSE_BYTES, RawItem, build_item, parse_iso_utc

SOURCE = "guardian"
DEFAULT_BASE_URL = "https://content.guardianapis.com"
DEFAULT_QUERY = "bitcoin OR cryptocurrency OR cryptocurrencies OR crypto OR ethereum OR blockchain OR stablecoin"
PAGE_SIZE = 200


def _search_page(response: httpx.Response) -> dict[str, Any]:
    data = json_body(response)
    body = data.get("response") if isinstance(data, dict) else None
    if not isinstance(body, dict):
        raise MalformedPayload("no 'response' object in the search result")
    if body.get("status") != "ok":
        raise SourceError(
            SOURCE,
            f"search answered status {body.get('status')!r}: {body.get('message', '')}",
            url=str(response.request.url.copy_remove_param("api-key")),
        )
    if not isinstance(body.get("results"), list):
        raise MalformedPayload("'response.results' is not a list")
    return body


def guardian_http(base_url: str | None = None, **options: Any) -> HttpSource:
    """The Guardian's HTTP client (its host unless ``base_url``); ``options`` go to :class:`HttpSource`."""
    return HttpSource(SOURCE, base_url or DEFAULT_BASE_URL, **options)


class GuardianClient:
    """Articles matching ``query`` published in [start, end), page by page."""

    source = SOURCE
    name = SOURCE

    def __init__(
        self,
        http: HttpSource,
        api_key: str,
        *,
        query: str = DEFAULT_QUERY,
        page_size: int = PAGE_SIZE,
        max_pages: int = 25,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ):
        self.http = http
        self.api_key = api_key
        self.query = query
        self.page_size = page_size
        self.max_pages = max_pages
        self.max_bytes = max_bytes

    def probe(self) -> tuple[dict[str, Any], httpx.Response]:
        """One search of one result (``doctor``'s check): the search body and the answer."""
        params = {"q": "bitcoin", "page-size": 1, "api-key": self.api_key}
        return self.http.fetch("GET", "/search", _search_page, params=params, max_bytes=self.max_bytes)

    def fetch(self, start: datetime, end: datetime, skipped: Counter) -> list[RawItem]:
        """Items published in [start, end)."""
        params = {
            "q": self.query,
            "from-date": start.date().isoformat(),
            "to-date": (end - timedelta(microseconds=1)).date().isoformat(),
            "order-by": "newest",
            "show-fields": "trailText",
            "page-size": self.page_size,
            "api-key": self.api_key,
        }
        items: list[RawItem] = []
        page, pages = 1, 1
        while page <= min(pages, self.max_pages):
            body, _ = self.http.fetch(
                "GET", "/search", _search_page, params={**params, "page": page}, max_bytes=self.max_bytes
            )
            try:
                pages = int(body.get("pages") or 1)
            except (TypeError, ValueError):
                raise SourceError(SOURCE, f"'pages' is not a number: {body.get('pages')!r}") from None
            oldest: datetime | None = None
            for result in body["results"]:
                if not isinstance(result, dict):
                    skipped["not_an_object"] += 1
                    continue
                published = parse_iso_utc(result.get("webPublicationDate"))
                if published is None and result.get("webPublicationDate"):
                    skipped["bad_date"] += 1
                    continue
                fields = result.get("fields")
                if not isinstance(fields, dict):
                    fields = {}
                item = build_item(
                    SOURCE,
                    key=result.get("id"),
                    published_at=published,
                    title=result.get("webTitle"),
                    summary=fields.get("trailText"),
                    url=result.get("webUrl"),
                    skipped=skipped,
                )
                if item is None or published is None:  # build_item refuses an item without a date
                    continue
                oldest = published if oldest is None else min(oldest, published)
                items.append(item)
            if oldest is not None and oldest < start:
                break  # newest first: everything after this page is older than the window
            page += 1
        return items
