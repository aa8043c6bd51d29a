"""The pure parts of live prices: bar-interval checks, ccxt URL overrides, history span planning, error scopes."""

from datetime import datetime, timedelta

import ccxt
import pytest

from resources.config.settings import SettingsError, load_settings
from resources.sources.exchange import (
    BAR_MS,
    DAY_MS,
    HOUR_MS,
    IntervalError,
    _point_at,
    check_interval,
    check_request,
    check_series,
)
from resources.sources.exchange_errors import Scope, classify
from resources.sources.market_history import MAX_SPAN, plan_spans
from resources.sources.venues import venue_facts

SINCE = 1_795_996_800_000  # 2026-11-30 00:00 UTC


def _bars(times):
    return [[t, 1.0, 1.0, 1.0, 1.0, 1.0] for t in times]


def test_5_minute_pages_pass_even_with_gaps():
    check_interval("okx", "BTC/USDT", _bars([SINCE, SINCE + BAR_MS, SINCE + 7 * BAR_MS]), None, SINCE, 100)
    check_interval("coinbaseexchange", "BTC/USD", _bars([SINCE, SINCE + 100 * BAR_MS]), None, SINCE, 100)  # end in
    # Genuine 5-minute series with missing bars: one gap that is not a whole number of hours suffices.
    check_series("okx", "BTC/USDT", [SINCE, SINCE + HOUR_MS, SINCE + HOUR_MS + BAR_MS], 288)
    check_series("okx", "BTC/USDT", [SINCE + 7 * BAR_MS, SINCE + 7 * BAR_MS + 3 * HOUR_MS + 10 * BAR_MS], 288)
    check_series("kraken", "BTC/USD", [SINCE + 12 * BAR_MS], 288)  # a lone bar off midnight: nothing to judge


def test_bars_must_be_asked_for_with_the_venues_5_minute_parameter():
    check_request("okx", "BTC/USDT", "http://x/api/v5/market/candles?instId=BTC-USDT&bar=5m&limit=100")
    check_request("kraken", "BTC/USD", "http://x/0/public/OHLC?pair=XXBTZUSD&interval=5&since=1")
    with pytest.raises(IntervalError, match="granularity=3600, not granularity=300"):
        check_request("coinbaseexchange", "BTC/USD", "http://x/products/BTC-USD/candles?granularity=3600")


@pytest.mark.parametrize(
    "times, raw, message",
    [
        ([SINCE + 60_000], None, "not on the 5-minute grid"),
        ([SINCE, SINCE + 2 * DAY_MS], None, "not 5-minute bars"),  # beyond what 288 five-minute bars reach
        ([SINCE], [[SINCE, "1", "1", "1", "1", "1", SINCE + DAY_MS - 1]], "a 1440-minute bar"),
    ],
)
def test_pages_of_other_intervals_are_rejected(times, raw, message):
    with pytest.raises(IntervalError, match=message):
        check_interval("binance", "BTC/USDT", _bars(times), raw, SINCE, 288)


def test_series_of_coarser_bars_are_rejected():
    with pytest.raises(IntervalError, match="only bars opening at midnight"):
        check_series("okx", "BTC/USDT", [SINCE], 288)
    with pytest.raises(IntervalError, match="hourly or coarser bars"):
        check_series("okx", "BTC/USDT", [SINCE + k * HOUR_MS for k in range(3)], 100)
    with pytest.raises(IntervalError, match="hourly or coarser bars"):  # two bars an hour apart in 13 windows
        check_series("okx", "BTC/USDT", [SINCE, SINCE + HOUR_MS], 13)
    check_series("okx", "BTC/USDT", [SINCE], 12)  # one bar in an hour's range: nothing to judge


def test_ccxt_urls_point_at_the_override_with_their_paths_kept():
    urls = {"public": "https://api.binance.com/api/v3", "rest": "https://{hostname}", "nested": {"x": "https://a.b/c"}}
    assert _point_at(urls, "http://127.0.0.1:9/") == {
        "public": "http://127.0.0.1:9/api/v3",
        "rest": "http://127.0.0.1:9",
        "nested": {"x": "http://127.0.0.1:9/c"},
    }


NOW = datetime(2026, 12, 1, 12, 0)
HORIZON = datetime(2026, 11, 1)


def test_history_spans_reach_the_horizon_and_now_once_then_only_the_uncached_tail():
    first = plan_spans(datetime(2026, 11, 19, 11), datetime(2026, 11, 21), None, HORIZON, NOW)
    assert first == [(HORIZON, NOW)]
    assert plan_spans(datetime(2026, 11, 25), datetime(2026, 11, 26), (HORIZON, NOW), HORIZON, NOW) == []
    later = NOW + timedelta(hours=3)
    assert plan_spans(NOW, NOW + timedelta(hours=2), (HORIZON, NOW), HORIZON, later) == [(NOW, later)]


def test_history_spans_before_the_cache_and_longer_than_90_days_are_split():
    spans = plan_spans(datetime(2026, 1, 1), datetime(2026, 2, 1), (HORIZON, NOW), None, NOW)
    assert spans[0][0] == datetime(2026, 1, 1) and spans[-1][1] == HORIZON
    assert all(b - a <= MAX_SPAN for a, b in spans) and len(spans) == 4


def test_exchange_settings():
    settings = load_settings(
        {
            "CRYPTO_EXCHANGES": "OKX, kraken",
            "CRYPTO_EXCHANGE_URLS": "okx=http://127.0.0.1:1/",
            "CRYPTO_SNAPSHOT_MAX_AGE_S": "120",
            "COINGECKO_CALLS_PER_MINUTE": "25",
        }
    )
    assert settings.exchanges == ("okx", "kraken") and settings.exchange_urls == (("okx", "http://127.0.0.1:1"),)
    assert settings.snapshot_max_age_s == 120 and settings.coingecko_calls_per_minute == 25
    assert load_settings({}).exchanges == ("binance", "okx", "coinbaseexchange", "kraken")
    with pytest.raises(SettingsError, match="CRYPTO_EXCHANGE_URLS"):
        load_settings({"CRYPTO_EXCHANGE_URLS": "okx:127.0.0.1"})


def test_ccxts_rate_limiter_is_on_with_its_own_spacing_unless_told():
    from resources.sources.exchange import Venue

    assert Venue("okx").client.enableRateLimit and Venue("okx").client.rateLimit == 110
    assert Venue("binance", rate_limit_ms=5).client.rateLimit == 5
    with pytest.raises(Exception, match="not a ccxt id"):
        Venue("not-an-exchange")


@pytest.mark.parametrize(
    ("exc", "status", "body", "per_pair", "scope"),
    [
        # a rate-limit answer whose JSON body ccxt reads as a plain ExchangeError is still retried
        (ccxt.ExchangeError("okx {}"), 429, '{"status": {"error_code": 429}}', False, Scope.TRANSIENT),
        (ccxt.ExchangeError("bybit {}"), 500, '{"error": "internal"}', True, Scope.TRANSIENT),
        (
            ccxt.BadRequest("bybit"),
            200,
            '{"retCode": 10001, "retMsg": "params error: symbol invalid"}',
            True,
            Scope.PAIR,
        ),
        (
            ccxt.BadRequest("bybit"),
            200,
            '{"retCode": 10001, "retMsg": "params error: symbol invalid"}',
            False,
            Scope.FINAL,
        ),
        (ccxt.BadSymbol("binanceusdm"), 400, '{"code": -1121, "msg": "Invalid symbol."}', True, Scope.PAIR),
        (ccxt.ExchangeNotAvailable("binanceusdm"), 451, '{"code": 0, "msg": "restricted"}', True, Scope.REFUSED),
    ],
)
def test_failed_answers_are_classified_once_by_scope(exc, status, body, per_pair, scope):
    venue = "bybit" if "bybit" in str(exc) else "okx" if "okx" in str(exc) else "binanceusdm"
    assert classify(exc, status, body, venue_facts(venue), per_pair=per_pair) is scope
