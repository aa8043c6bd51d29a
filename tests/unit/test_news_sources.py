"""Guardian, RSS/Atom and Reddit clients against fake servers: formats, paging, faults, bad items."""

from collections import Counter
from datetime import datetime, timedelta

import pytest

from resources.sources.http import HttpSource, SourceError
from resources.sources.news_common import canonical_url, clean_text, make_item_id
from resources.sources.news_guardian import GuardianClient
from resources.sources.news_reddit import RateLimit, RedditAuth, SubredditFeed, user_agent
from resources.sources.news_rss import RssFeed
from resources.sources.news_sources import collect_news
from testkit.fakes.fake_news_servers import FakeNewsServer, FeedSpec, feed_entry, guardian_result, reddit_post

W = datetime(2026, 11, 20, 12, 0)
END = W + timedelta(minutes=5)


def _http(name: str, url: str, **kw) -> HttpSource:
    options = {"timeout_s": 0.3, "max_attempts": 3, "backoff_base_s": 0.0, "sleep": lambda s: None}
    options.update(kw)
    return HttpSource(name, url, **options)


@pytest.fixture
def server():
    with FakeNewsServer() as fake:
        yield fake


# ----------------------------------------------------------------------------- Guardian
def _guardian(server: FakeNewsServer, **kw) -> GuardianClient:
    return GuardianClient(_http("guardian", server.url), server.guardian_api_key, **kw)


def test_guardian_pages_newest_first_and_stops_past_the_window(server):
    # 450 articles across the day, 3 minutes apart (00:00 to 22:27): three pages of 200. Newest first,
    # page 2 (02:30 to 12:27) already reaches back past the 12:00 window, so page 3 is never read.
    server.guardian_results = [
        guardian_result(W.replace(hour=0) + timedelta(minutes=3 * i), f"Bitcoin story {i}", f"s{i}") for i in range(450)
    ]
    server.guardian_results.append(
        guardian_result(
            W + timedelta(minutes=2),
            "Ether rallies",
            "in-window",
            trail="<p>Ether <strong>jumps</strong> &amp; more</p>",
        )
    )
    skipped = Counter()
    items = _guardian(server).fetch(W, END, skipped)
    requests = [r for r in server.requests if r.route == "guardian"]
    assert [r.query["page"] for r in requests] == ["1", "2"]
    q = requests[0].query
    assert q["from-date"] == q["to-date"] == "2026-11-20" and q["page-size"] == "200" and q["order-by"] == "newest"
    assert q["api-key"] == server.guardian_api_key and "trailText" in q["show-fields"]
    in_window = [i for i in items if W <= i.published_at < END]
    assert [i.title for i in in_window if i.title == "Ether rallies"] == ["Ether rallies"]
    ether = next(i for i in items if i.title == "Ether rallies")
    assert ether.summary == "Ether jumps & more" and ether.url.startswith("https://www.theguardian.com/")
    assert not skipped


def test_guardian_follows_pages_until_the_window_start(server):
    server.guardian_results = [
        guardian_result(W + timedelta(seconds=i), f"Crypto item {i}", f"p{i}") for i in range(290)
    ]
    server.guardian_results += [guardian_result(W - timedelta(minutes=30), "older", "older")]
    items = _guardian(server, page_size=100).fetch(W, END, Counter())
    assert server.hits("guardian") == 3
    assert sum(1 for i in items if W <= i.published_at < END) == 290


def test_guardian_window_that_spans_midnight_asks_for_both_days(server):
    _guardian(server).fetch(datetime(2026, 11, 20, 23, 55), datetime(2026, 11, 21, 0, 0), Counter())
    q = server.requests[-1].query
    assert (q["from-date"], q["to-date"]) == ("2026-11-20", "2026-11-20")
    _guardian(server).fetch(datetime(2026, 11, 20, 23, 0), datetime(2026, 11, 21, 1, 0), Counter())
    q = server.requests[-1].query
    assert (q["from-date"], q["to-date"]) == ("2026-11-20", "2026-11-21")


def test_guardian_bad_items_are_skipped_and_counted(server):
    server.guardian_results = [
        guardian_result(W + timedelta(minutes=1), "Good bitcoin story", "good"),
        guardian_result(W + timedelta(minutes=1), "", "empty-title"),
        guardian_result(W + timedelta(minutes=1), None, "null-title"),
        {**guardian_result(W + timedelta(minutes=1), "Bad date", "bad-date"), "webPublicationDate": "2026-11-20 noon"},
        {**guardian_result(W + timedelta(minutes=1), "No url or id", "x"), "webUrl": None, "id": None},
        guardian_result(W + timedelta(minutes=1), "x" * 5000, "huge-title", trail="y" * 100_000),
        "not an object",
    ]
    skipped = Counter()
    items = _guardian(server).fetch(W, END, skipped)
    titles = sorted(i.title[:20] for i in items)
    assert titles == ["Good bitcoin story", "x" * 20]
    assert skipped == Counter(
        {"empty_title": 2, "bad_date": 1, "no_identity": 1, "truncated_kept": 1, "not_an_object": 1}
    )
    huge = next(i for i in items if i.title.startswith("x"))
    assert len(huge.title) <= 501 and len(huge.summary) <= 4001


@pytest.mark.parametrize("fault", ["429", "500", "503", "timeout", "malformed", "html", "empty"])
def test_guardian_recovers_from_one_transient_fault(server, fault):
    server.timeout_s = 0.6
    server.guardian_results = [guardian_result(W + timedelta(minutes=1), "Bitcoin steady", "ok")]
    server.fail("guardian", fault)
    items = _guardian(server).fetch(W, END, Counter())
    assert [i.title for i in items] == ["Bitcoin steady"]
    assert server.hits("guardian") == 2


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (("500", "500", "500"), "HTTP 500"),
        (("timeout", "timeout", "timeout"), "Timeout"),
        (("malformed", "malformed", "malformed"), "malformed payload"),
        (("html", "html", "html"), "not JSON"),
        (("non_utf8", "non_utf8", "non_utf8"), "not JSON"),
        (("error_envelope",), "status 'error'"),
        (("huge",), "exceeds"),
        (("401",), "HTTP 401"),
    ],
)
def test_guardian_bad_responses_fail_the_source(server, faults, message):
    server.timeout_s = 0.6
    server.guardian_results = [guardian_result(W + timedelta(minutes=1), "Café crypto, naïve bitcoin", "ok")]
    server.fail("guardian", *faults)
    client = GuardianClient(_http("guardian", server.url), server.guardian_api_key, max_bytes=1_000_000)
    with pytest.raises(SourceError, match=message):
        client.fetch(W, END, Counter())


def test_guardian_wrong_key_fails_and_the_key_never_appears_in_the_error(server):
    client = GuardianClient(_http("guardian", server.url), "wrong-key")
    with pytest.raises(SourceError) as info:
        client.fetch(W, END, Counter())
    assert "401" in str(info.value) and "wrong-key" not in str(info.value)


# ----------------------------------------------------------------------------- RSS / Atom
def _feed(server: FakeNewsServer, name: str, **kw) -> RssFeed:
    url = server.feed_url(name)
    return RssFeed(_http(f"rss:{name}", url), url, **kw)


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_feed_entries_are_parsed_and_bad_entries_counted(server, fmt):
    server.feeds["news"] = FeedSpec(
        format=fmt,
        entries=[
            feed_entry(
                W + timedelta(minutes=1),
                "Solana <b>rallies</b> 8%",
                "https://news.example/sol?utm_source=rss",
                summary="<p>SOL &amp; friends</p>",
            ),
            feed_entry(W + timedelta(minutes=2), "   ", "https://news.example/blank"),
            feed_entry(None, "No date here", "https://news.example/nodate"),
            feed_entry(W + timedelta(minutes=3), "Guid only", None, guid="urn:uuid:1234"),
            feed_entry(W - timedelta(hours=3), "Old story", "https://news.example/old"),
        ],
    )
    skipped = Counter()
    items = _feed(server, "news").fetch(W, END, skipped)
    by_title = {i.title: i for i in items}
    assert set(by_title) == {"Solana rallies 8%", "Guid only", "Old story"}
    assert by_title["Solana rallies 8%"].summary == "SOL & friends"
    assert by_title["Solana rallies 8%"].published_at == W + timedelta(minutes=1)
    assert by_title["Guid only"].key == "urn:uuid:1234" and by_title["Guid only"].url is None
    assert skipped["empty_title"] == 1 and skipped["no_date"] == 1


def test_feed_in_another_encoding_still_lands(server):
    server.feeds["latin"] = FeedSpec(
        entries=[feed_entry(W + timedelta(minutes=1), "Café owners accept bitcoin", "https://news.example/cafe")]
    )
    server.fail("rss:latin", "non_utf8")
    skipped = Counter()
    items = _feed(server, "latin").fetch(W, END, skipped)
    assert [i.title for i in items] == ["Café owners accept bitcoin"]
    assert skipped["feed_quirks_tolerated"] == 1


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (("html", "html", "html"), "HTML where an RSS/Atom feed"),
        (("malformed", "malformed", "malformed"), "ends early"),
        (("empty", "empty", "empty"), "not an RSS/Atom document"),
        (("huge",), "exceeds"),
        (("503", "503", "503"), "HTTP 503"),
    ],
)
def test_bad_feed_responses_fail_the_feed(server, faults, message):
    server.feeds["news"] = FeedSpec(entries=[feed_entry(W, "Bitcoin", "https://news.example/a")])
    server.fail("rss:news", *faults)
    with pytest.raises(SourceError, match=message):
        _feed(server, "news", max_bytes=1_000_000).fetch(W, END, Counter())


def test_feed_recovers_from_a_cut_body(server):
    server.feeds["news"] = FeedSpec(entries=[feed_entry(W, "Bitcoin", "https://news.example/a")])
    server.fail("rss:news", "malformed", "429")
    assert [i.title for i in _feed(server, "news").fetch(W, END, Counter())] == ["Bitcoin"]
    assert server.hits("rss:news") == 3


def test_feed_with_localised_pt_br_dates_lands(server):
    """A Brazilian feed writes its dates in Portuguese: read by dateparser after the strict parse fails."""
    server.feeds["br"] = FeedSpec(
        language="pt-BR",
        entries=[
            {
                **feed_entry(None, "Bitcoin sobe 5%", "https://br.example/btc"),
                "published_text": "Seg, 24 Set 2018 10:00:00 -0300",
            },
            {
                **feed_entry(None, "Ether cai", "https://br.example/eth"),
                "published_text": "Ter, 25 Set 2018 23:30:00 -0300",
            },
            {
                **feed_entry(None, "Solana em alta", "https://br.example/sol"),
                "published_text": "Sáb, 1 Dez 2018 09:05:00 +0000",
            },
            {**feed_entry(None, "Sem data", "https://br.example/nada"), "published_text": "algum dia desses"},
            feed_entry(W + timedelta(minutes=1), "Strict date", "https://br.example/strict"),
        ],
    )
    skipped = Counter()
    items = _feed(server, "br").fetch(W, END, skipped)
    published = {i.title: i.published_at for i in items}
    assert published == {
        "Bitcoin sobe 5%": datetime(2018, 9, 24, 13, 0),  # -0300 to UTC
        "Ether cai": datetime(2018, 9, 26, 2, 30),  # across midnight in UTC
        "Solana em alta": datetime(2018, 12, 1, 9, 5),
        "Strict date": W + timedelta(minutes=1),
    }
    assert skipped["localised_date"] == 3 and skipped["bad_date"] == 1


def test_localised_dates_without_a_declared_language_are_detected():
    from resources.sources.news_common import parse_localised_date

    assert parse_localised_date("Seg, 24 Set 2018 10:00:00 -0300") == datetime(2018, 9, 24, 13, 0)
    assert parse_localised_date("Mo, 03 Dez 2018 08:00:00 +0100", "de-DE") == datetime(2018, 12, 3, 7, 0)
    assert parse_localised_date("Seg, 24 Set 2018 10:00:00 -0300", "xx-unknown") == datetime(2018, 9, 24, 13, 0)
    assert parse_localised_date("ontem", "pt-BR") is None, "relative dates are not publication dates"
    assert parse_localised_date("Setembro", "pt-BR") is None, "a date needs a day, a month and a year"
    assert parse_localised_date("", "pt") is None and parse_localised_date(None) is None


def test_missing_feed_fails():
    with FakeNewsServer() as fake:
        with pytest.raises(SourceError, match="404"):
            _feed(fake, "nope").fetch(W, END, Counter())


# ----------------------------------------------------------------------------- Reddit
def _subreddit(
    server: FakeNewsServer, sub: str, *, sleeps: list | None = None, ratelimit: RateLimit | None = None, **kw
) -> SubredditFeed:
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    ua = {"User-Agent": user_agent("tester")}
    auth = RedditAuth(
        _http("reddit-auth", server.url, headers=ua), server.reddit_client_id, server.reddit_client_secret
    )
    return SubredditFeed(_http("reddit", server.url, headers=ua), auth, sub, sleep=sleep, ratelimit=ratelimit, **kw)


def test_reddit_token_user_agent_and_paging(server):
    server.subreddits["Bitcoin"] = [
        reddit_post(W + timedelta(seconds=i), f"BTC post {i}", f"id{i}") for i in range(250)
    ]
    server.subreddits["Bitcoin"] += [reddit_post(W - timedelta(hours=1), "older", "old1")]
    items = _subreddit(server, "Bitcoin").fetch(W, END, Counter())
    assert len([i for i in items if i.published_at >= W]) == 250
    listing = [r for r in server.requests if r.route == "reddit:Bitcoin"]
    assert len(listing) == 3 and listing[0].query["limit"] == "100" and listing[1].query["after"] == "t3_id150"
    assert server.hits("reddit-token") == 1
    for r in server.requests:
        assert r.headers["User-Agent"] == "python:crypto-data-platform:0.1.0 (by /u/tester)"
    assert listing[0].headers["Authorization"] == "bearer token-1"
    post = next(i for i in items if i.title == "BTC post 0")
    assert post.url == "https://www.reddit.com/r/CryptoCurrency/comments/id0/slug/"


def test_reddit_bad_posts_are_skipped(server):
    good = reddit_post(W + timedelta(minutes=1), "ETH to 10k", "a", selftext="[removed]")
    server.subreddits["ethereum"] = [
        good,
        reddit_post(W + timedelta(minutes=1), "", "b"),
        {**reddit_post(W + timedelta(minutes=1), "no date", "c"), "created_utc": "yesterday"},
        reddit_post(W + timedelta(minutes=1), "\x00\x01 control \ud800 chars", "d", selftext="z" * 50_000),
    ]
    skipped = Counter()
    items = _subreddit(server, "ethereum").fetch(W, END, skipped)
    assert sorted(i.title for i in items) == ["ETH to 10k", "control ? chars"]
    assert next(i for i in items if i.title == "ETH to 10k").summary == ""
    assert skipped["empty_title"] == 1 and skipped["bad_date"] == 1 and skipped["truncated_kept"] == 1


def test_reddit_honours_the_rate_limit_headers(server):
    server.subreddits["Bitcoin"] = [reddit_post(W + timedelta(seconds=i), f"post {i}", f"id{i}") for i in range(150)]
    server.ratelimit_remaining = 1  # the first listing spends the budget
    server.ratelimit_reset_s = 7
    sleeps: list[float] = []
    ratelimit = RateLimit()
    _subreddit(server, "Bitcoin", sleeps=sleeps, ratelimit=ratelimit).fetch(W, END, Counter())
    assert sleeps == [7.0] and ratelimit.waits == 1


def test_reddit_gives_up_when_the_reset_is_too_far(server):
    server.subreddits["Bitcoin"] = [reddit_post(W + timedelta(seconds=i), f"post {i}", f"id{i}") for i in range(150)]
    server.ratelimit_remaining = 1
    server.ratelimit_reset_s = 600
    with pytest.raises(SourceError, match="rate limit spent"):
        _subreddit(server, "Bitcoin", max_ratelimit_wait_s=60).fetch(W, END, Counter())


def test_reddit_refreshes_a_revoked_token_once(server):
    server.subreddits["Bitcoin"] = [reddit_post(W + timedelta(minutes=1), "post", "p1")]
    feed = _subreddit(server, "Bitcoin")
    feed.fetch(W, END, Counter())
    server.expire_tokens()
    assert [i.title for i in feed.fetch(W, END, Counter())] == ["post"]
    assert server.hits("reddit-token") == 2


@pytest.mark.parametrize("fault", ["429", "502", "timeout", "malformed"])
def test_reddit_and_feeds_recover_from_one_transient_fault(server, fault):
    server.timeout_s = 0.6
    server.subreddits["Bitcoin"] = [reddit_post(W + timedelta(minutes=1), "BTC post", "p1")]
    server.feeds["news"] = FeedSpec(entries=[feed_entry(W + timedelta(minutes=1), "Bitcoin", "https://n.example/1")])
    server.fail("reddit:Bitcoin", fault)
    server.fail("reddit-token", fault)
    server.fail("rss:news", fault)
    assert [i.title for i in _subreddit(server, "Bitcoin").fetch(W, END, Counter())] == ["BTC post"]
    assert [i.title for i in _feed(server, "news").fetch(W, END, Counter())] == ["Bitcoin"]
    assert server.hits("reddit:Bitcoin") == server.hits("reddit-token") == server.hits("rss:news") == 2


def test_reddit_wrong_credentials_fail(server):
    feed = _subreddit(server, "Bitcoin")
    feed.auth.client_secret = "not the secret"
    with pytest.raises(SourceError, match="401"):
        feed.fetch(W, END, Counter())


@pytest.mark.parametrize("faults", [("malformed",) * 3, ("html",) * 3, ("500",) * 3, ("non_utf8",) * 3])
def test_reddit_bad_listing_fails_the_subreddit(server, faults):
    server.subreddits["Bitcoin"] = [reddit_post(W + timedelta(minutes=1), "Bitcoin à la mode", "p1")]
    server.fail("reddit:Bitcoin", *faults)
    with pytest.raises(SourceError):
        _subreddit(server, "Bitcoin").fetch(W, END, Counter())


def test_unknown_subreddit_redirect_is_not_followed_and_fails_that_subreddit(server):
    """A misspelled subreddit answers 302 to the subreddit search: 'r/X not found', no bogus posts."""
    server.subreddits["Bitcoin"] = [reddit_post(W + timedelta(minutes=1), "BTC post", "p1")]
    collection = collect_news([_subreddit(server, "Bitcoinn"), _subreddit(server, "Bitcoin")], W, END)
    bad, good = collection.outcomes
    assert bad.status == "failed" and bad.items == []
    assert bad.error.startswith("reddit: r/Bitcoinn not found") and "302" in bad.error
    assert "/subreddits/search?q=Bitcoinn" in bad.error
    assert good.status == "ok" and [i.title for i in good.items] == ["BTC post"]
    assert server.hits("reddit-search") == 0, "the redirect to the search is not followed"
    assert server.hits("reddit:Bitcoinn") == 1, "a redirect is not retried"


def test_a_listing_of_subreddits_is_not_posts(server):
    """Were the search's t5 listing served for a subreddit, none of its records becomes a post."""
    server.search_listing_for.add("Bitcoin")
    with pytest.raises(SourceError, match=r"r/Bitcoin not found: its listing holds no posts \(t3\), only 41 't5'"):
        _subreddit(server, "Bitcoin").fetch(W, END, Counter())


def test_only_t3_children_are_posts(server):
    server.subreddits["Bitcoin"] = [
        reddit_post(W + timedelta(minutes=1), "BTC post", "p1"),
        {**reddit_post(W + timedelta(minutes=2), "r/Bitcoin", "x"), "_kind": "t5"},
        {**reddit_post(W + timedelta(minutes=3), "a comment", "c"), "_kind": "t1"},
    ]
    skipped = Counter()
    assert [i.title for i in _subreddit(server, "Bitcoin").fetch(W, END, skipped)] == ["BTC post"]
    assert skipped["not_a_post"] == 2


# ----------------------------------------------------------------------------- collection
def test_a_failing_feed_fails_alone(server):
    server.feeds["good"] = FeedSpec(entries=[feed_entry(W + timedelta(minutes=1), "Bitcoin up", "https://a.example/1")])
    server.feeds["bad"] = FeedSpec(entries=[feed_entry(W + timedelta(minutes=1), "Ether up", "https://b.example/1")])
    server.fail("rss:bad", "html", "html", "html")
    collection = collect_news([_feed(server, "good"), _feed(server, "bad")], W, END)
    assert [o.status for o in collection.outcomes] == ["ok", "failed"]
    assert collection.outcomes[1].items == [] and "HTML" in collection.outcomes[1].error
    assert not collection.all_failed
    assert collection.outcomes[1].report()["http"]["requests"] == 3


# ----------------------------------------------------------------------------- identity and text
def test_item_ids_are_stable_and_shared_by_the_same_article():
    a = make_item_id("rss", "http://News.Example.com/story/?utm_source=feed&b=2&a=1#comments")
    b = make_item_id("guardian", "https://news.example.com/story?a=1&b=2")
    assert a == b and len(a) == 64
    assert make_item_id("rss", "urn:uuid:1") != make_item_id("reddit", "urn:uuid:1")
    assert canonical_url("https://x.example/") == "https://x.example"


def test_clean_text():
    assert clean_text("<p>Bitcoin&nbsp;<b>rallies</b></p>\n\n 5%", 100) == ("Bitcoin rallies 5%", False)
    assert clean_text(None, 10) == ("", False)
    text, cut = clean_text("abcdefghijkl", 5)
    assert cut and text == "abcde…"


def test_the_resource_reads_the_sources_base_urls_from_the_environment(server, monkeypatch):
    """GUARDIAN_BASE_URL, REDDIT_AUTH_URL and REDDIT_API_URL replace the providers' hosts (as for doctor),
    through the settings the definitions build the resource from."""
    from resources.config.settings import load_settings
    from resources.sources.news_sources import NewsSourcesResource

    server.guardian_results.append(guardian_result(W + timedelta(minutes=1), "Bitcoin rallies", "btc"))
    server.subreddits["Bitcoin"] = [reddit_post(W + timedelta(minutes=2), "BTC post", "p1")]
    for name in ("GUARDIAN_BASE_URL", "REDDIT_AUTH_URL", "REDDIT_API_URL"):
        monkeypatch.setenv(name, server.url)
    resource = NewsSourcesResource.from_settings(
        load_settings(),
        mode="live",
        guardian_api_key=server.guardian_api_key,
        rss_feeds=["http://127.0.0.1:9/x"],
        reddit_client_id=server.reddit_client_id,
        reddit_client_secret=server.reddit_client_secret,
        reddit_subreddits=["Bitcoin"],
        max_attempts=1,
        timeout_s=0.5,
    )
    collection = resource.collect(W, END)
    by_name = {o.name: o for o in collection.outcomes}
    assert [i.title for i in by_name["guardian"].items] == ["Bitcoin rallies"]
    assert [i.title for i in by_name["reddit:r/Bitcoin"].items] == ["BTC post"]
