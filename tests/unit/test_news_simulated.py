"""The simulated news feed: deterministic, about the universe's coins, its tone following the market."""

from collections import Counter
from datetime import datetime, timedelta

import numpy as np

from resources.config.universe import load_universe
from resources.model.sentiment_scorers import load_scorer
from resources.sources.coin_tagging import tagger_for
from resources.sources.news_simulated import SimulatedNewsFeed, market_moves, simulated_news

COINS = load_universe()
DAY = datetime(2026, 11, 20)


def test_same_window_same_items_alone_or_in_a_range():
    start, end = DAY + timedelta(hours=12), DAY + timedelta(hours=13)
    whole = simulated_news(COINS, start, end)
    pieces = [
        item
        for k in range(12)
        for item in simulated_news(COINS, start + timedelta(minutes=5 * k), start + timedelta(minutes=5 * (k + 1)))
    ]
    assert whole == pieces
    assert whole == simulated_news(COINS, start, end)
    assert all(start <= i.published_at < end for i in whole)
    assert all(timedelta(seconds=5) <= i.collected_at - i.published_at <= timedelta(seconds=90) for i in whole)
    assert len({i.key for i in whole}) == len(whole)
    assert all(i.url.startswith("https://news.simulated.invalid/") for i in whole)


def test_items_per_window_and_their_coins():
    items = simulated_news(COINS, DAY, DAY + timedelta(days=1))
    per_window = Counter(
        i.published_at.replace(minute=i.published_at.minute - i.published_at.minute % 5, second=0) for i in items
    )
    assert len(per_window) == 288 and min(per_window.values()) >= 2 and max(per_window.values()) <= 6
    tagger = tagger_for(COINS)
    tags = [tagger.tag(f"{i.title}\n{i.summary}") for i in items]
    tagged = [t for t in tags if t]
    assert 0.85 < len(tagged) / len(items) < 0.99  # a few market-wide items mention no coin
    mentioned = Counter(s for t in tagged for s in t)
    assert mentioned["BTC"] > mentioned["DOGE"] > 0 and len(mentioned) > 40


def test_tone_follows_the_hour_before_the_window():
    start, end = DAY, DAY + timedelta(days=2)
    items = simulated_news(COINS, start, end)
    moves = market_moves(COINS, start, end)
    tagger = tagger_for(COINS)
    scorer = load_scorer("lexicon")
    z, score = [], []
    for item in items:
        tags = tagger.tag(item.title)
        if len(tags) != 1:
            continue
        window = item.published_at.replace(minute=item.published_at.minute - item.published_at.minute % 5, second=0)
        z.append(moves.loc[(window, tags[0]), "z"])
        score.append(scorer.score([item.title])["sentiment_score"].iloc[0])
    correlation = np.corrcoef(z, score)[0, 1]
    assert len(z) > 500 and correlation > 0.4


def test_feed_interface():
    feed = SimulatedNewsFeed(COINS)
    skipped = Counter()
    assert feed.fetch(DAY, DAY + timedelta(minutes=5), skipped) == simulated_news(
        COINS, DAY, DAY + timedelta(minutes=5)
    )
    assert not skipped and feed.name == feed.source == "simulated"
    assert simulated_news(COINS, DAY, DAY) == []
