"""Every live source as a loopback fake, and the environment that points the platform at them
(for ``cli.doctor``'s tests and benchmark)."""

from __future__ import annotations

import os
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from testkit.fakes.derivatives_servers import FakeBinanceUsdm, FakeBybit, perpetual_listing
from testkit.fakes.fake_fred import API_KEY as FRED_KEY
from testkit.fakes.fake_fred import FakeMacroServer
from testkit.fakes.fake_news_servers import FakeNewsServer, FeedSpec, feed_entry, guardian_result, reddit_post
from testkit.fakes.price_servers import FakeBinance, FakeCoinGecko, FakeOkx, default_listing

# Every variable that could point the doctor elsewhere: none leaks in from the machine running it.
CLEARED = (
    "COINGECKO_API_KEY",
    "COINGECKO_PLAN",
    "GUARDIAN_API_KEY",
    "REDDIT_CLIENT_ID",
    "REDDIT_CLIENT_SECRET",
    "FRED_API_KEY",
    "CRYPTO_UNIVERSE_FILE",
    "CRYPTO_EXCHANGES",
    "CRYPTO_DERIVATIVES_EXCHANGES",
    "CRYPTO_EXCHANGE_URLS",
    "CRYPTO_RSS_FEEDS",
    "CRYPTO_REDDIT_SUBREDDITS",
    "CRYPTO_FRED_SERIES",
)


def start_fakes(stack: ExitStack, now: datetime) -> dict[str, Any]:
    """CoinGecko, two exchanges (Binance lists every coin with a pair but SOL; OKX lists SOL and
    XMR), two derivatives exchanges (Binance USD-M lists every simulated perpetual but SOL; Bybit
    lists SOL settled in USDC, and BTC), Guardian/RSS/Reddit and FRED/Yahoo fakes with a little data each."""
    cg = stack.enter_context(FakeCoinGecko())
    binance = stack.enter_context(FakeBinance(listed={s: q for s, q in default_listing().items() if s != "SOL"}))
    okx = stack.enter_context(FakeOkx(listed={"SOL": "USDC", "XMR": "USDT", "BTC": "USDT"}))
    usdm = stack.enter_context(FakeBinanceUsdm(listed={s: q for s, q in perpetual_listing().items() if s != "SOL"}))
    bybit = stack.enter_context(FakeBybit(listed={"SOL": "USDC", "BTC": "USDT"}))
    news = stack.enter_context(FakeNewsServer())
    macro = stack.enter_context(FakeMacroServer())
    news.guardian_results.append(guardian_result(now - timedelta(minutes=3), "Bitcoin rallies", "btc-rallies"))
    news.subreddits["Bitcoin"] = [reddit_post(now - timedelta(minutes=2), "BTC post", "p1")]
    news.ratelimit_remaining, news.ratelimit_reset_s = 99, 420
    news.feeds["coindesk"] = FeedSpec(
        entries=[feed_entry(now - timedelta(minutes=4), "Ether up", "https://c.example/1")]
    )
    news.feeds["br"] = FeedSpec(
        language="pt-BR",
        entries=[
            {
                **feed_entry(None, "Bitcoin sobe", "https://br.example/1"),
                "published_text": "Seg, 24 Set 2018 10:00:00 -0300",
            }
        ],
    )
    for series in ("DGS10", "DFF"):
        macro.add_fred(series, date.today() - timedelta(days=3), "4.10", date.today() - timedelta(days=2))
    macro.add_yahoo("^GSPC", date.today() - timedelta(days=2), 6000.0)
    return {"cg": cg, "binance": binance, "okx": okx, "usdm": usdm, "bybit": bybit, "news": news, "macro": macro}


def doctor_env(fakes: dict[str, Any], home: Path, **overrides: str) -> dict[str, str]:
    """The process environment with every source's key and base URL pointing at the fakes."""
    news, macro = fakes["news"], fakes["macro"]
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(
        {
            "CRYPTO_HOME": str(home),
            "CRYPTO_SOURCE": "live",
            "COINGECKO_BASE_URL": fakes["cg"].url,
            "CRYPTO_EXCHANGES": "binance,okx",
            "CRYPTO_EXCHANGE_URLS": f"binance={fakes['binance'].url},okx={fakes['okx'].url},"
            f"binanceusdm={fakes['usdm'].url},bybit={fakes['bybit'].url}",
            "CRYPTO_DERIVATIVES_EXCHANGES": "binanceusdm,bybit",
            "GUARDIAN_API_KEY": news.guardian_api_key,
            "GUARDIAN_BASE_URL": news.url,
            "REDDIT_CLIENT_ID": news.reddit_client_id,
            "REDDIT_CLIENT_SECRET": news.reddit_client_secret,
            "REDDIT_AUTH_URL": news.url,
            "REDDIT_API_URL": news.url,
            "CRYPTO_REDDIT_SUBREDDITS": "Bitcoin",
            "CRYPTO_RSS_FEEDS": f"{news.feed_url('coindesk')},{news.feed_url('br')}",
            "FRED_API_KEY": FRED_KEY,
            "FRED_BASE_URL": macro.url,
            "CRYPTO_FRED_SERIES": "DGS10,DFF",
            "YAHOO_BASE_URL": macro.url,
        }
    )
    env.update(overrides)
    return env
