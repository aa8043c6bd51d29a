"""Point-in-time correctness and reproducibility of the features.

* Changing or deleting price, derivatives, sentiment or macro data after a window's end never
  changes that window's features (hypothesis chooses the window and the change).
* A window's features are bit-identical whether it is computed alone, as part of a backfill
  range (with any chunking), or recomputed later with more data in the tables.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto_assets.features.compute import compute_features
from crypto_assets.features.derivatives_features import derivatives_start
from resources.config.universe import load_universe
from resources.sources.simulated import simulated_derivatives_frame
from resources.storage.feature_specs import MACRO_AVAILABILITY_LAG
from tests.unit.test_features_reference import START, WARMUP, random_prices

STEP = timedelta(minutes=5)
TARGETS = 30
END = START + TARGETS * STEP
SYMBOLS = ("BTC", "ETH", "SOL", "XRP", "DOGE")


def random_sentiment(seed: int = 3, first: datetime = START - WARMUP * STEP, last: datetime = END) -> pd.DataFrame:
    """``sentiment_data`` rows: items about random symbols, some scored by two models."""
    rng = np.random.default_rng(seed)
    n = 400
    windows = (last - first) // STEP
    starts = [first + int(k) * STEP for k in rng.integers(0, windows, n)]
    labels = rng.choice(["bearish", "neutral", "bullish", "Bullish"], n)
    frame = pd.DataFrame(
        {
            "item_id": [f"item{i}" for i in range(n)],
            "symbol": rng.choice(SYMBOLS + ("ADA",), n),
            "model": "lexicon",
            "window_start": starts,
            "sentiment_score": rng.uniform(-1, 1, n),
            "confidence": rng.uniform(0, 1, n),
            "label": labels,
            "source": "rss",
            "analyzed_at": [s + timedelta(minutes=7) for s in starts],
        }
    )
    second = frame.sample(frac=0.3, random_state=seed).assign(
        model="cryptobert", sentiment_score=lambda f: -f["sentiment_score"] / 2, label="bearish"
    )
    return pd.concat([frame, second], ignore_index=True)


def derivatives_rows(first: datetime, last: datetime, seed: int = 13) -> pd.DataFrame:
    """Simulated ``derivatives_data`` rows of SYMBOLS (XRP has no perpetual), a few rows missing, and
    no predicted rate in the older half (as in a backfill)."""
    coins = [c for c in load_universe() if c.symbol in SYMBOLS]
    frame = simulated_derivatives_frame(coins, first, last)
    rng = np.random.default_rng(seed)
    frame = frame.loc[rng.random(len(frame)) > 0.03].reset_index(drop=True)
    older = frame["window_start"] < pd.Timestamp(START - 500 * STEP)
    frame.loc[older, "next_funding_rate"] = np.nan
    return frame


DERIVATIVE_VALUES = ("premium", "funding_rate", "next_funding_rate", "open_interest", "open_interest_value")


def random_macro() -> pd.DataFrame:
    """``macro_indicators`` rows around the test range, published one day after observation."""
    rows = []
    for series_id, level in (("DGS10", 4.2), ("DFF", 4.3), ("^GSPC", 5000.0), ("^VIX", 15.0)):
        for day in range(-20, 3):
            observed = (START + timedelta(days=day)).date()
            rows.append(
                {
                    "series_id": series_id,
                    "observation_date": observed,
                    "value": level + 0.01 * day,
                    "realtime_start": observed + timedelta(days=1),
                }
            )
    for month in range(-14, 1):
        observed = (pd.Timestamp(START) + pd.DateOffset(months=month)).replace(day=1).date()
        rows.append(
            {
                "series_id": "CPIAUCSL",
                "observation_date": observed,
                "value": 300 + month,
                "realtime_start": observed + timedelta(days=40),
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return (
        random_prices(SYMBOLS, windows=WARMUP + TARGETS, seed=11, gaps=4, flat=False),
        random_sentiment(),
        random_macro(),
        derivatives_rows(derivatives_start(START), END),
    )


def _rows_until(frame: pd.DataFrame, t: datetime) -> pd.DataFrame:
    return frame.loc[frame["timestamp"] <= pd.Timestamp(t)].reset_index(drop=True)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.integers(0, TARGETS - 2),
    change=st.sampled_from(
        ["scale", "delete", "new_symbol", "sentiment", "sentiment_delete", "macro", "derivatives", "derivatives_delete"]
    ),
    seed=st.integers(0, 2**16),
)
def test_data_after_a_window_never_changes_its_features(data, target: int, change: str, seed: int) -> None:
    prices, sentiment, macro, derivatives = data
    t = START + target * STEP
    rng = np.random.default_rng(seed)
    later_prices = prices["window_start"] > pd.Timestamp(t)
    later_sentiment = sentiment["window_start"] > pd.Timestamp(t)
    later_derivatives = derivatives["window_start"] > pd.Timestamp(t)
    prices2, sentiment2, macro2, derivatives2 = prices.copy(), sentiment.copy(), macro.copy(), derivatives.copy()
    if change == "scale":
        factor = rng.uniform(0.5, 2.0, later_prices.sum())
        for column in ("open", "high", "low", "close", "current_price", "volume", "market_cap"):
            prices2.loc[later_prices, column] = prices2.loc[later_prices, column] * factor
    elif change == "delete":
        drop = prices2.index[later_prices][rng.random(later_prices.sum()) < 0.5]
        prices2 = prices2.drop(index=drop)
    elif change == "new_symbol":
        extra = prices2.loc[later_prices & (prices2["symbol"] == "ETH")].assign(symbol="NEW", coin_id="new")
        prices2 = pd.concat([prices2, extra], ignore_index=True)
    elif change == "sentiment":
        sentiment2.loc[later_sentiment, "sentiment_score"] = rng.uniform(-1, 1, later_sentiment.sum())
        sentiment2.loc[later_sentiment, "label"] = "bullish"
    elif change == "sentiment_delete":
        sentiment2 = sentiment2.loc[~later_sentiment]
    elif change == "derivatives":
        for column in DERIVATIVE_VALUES:
            factor = rng.uniform(-3.0, 3.0, later_derivatives.sum())
            derivatives2.loc[later_derivatives, column] = derivatives2.loc[later_derivatives, column] * factor
        derivatives2.loc[later_derivatives, "funding_interval_h"] = 1.0
        derivatives2.loc[later_derivatives, "funding_time"] = pd.Timestamp(t)
    elif change == "derivatives_delete":
        drop = derivatives2.index[later_derivatives][rng.random(later_derivatives.sum()) < 0.5]
        derivatives2 = derivatives2.drop(index=drop)
    else:
        window_end = pd.Timestamp(t + STEP)
        available = pd.to_datetime(macro2["realtime_start"]) + MACRO_AVAILABILITY_LAG
        macro2.loc[available > window_end, "value"] = rng.uniform(0, 10, (available > window_end).sum())
        macro2 = pd.concat(
            [
                macro2,
                pd.DataFrame(
                    [
                        {
                            "series_id": "DGS10",
                            "observation_date": (t + timedelta(days=1)).date(),
                            "value": 99.0,
                            "realtime_start": (window_end + timedelta(days=1)).date(),
                        }
                    ]
                ),
            ],
            ignore_index=True,
        )
    before = compute_features(prices, sentiment, macro, START, END, derivatives=derivatives)
    after = compute_features(prices2, sentiment2, macro2, START, END, derivatives=derivatives2)
    pd.testing.assert_frame_equal(_rows_until(before, t), _rows_until(after, t), check_exact=True)


def test_alone_backfill_and_chunking_give_identical_rows(data) -> None:
    prices, sentiment, macro, derivatives = data
    full = compute_features(prices, sentiment, macro, START, END, derivatives=derivatives)
    assert full["funding_z_7d"].notna().any() and full["oi_change_24h"].notna().any()
    rechunked = compute_features(prices, sentiment, macro, START, END, derivatives=derivatives, chunk_windows=7)
    pd.testing.assert_frame_equal(full, rechunked, check_exact=True)
    middle = compute_features(prices, sentiment, macro, START + 5 * STEP, START + 17 * STEP, derivatives=derivatives)
    expected = full.loc[
        (full["timestamp"] >= pd.Timestamp(START + 5 * STEP)) & (full["timestamp"] < pd.Timestamp(START + 17 * STEP))
    ].reset_index(drop=True)
    pd.testing.assert_frame_equal(middle, expected, check_exact=True)
    for k in (0, 9, TARGETS - 1):
        t = START + k * STEP
        # alone: only the rows the asset would read for this window
        alone_prices = prices.loc[
            (prices["window_start"] >= pd.Timestamp(t - WARMUP * STEP)) & (prices["window_start"] <= pd.Timestamp(t))
        ]
        alone_derivatives = derivatives.loc[
            (derivatives["window_start"] >= pd.Timestamp(derivatives_start(t)))
            & (derivatives["window_start"] <= pd.Timestamp(t))
        ]
        alone = compute_features(alone_prices, sentiment, macro, t, t + STEP, derivatives=alone_derivatives)
        pd.testing.assert_frame_equal(
            alone, full.loc[full["timestamp"] == pd.Timestamp(t)].reset_index(drop=True), check_exact=True
        )


def test_recomputing_later_with_more_history_gives_identical_rows(data) -> None:
    prices, sentiment, macro, derivatives = data
    first = compute_features(prices, sentiment, macro, START, END, derivatives=derivatives)
    # later: the tables have grown (a day more of everything), and older history too
    grown = pd.concat(
        [
            random_prices(
                SYMBOLS,
                windows=WARMUP * 2 + TARGETS + 100,
                seed=99,
                gaps=0,
                flat=False,
                first=START - 2 * WARMUP * STEP,
            ).loc[
                lambda f: (
                    (f["window_start"] < pd.Timestamp(START - WARMUP * STEP)) | (f["window_start"] >= pd.Timestamp(END))
                )
            ],
            prices,
        ],
        ignore_index=True,
    )
    later_sentiment = pd.concat(
        [
            sentiment,
            random_sentiment(seed=5, first=END, last=END + 100 * STEP).assign(item_id=lambda f: "late" + f["item_id"]),
        ],
        ignore_index=True,
    )
    outside = derivatives_rows(derivatives_start(START) - 100 * STEP, END + 100 * STEP, seed=17)
    grown_derivatives = pd.concat(
        [
            outside.loc[
                (outside["window_start"] < pd.Timestamp(derivatives_start(START)))
                | (outside["window_start"] >= pd.Timestamp(END))
            ],
            derivatives,
        ],
        ignore_index=True,
    )
    again = compute_features(grown, later_sentiment, macro, START, END, derivatives=grown_derivatives)
    pd.testing.assert_frame_equal(first, again, check_exact=True)


def test_rows_exist_for_symbols_with_history_even_when_their_bar_is_missing(data) -> None:
    prices, sentiment, macro, _ = data
    t = START + 3 * STEP
    gone = prices.loc[~((prices["symbol"] == "SOL") & (prices["window_start"] == pd.Timestamp(t)))]
    features = compute_features(gone, sentiment, macro, START, END)
    row = features.loc[(features["symbol"] == "SOL") & (features["timestamp"] == pd.Timestamp(t))]
    assert len(row) == 1
    assert np.isnan(row["price"].iloc[0]) and row["bars_missing"].iloc[0] >= 1
    # a symbol with no bar in a window's whole lookback gets no row there
    late = prices.loc[(prices["symbol"] == "ETH") & (prices["window_start"] >= pd.Timestamp(START + 10 * STEP))]
    features = compute_features(pd.concat([prices.loc[prices["symbol"] != "ETH"], late]), sentiment, macro, START, END)
    eth = features.loc[features["symbol"] == "ETH", "timestamp"]
    assert eth.min() == late["window_start"].min() >= pd.Timestamp(START + 10 * STEP)
    assert features["symbol"].nunique() == len(SYMBOLS)
