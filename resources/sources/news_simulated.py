"""Simulated news: deterministic headlines and posts about the universe's coins, offline.

Each 5-minute window gets a handful of items (seeded from the window's start, so a window always
gets the same ones). Their coins are drawn by market size, and their tone follows the simulated
market (:mod:`resources.sources.simulated`): a coin that rose over the hour before the window gets mostly
bullish news, one that fell mostly bearish, with neutral and contrary items mixed in. The tone
uses only prices up to the window's start, so sentiment lags price as real news does, and the
features built on it carry a real, point-in-time-correct signal.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from resources.config.universe import Coin
from resources.sources.news_common import RawItem
from resources.sources.simulated import simulated_price_frame
from resources.storage.windows import WINDOW, window_starts

SOURCE = "simulated"
BASE_URL = "https://news.simulated.invalid"
STABLECOINS = frozenset({"USDT", "USDC", "DAI"})
LOOKBACK = timedelta(hours=1)
NEUTRAL_SHARE = 0.25
TONE_SLOPE = 2.0

# Templates by tone. "move" titles state the hour's change and are used when the tone agrees with
# its direction; "view" titles are opinions without numbers (a bullish take on a falling coin).
NEWS_TITLES = {
    ("bullish", "move"): (
        "{coin} climbs {pct} as buyers return",
        "{coin} rallies {pct} in an hour; traders eye new highs",
        "{coin} surges as inflows pick up, up {pct}",
        "Bullish momentum builds for {coin} after a {pct} gain",
        "{coin} breaks out, gaining {pct} on strong demand",
    ),
    ("bullish", "view"): (
        "Analysts see {coin} rebounding as accumulation grows",
        "Bullish: funds keep buying {coin}",
    ),
    ("bearish", "move"): (
        "{coin} slides {pct} as sellers take control",
        "{coin} tumbles {pct} as liquidations mount",
        "{coin} plunges {pct} in a sharp sell-off",
        "Bearish pressure on {coin} after a {pct} drop",
        "{coin} sinks {pct} as traders flee risk",
    ),
    ("bearish", "view"): (
        "Traders warn {coin} could slump further",
        "Bearish: outflows from {coin} funds continue",
    ),
    ("neutral", "view"): (
        "{coin} holds near {price}",
        "{coin} trades sideways around {price}",
        "{coin} little changed at {price} as volumes thin",
        "What next for {coin}? Price hovers near {price}",
    ),
}
POST_TITLES = {
    ("bullish", "move"): (
        "{tag} looking strong, up {pct} this hour. Holding.",
        "{tag} breakout is real, up {pct}",
        "{tag} to the moon? Great move today, up {pct}",
    ),
    ("bullish", "view"): (
        "Just added more {tag}, feeling bullish",
        "Loving {tag} here, great project",
    ),
    ("bearish", "move"): (
        "{tag} dumping again, down {pct}. Getting rekt.",
        "{tag} crash: down {pct}, anyone else bleeding here?",
    ),
    ("bearish", "view"): (
        "Sold my {tag}, this chart looks terrible",
        "{tag} looks weak, worried about a crash",
    ),
    ("neutral", "view"): (
        "{tag} at {price}, thoughts?",
        "Is {tag} a buy at {price}?",
        "Daily discussion: {tag} around {price}",
    ),
}
SECOND_COIN = {
    "bullish": "Meanwhile {coin} gained {pct} over the same hour.",
    "bearish": "Meanwhile {coin} fell {pct} over the same hour.",
    "neutral": "Meanwhile {coin} was flat around {price}.",
}
MARKET_TITLES = (
    "Crypto markets await the Fed's next move",
    "Regulators publish new guidance for digital asset custodians",
    "Exchange volumes ease as traders wait for direction",
)


def _price(value: float) -> str:
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.4g}"


def _pct(log_return: float) -> str:
    return f"{abs(math.expm1(log_return)) * 100:.1f}%"


def _tone(rng: random.Random, z: float) -> str:
    p_up = 1.0 / (1.0 + math.exp(-TONE_SLOPE * z))
    u = rng.random()
    if u < NEUTRAL_SHARE:
        return "neutral"
    return "bullish" if rng.random() < p_up else "bearish"


def market_moves(coins: Sequence[Coin], start: datetime, end: datetime) -> pd.DataFrame:
    """Per (window, symbol) of [start, end): the price at the window's start, the log return over
    the hour before it, and that return standardised across coins (``z``)."""
    frame = simulated_price_frame(coins, start - LOOKBACK, end)
    opens = frame.pivot(index="window_start", columns="symbol", values="open")
    lags = int(LOOKBACK / WINDOW)
    log_open = opens.transform(np.log)
    ret = (log_open - log_open.shift(lags)).loc[pd.Timestamp(start) :]
    risky = [c for c in ret.columns if c not in STABLECOINS]
    rms = np.sqrt((ret[risky] ** 2).mean(axis=1)).replace(0.0, np.nan)
    z = ret.div(rms, axis=0).fillna(0.0)
    out = pd.DataFrame(
        {
            "price": opens.loc[pd.Timestamp(start) :].stack(),
            "log_return": ret.stack(),
            "z": z.stack(),
        }
    )
    return out


def simulated_news(
    coins: Sequence[Coin], start: datetime, end: datetime, min_items: int = 2, max_items: int = 6
) -> list[RawItem]:
    """The simulated items published in [start, end) (deterministic for each window)."""
    if not coins or end <= start:
        return []
    moves = market_moves(coins, start, end).to_dict("index")  # (window, symbol) -> price, log_return, z
    symbols = [c.symbol for c in coins]
    by_symbol = {c.symbol: c for c in coins}
    weights = [math.sqrt(c.ref_market_cap_usd or 1e9) * (0.1 if c.symbol in STABLECOINS else 1.0) for c in coins]
    items: list[RawItem] = []
    for window in window_starts(start, end):
        rng = random.Random(f"simulated-news:v1:{window:%Y-%m-%dT%H:%M}")
        for index in range(rng.randint(min_items, max_items)):
            published = window + timedelta(seconds=rng.randrange(0, int(WINDOW.total_seconds())))
            collected = published + timedelta(seconds=rng.randint(5, 90))
            kind = "post" if rng.random() < 0.4 else "news"
            if rng.random() < 0.08:
                title = rng.choice(MARKET_TITLES)
                url = f"{BASE_URL}/{kind}/{window:%Y/%m/%d/%H%M}/{index}"
                items.append(RawItem(SOURCE, url, published, title, "", url, collected))
                continue
            picked = rng.choices(symbols, weights=weights, k=2)
            first = by_symbol[picked[0]]
            move = moves[(pd.Timestamp(window), first.symbol)]
            tone = _tone(rng, float(move["z"]))
            log_return = float(move["log_return"])
            agrees = (tone == "bullish" and log_return > 0) or (tone == "bearish" and log_return < 0)
            fill = {
                "coin": f"{first.name} ({first.symbol})",
                "tag": f"${first.symbol}",
                "pct": _pct(log_return),
                "price": _price(float(move["price"])),
            }
            templates = POST_TITLES if kind == "post" else NEWS_TITLES
            title = rng.choice(templates[(tone, "move" if agrees else "view")]).format(**fill)
            if agrees:
                direction = "up" if log_return > 0 else "down"
                summary = f"It changed hands at {fill['price']}, {direction} {fill['pct']} over the past hour."
            else:
                summary = f"It changed hands at {fill['price']}."
            second = by_symbol[picked[1]]
            if kind == "news" and second.symbol != first.symbol and rng.random() < 0.3:
                move2 = moves[(pd.Timestamp(window), second.symbol)]
                change = float(move2["log_return"])
                direction = "neutral" if abs(change) < 0.002 else ("bullish" if change > 0 else "bearish")
                summary += " " + SECOND_COIN[direction].format(
                    coin=f"{second.name} ({second.symbol})",
                    pct=_pct(float(move2["log_return"])),
                    price=_price(float(move2["price"])),
                )
            url = f"{BASE_URL}/{kind}/{window:%Y/%m/%d/%H%M}/{index}"
            items.append(RawItem(SOURCE, url, published, title, summary, url, collected))
    return items


class SimulatedNewsFeed:
    """The offline default source (``CRYPTO_SOURCE=simulated``)."""

    source = SOURCE
    name = SOURCE

    def __init__(self, coins: Sequence[Coin]):
        self.coins = tuple(coins)

    def fetch(self, start: datetime, end: datetime, skipped: Counter) -> list[RawItem]:
        """Every simulated item published in [start, end)."""
        return simulated_news(self.coins, start, end)
