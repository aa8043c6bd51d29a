"""Sentiment and macro features: aggregation against a pandas reference, and the as-of rules."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from crypto_assets.features.compute import compute_features
from resources.storage.feature_specs import MACRO_AVAILABILITY_LAG, features_in_family
from tests.unit.test_features_point_in_time import END, STEP, SYMBOLS, random_sentiment
from tests.unit.test_features_reference import START, WARMUP, random_prices


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return random_prices(SYMBOLS, windows=WARMUP + 30, seed=2, gaps=0, flat=False)


def test_sentiment_aggregates_match_a_pandas_reference(prices) -> None:
    sentiment = random_sentiment(seed=8)
    features = compute_features(prices, sentiment, None, START, END).set_index(["symbol", "timestamp"])
    # one vote per item: the mean over the models that scored it
    items = sentiment.assign(
        bull=sentiment["label"].str.lower().eq("bullish").astype(float),
        bear=sentiment["label"].str.lower().eq("bearish").astype(float),
    )
    items = items.groupby(["symbol", "window_start", "item_id"])[
        ["sentiment_score", "bull", "bear", "confidence"]
    ].mean()
    items = items.reset_index()
    checked = 0
    for (symbol, t), row in features.iterrows():
        for label, n in (("1h", 12), ("4h", 48), ("24h", 288)):
            recent = items.loc[
                (items["symbol"] == symbol) & (items["window_start"] <= t) & (items["window_start"] > t - n * STEP)
            ]
            assert row[f"sent_count_{label}"] == len(recent)
            if len(recent):
                assert row[f"sent_mean_{label}"] == pytest.approx(recent["sentiment_score"].mean(), rel=1e-12)
                assert row[f"sent_bull_share_{label}"] == pytest.approx(recent["bull"].mean(), rel=1e-12)
                assert row[f"sent_bear_share_{label}"] == pytest.approx(recent["bear"].mean(), rel=1e-12)
                checked += 1
            else:
                assert np.isnan(row[f"sent_mean_{label}"]) and np.isnan(row[f"sent_bull_share_{label}"])
        day = items.loc[
            (items["symbol"] == symbol) & (items["window_start"] <= t) & (items["window_start"] > t - 288 * STEP)
        ]
        if len(day):
            age = ((t - day["window_start"]) / STEP).to_numpy(float)
            weight = 0.5 ** (age / 72)
            assert row["sent_decayed_6h"] == pytest.approx(
                (weight * day["sentiment_score"]).sum() / weight.sum(), rel=1e-12
            )
            assert row["sent_conf_mean_24h"] == pytest.approx(day["confidence"].mean(), rel=1e-12)
    assert checked > 100
    # market-wide: pooled over the symbols with a row (ADA has sentiment but no prices: not counted)
    t = pd.Timestamp(END - STEP)
    pool = items.loc[
        items["symbol"].isin(SYMBOLS) & (items["window_start"] <= t) & (items["window_start"] > t - 288 * STEP)
    ]
    assert features.loc[("BTC", t), "mkt_sent_mean_24h"] == pytest.approx(pool["sentiment_score"].mean(), rel=1e-12)


def test_no_sentiment_gives_zero_counts_and_null_scores(prices) -> None:
    features = compute_features(prices, None, None, START, END)
    for spec in features_in_family("sentiment"):
        values = features[spec.name]
        if spec.name.startswith("sent_count_") and spec.name != "sent_count_surge_1h":
            assert (values == 0).all(), spec.name
        else:
            assert values.isna().all(), spec.name


def test_a_sentiment_model_filter_is_the_caller_s_choice(prices) -> None:
    sentiment = random_sentiment(seed=8)
    only_lexicon = compute_features(prices, sentiment.loc[sentiment["model"] == "lexicon"], None, START, END)
    both = compute_features(prices, sentiment, None, START, END)
    assert (only_lexicon["sent_count_24h"] == both["sent_count_24h"]).all(), "an item counts once across models"
    assert not np.allclose(only_lexicon["sent_mean_24h"].fillna(0), both["sent_mean_24h"].fillna(0))


def _macro(rows: list[tuple[str, date, float | None, date]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["series_id", "observation_date", "value", "realtime_start"])


def test_macro_value_is_used_only_30_hours_after_its_publication_day(prices) -> None:
    published = START.date() - timedelta(days=1)  # known from START - 1 day + 30 h = START + 6 h
    macro = _macro(
        [
            ("DGS10", published - timedelta(days=1), 4.0, published - timedelta(days=1)),
            ("DGS10", published, 4.5, published),
        ]
    )
    start = START.replace(hour=0)
    end = start + timedelta(hours=12)
    longer = random_prices(SYMBOLS, windows=WARMUP + 144, seed=2, gaps=0, flat=False)
    features = compute_features(longer, None, macro, start, end)
    btc = features.loc[features["symbol"] == "BTC"].set_index("timestamp")
    known_at = pd.Timestamp(published) + MACRO_AVAILABILITY_LAG
    window_end = btc.index + pd.Timedelta(STEP)
    assert (btc.loc[window_end < known_at, "macro_dgs10"] == 4.0).all()
    assert (btc.loc[window_end >= known_at, "macro_dgs10"] == 4.5).all()
    np.testing.assert_allclose(btc.loc[window_end >= known_at, "macro_dgs10_chg"], 0.5)
    assert (window_end < known_at).any() and (window_end >= known_at).any()
    assert features.groupby("timestamp")["macro_dgs10"].nunique().max() == 1, "the same for every symbol"


def test_macro_missing_values_stale_series_and_cpi_year_on_year(prices) -> None:
    d = START.date()
    rows = [
        ("DGS10", d - timedelta(days=3), 4.0, d - timedelta(days=3)),
        ("DGS10", d - timedelta(days=2), None, d - timedelta(days=2)),  # FRED's "." : keep the last value
        ("DFF", d - timedelta(days=30), 5.0, d - timedelta(days=30)),  # older than its 10 days: NULL
        ("^VIX", d - timedelta(days=4), 20.0, d - timedelta(days=4)),
        ("^VIX", d - timedelta(days=3), 18.0, d - timedelta(days=3)),
    ]
    for month in range(-13, 0):
        observed = (pd.Timestamp(d) + pd.DateOffset(months=month)).replace(day=1).date()
        rows.append(("CPIAUCSL", observed, 300.0 + month, observed + timedelta(days=20)))
    features = compute_features(prices, None, _macro(rows), START, END)
    row = features.iloc[0]
    assert row["macro_dgs10"] == 4.0
    assert np.isnan(row["macro_dff"]) and np.isnan(row["macro_term_spread"])
    assert row["macro_vix"] == 18.0 and row["macro_vix_chg"] == pytest.approx(-2.0)
    # latest: last month (299, published on the 21st); a year before it: 287
    assert row["macro_cpi_yoy"] == pytest.approx((299.0 / 287.0 - 1) * 100)
    assert row["macro_cpi_mom"] == pytest.approx(299.0 / 298.0 - 1)
    assert np.isnan(row["macro_sp500"]), "a series with no data is NULL"


def test_every_macro_feature_is_computed_from_simulated_series(prices) -> None:
    from resources.sources.macro_sources import YAHOO_TICKERS, simulated_macro_frame

    macro = simulated_macro_frame(
        ["DGS10", "DFF", "DTWEXBGS", "CPIAUCSL", *YAHOO_TICKERS],
        START.date() - timedelta(days=500),
        START.date() + timedelta(days=1),
        START.date(),
    )
    features = compute_features(prices, None, macro, START, END)
    for spec in features_in_family("macro"):
        assert features[spec.name].notna().all(), spec.name


def test_calendar_features(prices) -> None:
    features = compute_features(prices, None, None, datetime(2026, 1, 5, 2), datetime(2026, 1, 5, 2, 5))
    row = features.iloc[0]  # Monday 02:00
    assert row["hour_sin"] == pytest.approx(np.sin(2 * np.pi / 12)) and row["hour_cos"] == pytest.approx(
        np.cos(2 * np.pi / 12)
    )
    assert row["dow_sin"] == pytest.approx(np.sin(2 * np.pi * (2 / 24) / 7))


def test_price_falls_back_to_the_snapshot_where_the_bar_has_no_close(prices) -> None:
    no_pair = prices.copy()
    usdt = no_pair["symbol"] == "XRP"
    for column in ("open", "high", "low", "close", "volume"):
        no_pair.loc[usdt, column] = np.nan
    features = compute_features(no_pair, None, None, START, END).set_index("symbol").loc["XRP"]
    assert (
        features["price"]
        == no_pair.loc[usdt & (no_pair["window_start"] >= pd.Timestamp(START)), "current_price"].to_numpy()
    ).all()
    assert (features["price_from_snapshot"] == 1.0).all() and (features["bars_missing"] == 0).all()
    assert features["ret_1h"].notna().all() and features["rsi_14"].notna().all(), "price features from the snapshot"
    assert features["kmid"].isna().all() and features["atr_14"].isna().all() and features["vma_5"].isna().all(), (
        "bar features stay NULL: nothing is invented"
    )


def test_no_prices_give_no_rows() -> None:
    from crypto_assets.features.compute import PRICE_INPUT_COLUMNS

    empty = compute_features(pd.DataFrame(columns=list(PRICE_INPUT_COLUMNS)), None, None, START, END)
    assert empty.empty and list(empty.columns)[:3] == ["symbol", "timestamp", "price"]
