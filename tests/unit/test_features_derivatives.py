"""The derivatives features: against a hand computation, NULL without a perpetual, point in time."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from crypto_assets.features.compute import compute_features
from crypto_assets.features.derivatives_features import derivatives_start
from resources.storage.feature_specs import features_in_family
from tests.unit.test_features_point_in_time import END, STEP, SYMBOLS, TARGETS, derivatives_rows
from tests.unit.test_features_reference import START, WARMUP, random_prices

NAMES = [spec.name for spec in features_in_family("derivatives")]
PER_COIN = [name for name in NAMES if name != "mkt_funding_ann"]


@pytest.fixture(scope="module")
def case() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    prices = random_prices(SYMBOLS, windows=WARMUP + TARGETS, seed=11, gaps=0, flat=False)
    derivatives = derivatives_rows(derivatives_start(START), END)
    return prices, derivatives, compute_features(prices, None, None, START, END, derivatives=derivatives)


def _zscore(values: pd.Series, now: float, n: int, step: int = 1) -> tuple[float, float]:
    """Mean and z-score of ``now`` against the present values among the last ``n``, every ``step``-th (pandas)."""
    samples = values.iloc[::-1].iloc[0:n:step]
    present = samples.dropna()
    if np.isnan(now) or len(present) < len(samples) / 2:
        return np.nan, np.nan
    std = present.std()
    return present.mean(), (now - present.mean()) / std if std > 0 else np.nan


def _expected(derivatives: pd.DataFrame, prices: pd.DataFrame, coin: str, t: datetime) -> dict[str, float]:
    grid = pd.date_range(derivatives_start(START), t, freq="5min")
    rows = derivatives.loc[derivatives["symbol"] == coin].set_index("window_start").reindex(grid)
    now = rows.iloc[-1]
    end = pd.Timestamp(t + STEP)
    ann = rows["funding_rate"] * 8760 / rows["funding_interval_h"]
    spot = prices.loc[(prices["symbol"] == coin) & (prices["window_start"] == pd.Timestamp(t))].iloc[0]
    mean_7d, z_7d = _zscore(ann, ann.iloc[-1], 2016, 12)
    out = {
        "funding_rate": now["funding_rate"],
        "funding_rate_ann": ann.iloc[-1],
        "funding_interval_h": now["funding_interval_h"],
        "funding_hours_to_next": (now["next_funding_time"] - end) / pd.Timedelta(hours=1),
        "funding_pred_minus_current": now["next_funding_rate"] - now["funding_rate"],
        "funding_z_3d": _zscore(ann, ann.iloc[-1], 864, 12)[1],
        "funding_z_7d": z_7d,
        "funding_ann_mean_7d": mean_7d,
        "premium": now["premium"],
        "basis_ann": now["premium"] * 8760 / now["funding_interval_h"],
        "premium_z_1d": _zscore(rows["premium"], now["premium"], 288)[1],
        "log_oi_value": np.log(now["open_interest_value"]),
        "oi_to_volume_24h": now["open_interest_value"] / spot["volume_24h"],
        "oi_to_market_cap": now["open_interest_value"] / spot["market_cap"],
        "oi_age_min": (end - now["open_interest_at"]) / pd.Timedelta(minutes=1),
    }
    for label, n in (("1h", 12), ("4h", 48), ("24h", 288)):
        out[f"oi_change_{label}"] = np.log(now["open_interest"] / rows["open_interest"].iloc[-1 - n])
    return out


def test_values_match_a_hand_computation_for_one_coin(case) -> None:
    prices, derivatives, features = case
    coin = "ETH"
    rows = features.loc[features["symbol"] == coin].set_index("timestamp")
    assert len(rows) == TARGETS
    checked = total = 0
    for t in rows.index:
        expected = _expected(derivatives, prices, coin, t.to_pydatetime())
        got = rows.loc[t]
        for name, value in expected.items():
            total += 1
            if np.isnan(value):
                assert np.isnan(got[name]), (t, name)
            else:
                assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), (t, name)
                checked += 1
    assert checked > 0.9 * total, "most values are set (a few derivatives rows are missing)"


def test_cross_sectional_funding_matches_pandas(case) -> None:
    _, derivatives, features = case
    rows = derivatives.assign(ann=derivatives["funding_rate"] * 8760 / derivatives["funding_interval_h"])
    for t, window in features.groupby("timestamp"):
        at = rows.loc[rows["window_start"] == t].set_index("symbol")
        window = window.set_index("symbol")
        ann = window["funding_rate_ann"]
        pd.testing.assert_series_equal(window["funding_rank"], ann.rank(pct=True), check_names=False)
        weights = at["open_interest_value"].reindex(ann.index)
        both = ann.notna() & weights.notna()
        market = (ann[both] * weights[both]).sum() / weights[both].sum()
        assert window["mkt_funding_ann"].to_numpy() == pytest.approx(np.full(len(window), market), rel=1e-12)
        assert window["funding_vs_mkt"].to_numpy() == pytest.approx((ann - market).to_numpy(), nan_ok=True)


def test_a_coin_without_a_perpetual_gets_null_not_filled(case) -> None:
    _, derivatives, features = case
    assert "XRP" not in set(derivatives["symbol"]), "XRP has no simulated perpetual"
    xrp = features.loc[features["symbol"] == "XRP"]
    assert len(xrp) == TARGETS and xrp[PER_COIN].isna().all().all()
    assert xrp["mkt_funding_ann"].notna().all(), "the market's funding is the same for every symbol"
    prices = case[0]
    without = compute_features(prices, None, None, START, END)
    assert without[NAMES].isna().all().all(), "no derivatives rows: every derivatives feature NULL"


def test_no_prediction_and_thin_history_give_null(case) -> None:
    prices, derivatives, _ = case
    thinned = derivatives.copy()
    eth = thinned["symbol"] == "ETH"
    thinned.loc[eth, "next_funding_rate"] = np.nan  # a backfilled window: no prediction was observed
    when = thinned["window_start"]
    recent = eth & (when >= pd.Timestamp(START - 700 * STEP)) & (when < pd.Timestamp(START))
    thinned = thinned.drop(index=thinned.index[recent][np.arange(recent.sum()) % 5 != 0])  # 80 % of them gone
    features = compute_features(prices, None, None, START, END, derivatives=thinned).set_index("symbol")
    eth_rows = features.loc["ETH"]
    assert eth_rows["funding_pred_minus_current"].isna().all()
    assert eth_rows["funding_z_3d"].isna().all() and eth_rows["premium_z_1d"].isna().all()
    present = eth_rows["funding_rate"].notna().to_numpy()
    assert present.sum() >= TARGETS - 3
    assert not np.isnan(eth_rows["funding_z_7d"].to_numpy()[present]).any(), "a week is still covered enough"
    assert features.loc["BTC", "funding_pred_minus_current"].notna().sum() >= TARGETS - 3


def test_derivatives_rows_after_a_window_never_change_its_values(case) -> None:
    prices, derivatives, features = case
    t = pd.Timestamp(START + 12 * STEP)
    later = derivatives["window_start"] > t
    changed = derivatives.copy()
    rng = np.random.default_rng(5)
    for column in ("premium", "funding_rate", "next_funding_rate", "open_interest", "open_interest_value"):
        changed.loc[later, column] = changed.loc[later, column] * rng.uniform(0.5, 2.0, later.sum())
    again = compute_features(prices, None, None, START, END, derivatives=changed)
    before, after = features["timestamp"] <= t, again["timestamp"] <= t
    pd.testing.assert_frame_equal(
        features.loc[before].reset_index(drop=True), again.loc[after].reset_index(drop=True), check_exact=True
    )
    differs = features.loc[~before, NAMES].to_numpy() != again.loc[~after, NAMES].to_numpy()
    assert differs.any(axis=0).sum() >= len(NAMES) - 3, "the later windows do read the changed rows"
