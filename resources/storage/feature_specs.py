"""The feature catalog: one :class:`FeatureSpec` a column of ``ml_features_materialized``.

The catalog is the single source of truth for the feature table: :mod:`resources.storage.schema`
declares the table with exactly these columns, ``docs/features.md`` is generated from it
(``python -m crypto_assets.features.docs``), and the API serves it. Pure data, no Dagster and no
SQLAlchemy: adding a feature is one ``add(...)`` below (and its computation in
``crypto_assets/features/compute.py``).

Conventions every feature follows (``docs/features.md`` repeats them for notebook users):

* A row is one (symbol, 5-minute window ``[t, t+5m)``); ``timestamp`` is ``t``. Its features use
  only what was known at the window's end ``t+5m``: price bars with ``window_start <= t`` (the
  window's own bar closes at ``t+5m``), sentiment of items published in windows ``<= t``, and
  macro values published early enough (see :data:`MACRO_AVAILABILITY_LAG`).
* ``lookback`` counts the 5-minute windows a feature reads, the window itself included
  (``ret_5m`` reads 2 bars: ``t-5m`` and ``t``). Every feature is a function of exactly that
  fixed trailing history: a window's value is the same whether it is computed alone, inside a
  backfill range, or recomputed later.
* No filling: when any bar a feature needs is missing, the feature is NULL (``bars_missing``
  says how many bars of the last day are absent). Nothing is forward-filled across a gap and
  nothing is back-filled from the future; a NULL clears once the gap leaves the lookback.
* ``price`` is the bar's ``close``, or the CoinGecko snapshot ``current_price`` where ``close``
  is NULL (coins without an exchange pair); open/high/low/volume have no such fallback.
* Recursive TA-Lib indicators (EMA, MACD, RSI, ATR, ADX) are TA-Lib's algorithm run over a fixed
  number of bars ending at the window (their ``lookback``), exactly as ``talib.X(last_W_bars)``
  would compute its last value: the recursion is seeded at the start of that fixed history, so
  its value does not depend on how far back the stored series happens to reach.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType

from resources.storage.windows import DAY, WINDOW

#: Bumped by hand when a computation changes without the catalog changing; the catalog's own
#: fingerprint is appended, so a renamed/added/removed feature changes the version by itself.
FEATURE_SET_MAJOR = "1.1"

DAY_WINDOWS = DAY // WINDOW  # 288
HOUR_WINDOWS = timedelta(hours=1) // WINDOW  # 12

#: Alpha158's rolling windows (in 5-minute bars).
ALPHA_WINDOWS = (5, 10, 20, 30, 60)

#: A FRED/Yahoo value with ``realtime_start`` D (a date) is used from D + 30 h UTC on: D's
#: end in St. Louis time (FRED's real-time dates; UTC-6 in winter) plus the 00:00 UTC start,
#: so a value published late on D in the US is never used by a window that ended before it.
MACRO_AVAILABILITY_LAG = timedelta(hours=30)

#: Half-life of the decayed sentiment score.
SENTIMENT_HALF_LIFE_WINDOWS = 72  # 6 hours

FAMILIES: Mapping[str, str] = MappingProxyType(
    {
        "returns": "Simple returns of the price over fixed horizons, and lagged 5-minute returns.",
        "volatility": "Realised volatility, range-based volatility estimators and return-distribution shape.",
        "candle": "Shape of the window's own candle (Qlib Alpha158 K-features and price ratios).",
        "rolling": "Qlib Alpha158 rolling operators of price and volume over 5, 10, 20, 30 and 60 windows.",
        "talib": "TA-Lib technical indicators, computed with TA-Lib's own formulas over a fixed trailing history.",
        "volume": "Traded volume, liquidity and market-capitalisation measures.",
        "market": "Market context: BTC and market-wide returns, breadth, dispersion, and each coin's beta and correlation to BTC.",
        "cross_section": "Ranks (0..1) and z-scores of a feature across every symbol with a value in the same window.",
        "sentiment": "Aggregates of per-item news sentiment (`sentiment_data`) about the symbol, and for the whole market.",
        "macro": "The latest macro value known at the window's end (FRED and Yahoo Finance daily series).",
        "quality": "Data-quality flags: missing bars in the lookback and where the price came from.",
        "calendar": "Time of day and day of week of the window, as points on the unit circle.",
        "derivatives": "The coin's perpetual swap (`derivatives_data`): funding, basis and open interest as known at "
        "the window's end; NULL for a coin without a perpetual.",
    }
)


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: a DOUBLE column of ``ml_features_materialized``."""

    name: str
    family: str
    description: str
    inputs: tuple[str, ...]
    lookback: int
    unit: str

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name.lower() != self.name or len(self.name) > 64:
            raise ValueError(f"feature name {self.name!r} must be a lower-case identifier of at most 64 characters")
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: unknown family {self.family!r}")
        if self.lookback < 0:
            raise ValueError(f"{self.name}: negative lookback")


@dataclass(frozen=True)
class MacroSeries:
    """A macro series the features use, where it comes from, and how stale it may get."""

    series_id: str
    source: str  # 'fred' or 'yahoo'
    label: str
    unit: str
    max_age_days: int


#: The macro series that become features (``macro_indicators`` may hold more: the FRED list is
#: configurable with ``CRYPTO_FRED_SERIES``; only these are catalogued columns).
MACRO_SERIES: Mapping[str, MacroSeries] = MappingProxyType(
    {
        "DGS10": MacroSeries("DGS10", "fred", "10-year US Treasury constant-maturity yield", "percent", 10),
        "DFF": MacroSeries("DFF", "fred", "effective federal funds rate", "percent", 10),
        "DTWEXBGS": MacroSeries("DTWEXBGS", "fred", "nominal broad US dollar index (Fed)", "index", 14),
        "CPIAUCSL": MacroSeries("CPIAUCSL", "fred", "US CPI, all urban consumers, seasonally adjusted", "index", 75),
        "^GSPC": MacroSeries("^GSPC", "yahoo", "S&P 500 daily close", "index points", 7),
        "^VIX": MacroSeries("^VIX", "yahoo", "CBOE VIX daily close", "index points", 7),
        "DX-Y.NYB": MacroSeries("DX-Y.NYB", "yahoo", "ICE US dollar index (DXY) daily close", "index points", 7),
        "GC=F": MacroSeries("GC=F", "yahoo", "COMEX gold front-month future daily close", "USD per troy ounce", 7),
    }
)


def _ema_window(period: int) -> int:
    return 5 * period


def _rsi_window(period: int) -> int:
    return 10 * period


MACD_WINDOW = 140
ATR_WINDOW = 140
ADX_WINDOW = 150
OBV_WINDOW = DAY_WINDOWS
EMA_PERIODS = (5, 10, 20, 50)
SMA_PERIODS = (50, 100, 200)
RSI_PERIODS = (6, 14, 24)
RETURN_HORIZONS = {"5m": 1, "15m": 3, "30m": 6, "1h": 12, "4h": 48, "12h": 144, "1d": 288}
SENTIMENT_HORIZONS = {"1h": HOUR_WINDOWS, "4h": 48, "24h": DAY_WINDOWS}
CROSS_SECTION_RANKED = (
    "ret_1h",
    "ret_4h",
    "ret_1d",
    "rv_1d",
    "rsi_14",
    "turnover_24h",
    "log_market_cap",
    "sent_mean_24h",
)
#: Perpetual-swap horizons: funding z-scores and mean over days, the premium's z-score, open-interest changes.
FUNDING_HORIZONS = {"3d": 3 * DAY_WINDOWS, "7d": 7 * DAY_WINDOWS}
#: Funding statistics sample the rate in force once an hour (settlements are an hour or more apart).
FUNDING_SAMPLE_WINDOWS = HOUR_WINDOWS
PREMIUM_HORIZONS = {"1d": DAY_WINDOWS}
OPEN_INTEREST_HORIZONS = {"1h": HOUR_WINDOWS, "4h": 48, "24h": DAY_WINDOWS}
#: A derivatives statistic over a horizon needs a value in at least this share of its windows.
DERIVATIVES_MIN_COVERAGE = 0.5
#: Hours in the (365-day) year funding rates and the basis are annualised over.
HOURS_PER_YEAR = 24 * 365
CROSS_SECTION_ZSCORED = ("ret_5m", "ret_1h", "ret_1d", "rv_1d", "rsi_14", "vol_z_1d", "bb_pctb")


def _build() -> tuple[FeatureSpec, ...]:
    specs: list[FeatureSpec] = []

    def add(name: str, family: str, description: str, inputs: tuple[str, ...], lookback: int, unit: str) -> None:
        specs.append(FeatureSpec(name, family, description, inputs, lookback, unit))

    price = ("price",)
    ohlc = ("open", "high", "low", "price")
    hlc = ("high", "low", "price")

    # ---------------------------------------------------------------- returns
    for label, k in RETURN_HORIZONS.items():
        add(
            f"ret_{label}",
            "returns",
            f"Simple return of the price over the last {label}: price(t) / price(t - {k} windows) - 1.",
            price,
            k + 1,
            "fraction",
        )
    for lag in (1, 2):
        add(
            f"ret_5m_lag{lag}",
            "returns",
            f"The 5-minute return {lag} window(s) earlier: price(t-{lag}) / price(t-{lag + 1}) - 1.",
            price,
            lag + 2,
            "fraction",
        )
    add(
        "ret_24h_snapshot",
        "returns",
        "CoinGecko's own 24-hour price change at the window (price_change_pct_24h / 100); "
        "available even where exchange bars are missing.",
        ("price_change_pct_24h",),
        1,
        "fraction",
    )

    # ---------------------------------------------------------------- volatility
    for label, n in (("1h", HOUR_WINDOWS), ("4h", 48), ("1d", DAY_WINDOWS)):
        add(
            f"rv_{label}",
            "volatility",
            f"Realised volatility: sample standard deviation of the last {n} five-minute log returns (not annualised).",
            price,
            n + 1,
            "log return per 5 minutes",
        )
    for label, n in (("1h", HOUR_WINDOWS), ("4h", 48), ("1d", DAY_WINDOWS)):
        add(
            f"parkinson_vol_{label}",
            "volatility",
            f"Parkinson range volatility over the last {n} bars: sqrt(mean(ln(high/low)^2) / (4 ln 2)).",
            ("high", "low"),
            n,
            "log return per 5 minutes",
        )
    for label, n in (("1h", HOUR_WINDOWS), ("4h", 48)):
        add(
            f"garman_klass_vol_{label}",
            "volatility",
            f"Garman-Klass volatility over the last {n} bars: "
            f"sqrt(max(0, mean(0.5 ln(high/low)^2 - (2 ln 2 - 1) ln(close/open)^2))).",
            ohlc,
            n,
            "log return per 5 minutes",
        )
    for label, n in (("1h", HOUR_WINDOWS), ("4h", 48), ("1d", DAY_WINDOWS)):
        add(
            f"range_{label}",
            "volatility",
            f"High-low range of the last {n} bars relative to the price: (max high - min low) / price.",
            hlc,
            n,
            "fraction",
        )
    add(
        "downside_vol_4h",
        "volatility",
        "Downside semi-deviation of the last 48 five-minute log returns: sqrt(sum(min(r, 0)^2) / 48).",
        price,
        49,
        "log return per 5 minutes",
    )
    add(
        "upside_vol_4h",
        "volatility",
        "Upside semi-deviation of the last 48 five-minute log returns: sqrt(sum(max(r, 0)^2) / 48).",
        price,
        49,
        "log return per 5 minutes",
    )
    add(
        "rv_ratio_1h_1d",
        "volatility",
        "rv_1h / rv_1d: short-term volatility relative to the day's.",
        price,
        DAY_WINDOWS + 1,
        "ratio",
    )
    add(
        "ret_skew_1d",
        "volatility",
        "Sample skewness (adjusted Fisher-Pearson, as pandas) of the last 288 five-minute log returns.",
        price,
        DAY_WINDOWS + 1,
        "dimensionless",
    )
    add(
        "ret_kurt_1d",
        "volatility",
        "Sample excess kurtosis (bias-corrected, as pandas) of the last 288 five-minute log returns.",
        price,
        DAY_WINDOWS + 1,
        "dimensionless",
    )

    # ---------------------------------------------------------------- candle (Alpha158 K-features)
    candle = {
        "kmid": ("(close - open) / open: the candle's body (Alpha158 KMID).", "fraction"),
        "klen": ("(high - low) / open: the candle's length (Alpha158 KLEN).", "fraction"),
        "kmid2": ("(close - open) / (high - low + 1e-12): body as a share of the range (Alpha158 KMID2).", "ratio"),
        "kup": ("(high - max(open, close)) / open: upper shadow (Alpha158 KUP).", "fraction"),
        "kup2": ("(high - max(open, close)) / (high - low + 1e-12): upper shadow share (Alpha158 KUP2).", "ratio"),
        "klow": ("(min(open, close) - low) / open: lower shadow (Alpha158 KLOW).", "fraction"),
        "klow2": ("(min(open, close) - low) / (high - low + 1e-12): lower shadow share (Alpha158 KLOW2).", "ratio"),
        "ksft": ("(2 close - high - low) / open: where the close sits in the range (Alpha158 KSFT).", "fraction"),
        "ksft2": ("(2 close - high - low) / (high - low + 1e-12) (Alpha158 KSFT2).", "ratio"),
        "open0": ("open / close (Alpha158 OPEN0).", "ratio"),
        "high0": ("high / close (Alpha158 HIGH0).", "ratio"),
        "low0": ("low / close (Alpha158 LOW0).", "ratio"),
    }
    for name, (description, unit) in candle.items():
        add(name, "candle", f"{description} 'close' is the window's price.", ohlc, 1, unit)

    # ---------------------------------------------------------------- rolling (Alpha158 operators)
    rolling = (
        ("roc", "Price {d} windows ago divided by the current price (Alpha158 ROC{d}).", price, 1, "ratio"),
        (
            "ma",
            "Mean price over the last {d} windows divided by the current price (Alpha158 MA{d}).",
            price,
            0,
            "ratio",
        ),
        (
            "std",
            "Sample standard deviation of the price over the last {d} windows, divided by the current "
            "price (Alpha158 STD{d}).",
            price,
            0,
            "ratio",
        ),
        (
            "beta",
            "Slope (per window) of the least-squares line through the last {d} prices, divided by the "
            "current price (Alpha158 BETA{d}).",
            price,
            0,
            "fraction per window",
        ),
        (
            "rsqr",
            "R-squared of the least-squares line through the last {d} prices (Alpha158 RSQR{d}).",
            price,
            0,
            "dimensionless",
        ),
        (
            "resi",
            "Residual of the current price from the least-squares line through the last {d} prices, "
            "divided by the current price (Alpha158 RESI{d}).",
            price,
            0,
            "ratio",
        ),
        (
            "max",
            "Highest high of the last {d} windows divided by the current price (Alpha158 MAX{d}).",
            ("high", "price"),
            0,
            "ratio",
        ),
        (
            "min",
            "Lowest low of the last {d} windows divided by the current price (Alpha158 MIN{d}).",
            ("low", "price"),
            0,
            "ratio",
        ),
        (
            "qtlu",
            "80% quantile (linear interpolation) of the last {d} prices divided by the current price "
            "(Alpha158 QTLU{d}).",
            price,
            0,
            "ratio",
        ),
        (
            "qtld",
            "20% quantile (linear interpolation) of the last {d} prices divided by the current price "
            "(Alpha158 QTLD{d}).",
            price,
            0,
            "ratio",
        ),
        (
            "rank",
            "Percentile rank of the current price among the last {d} prices (ties averaged; 1 = the "
            "highest) (Alpha158 RANK{d}).",
            price,
            0,
            "fraction",
        ),
        (
            "rsv",
            "(price - lowest low) / (highest high - lowest low + 1e-12) over the last {d} windows: where "
            "the price sits in the range (Alpha158 RSV{d}).",
            hlc,
            0,
            "fraction",
        ),
        (
            "imax",
            "Position of the highest high among the last {d} windows (1 = oldest, {d} = current; ties "
            "take the oldest), divided by {d} (Alpha158 IMAX{d}).",
            ("high",),
            0,
            "fraction",
        ),
        (
            "imin",
            "Position of the lowest low among the last {d} windows (1 = oldest, {d} = current; ties "
            "take the oldest), divided by {d} (Alpha158 IMIN{d}).",
            ("low",),
            0,
            "fraction",
        ),
        (
            "imxd",
            "(position of the highest high - position of the lowest low) / {d} over the last {d} "
            "windows: positive when the high came after the low (Alpha158 IMXD{d}).",
            ("high", "low"),
            0,
            "fraction",
        ),
        (
            "corr",
            "Pearson correlation of the price and log(1 + volume) over the last {d} windows (Alpha158 CORR{d}).",
            ("price", "volume"),
            0,
            "correlation",
        ),
        (
            "cord",
            "Correlation of the price ratio price(t)/price(t-1) and log(1 + volume(t)/volume(t-1)) over "
            "the last {d} windows (Alpha158 CORD{d}); NULL while a zero-volume bar is in the window (its "
            "volume ratio is undefined).",
            ("price", "volume"),
            1,
            "correlation",
        ),
        ("cntp", "Share of the last {d} windows in which the price rose (Alpha158 CNTP{d}).", price, 1, "fraction"),
        ("cntn", "Share of the last {d} windows in which the price fell (Alpha158 CNTN{d}).", price, 1, "fraction"),
        ("cntd", "cntp - cntn over the last {d} windows (Alpha158 CNTD{d}).", price, 1, "fraction"),
        (
            "sump",
            "Sum of price rises over the last {d} windows divided by the sum of absolute price changes "
            "(+1e-12): an RSI-like share (Alpha158 SUMP{d}).",
            price,
            1,
            "fraction",
        ),
        (
            "sumn",
            "Sum of price falls over the last {d} windows divided by the sum of absolute price changes "
            "(+1e-12) (Alpha158 SUMN{d}).",
            price,
            1,
            "fraction",
        ),
        (
            "sumd",
            "(sum of rises - sum of falls) / (sum of absolute changes + 1e-12) over the last {d} windows "
            "(Alpha158 SUMD{d}).",
            price,
            1,
            "fraction",
        ),
        (
            "vma",
            "Mean bar volume of the last {d} windows divided by the current bar volume (+1e-12) (Alpha158 VMA{d}).",
            ("volume",),
            0,
            "ratio",
        ),
        (
            "vstd",
            "Sample standard deviation of bar volume over the last {d} windows divided by the current "
            "bar volume (+1e-12) (Alpha158 VSTD{d}).",
            ("volume",),
            0,
            "ratio",
        ),
        (
            "wvma",
            "Coefficient of variation of |price(t)/price(t-1) - 1| x volume over the last {d} windows "
            "(std / (mean + 1e-12)) (Alpha158 WVMA{d}).",
            ("price", "volume"),
            1,
            "ratio",
        ),
        (
            "vsump",
            "Sum of volume increases over the last {d} windows divided by the sum of absolute volume "
            "changes (+1e-12) (Alpha158 VSUMP{d}).",
            ("volume",),
            1,
            "fraction",
        ),
        (
            "vsumn",
            "Sum of volume decreases over the last {d} windows divided by the sum of absolute volume "
            "changes (+1e-12) (Alpha158 VSUMN{d}).",
            ("volume",),
            1,
            "fraction",
        ),
        (
            "vsumd",
            "(volume increases - volume decreases) / (sum of absolute volume changes + 1e-12) over the "
            "last {d} windows (Alpha158 VSUMD{d}).",
            ("volume",),
            1,
            "fraction",
        ),
    )
    for op, template, inputs, extra, unit in rolling:
        for d in ALPHA_WINDOWS:
            add(f"{op}_{d}", "rolling", template.format(d=d), inputs, d + extra, unit)

    # ---------------------------------------------------------------- TA-Lib
    fixed = "TA-Lib's algorithm over exactly the {w} bars ending at the window (seeded at their start)"
    for n in RSI_PERIODS:
        w = _rsi_window(n)
        add(
            f"rsi_{n}",
            "talib",
            f"RSI({n}): {fixed.format(w=w)}, i.e. talib.RSI(last {w} prices, {n})[-1]; "
            f"Wilder-smoothed gains / (gains + losses) x 100.",
            price,
            w,
            "0..100",
        )
    macd_doc = f"MACD(12, 26, 9): {fixed.format(w=MACD_WINDOW)}"
    add("macd_line", "talib", f"{macd_doc}: EMA12 - EMA26 of the price.", price, MACD_WINDOW, "price (USD)")
    add("macd_signal", "talib", f"{macd_doc}: EMA9 of the MACD line.", price, MACD_WINDOW, "price (USD)")
    add("macd_hist", "talib", f"{macd_doc}: MACD line - signal.", price, MACD_WINDOW, "price (USD)")
    for part in ("line", "signal", "hist"):
        add(
            f"macd_{part}_rel",
            "talib",
            f"macd_{part} divided by the price (comparable across coins).",
            price,
            MACD_WINDOW,
            "fraction",
        )
    bb = "Bollinger bands (20, 2, 2, SMA) as talib.BBANDS: 20-window SMA of the price"
    add("bb_upper", "talib", f"{bb} + 2 population standard deviations.", price, 20, "price (USD)")
    add("bb_middle", "talib", f"{bb}.", price, 20, "price (USD)")
    add("bb_lower", "talib", f"{bb} - 2 population standard deviations.", price, 20, "price (USD)")
    add("bb_width", "talib", "(bb_upper - bb_lower) / bb_middle.", price, 20, "fraction")
    add(
        "bb_pctb",
        "talib",
        "%b: (price - bb_lower) / (bb_upper - bb_lower); NULL when the bands coincide.",
        price,
        20,
        "fraction",
    )
    add(
        "atr_14",
        "talib",
        f"ATR(14): {fixed.format(w=ATR_WINDOW)}; Wilder-smoothed true range.",
        hlc,
        ATR_WINDOW,
        "price (USD)",
    )
    add(
        "natr_14",
        "talib",
        f"NATR(14) = 100 x atr_14 / price, as talib.NATR over the same {ATR_WINDOW} bars.",
        hlc,
        ATR_WINDOW,
        "percent",
    )
    add("adx_14", "talib", f"ADX(14): {fixed.format(w=ADX_WINDOW)}; trend strength.", hlc, ADX_WINDOW, "0..100")
    add(
        "plus_di_14",
        "talib",
        f"+DI(14): {fixed.format(w=ADX_WINDOW)} (as talib.PLUS_DI on those bars).",
        hlc,
        ADX_WINDOW,
        "0..100",
    )
    add(
        "minus_di_14",
        "talib",
        f"-DI(14): {fixed.format(w=ADX_WINDOW)} (as talib.MINUS_DI on those bars).",
        hlc,
        ADX_WINDOW,
        "0..100",
    )
    add(
        "cci_14",
        "talib",
        "CCI(14) as talib.CCI: (typical price - its 14-window mean) / (0.015 x mean "
        "absolute deviation); typical price = (high + low + price) / 3.",
        hlc,
        14,
        "dimensionless",
    )
    add(
        "mfi_14",
        "talib",
        "MFI(14) as talib.MFI: money flow index from typical price x volume over the last 14 changes.",
        hlc + ("volume",),
        15,
        "0..100",
    )
    add(
        "willr_14",
        "talib",
        "Williams %R(14) as talib.WILLR: -100 x (highest high - price) / (highest high - lowest low) over 14 windows.",
        hlc,
        14,
        "-100..0",
    )
    add("stoch_k", "talib", "Slow stochastic %K (5, 3 SMA, 3 SMA) as talib.STOCH.", hlc, 9, "0..100")
    add("stoch_d", "talib", "Slow stochastic %D (5, 3 SMA, 3 SMA) as talib.STOCH.", hlc, 9, "0..100")
    add("roc_pct_10", "talib", "ROC(10) as talib.ROC: (price / price 10 windows ago - 1) x 100.", price, 11, "percent")
    add("mom_10", "talib", "MOM(10) as talib.MOM: price - price 10 windows ago.", price, 11, "price (USD)")
    add(
        "obv_1d",
        "talib",
        f"On-balance volume as talib.OBV over exactly the last {OBV_WINDOW} bars: the first "
        "bar's volume plus each later bar's volume signed by its price change.",
        ("price", "volume"),
        OBV_WINDOW,
        "base-asset units",
    )
    add(
        "obv_1d_norm",
        "talib",
        f"obv_1d divided by the total volume of the same {OBV_WINDOW} bars (-1..1).",
        ("price", "volume"),
        OBV_WINDOW,
        "fraction",
    )
    add("ultosc", "talib", "Ultimate oscillator (7, 14, 28) as talib.ULTOSC.", hlc, 29, "0..100")
    add(
        "aroon_up_25",
        "talib",
        "Aroon up (25) as talib.AROON: 100 x (25 - windows since the highest high of the last 26) / 25.",
        ("high",),
        26,
        "0..100",
    )
    add(
        "aroon_down_25",
        "talib",
        "Aroon down (25) as talib.AROON: 100 x (25 - windows since the lowest low of the last 26) / 25.",
        ("low",),
        26,
        "0..100",
    )
    for n in EMA_PERIODS:
        w = _ema_window(n)
        add(
            f"ema_ratio_{n}",
            "talib",
            f"price / EMA({n}) of the price; the EMA is {fixed.format(w=w)} (talib.EMA(last {w} prices, {n})[-1]).",
            price,
            w,
            "ratio",
        )
    for n in SMA_PERIODS:
        add(f"sma_ratio_{n}", "talib", f"price / SMA({n}) of the price (talib.SMA).", price, n, "ratio")

    # ---------------------------------------------------------------- volume & market cap
    add(
        "log_market_cap",
        "volume",
        "Natural log of the market capitalisation at the window.",
        ("market_cap",),
        1,
        "log USD",
    )
    add(
        "log_volume_24h",
        "volume",
        "Natural log of the reported 24-hour traded volume at the window.",
        ("volume_24h",),
        1,
        "log USD",
    )
    add(
        "turnover_24h",
        "volume",
        "volume_24h / market_cap: the share of the coin's value traded in a day.",
        ("volume_24h", "market_cap"),
        1,
        "fraction per day",
    )
    add("mcap_change_1h", "volume", "market_cap(t) / market_cap(t - 12) - 1.", ("market_cap",), 13, "fraction")
    add("mcap_change_1d", "volume", "market_cap(t) / market_cap(t - 288) - 1.", ("market_cap",), 289, "fraction")
    add("volume_24h_change_1d", "volume", "volume_24h(t) / volume_24h(t - 288) - 1.", ("volume_24h",), 289, "fraction")
    add(
        "vol_z_1d",
        "volume",
        "z-score of log(1 + bar volume) against the last 288 bars (sample std).",
        ("volume",),
        DAY_WINDOWS,
        "standard deviations",
    )
    add(
        "vol_ratio_1h_1d",
        "volume",
        "Mean bar volume of the last 12 bars / mean bar volume of the last 288.",
        ("volume",),
        DAY_WINDOWS,
        "ratio",
    )
    add(
        "log_dollar_volume_1h",
        "volume",
        "log of the last 12 bars' dollar volume (sum of volume x price).",
        ("volume", "price"),
        HOUR_WINDOWS,
        "log USD",
    )
    add(
        "amihud_1d",
        "volume",
        "Amihud illiquidity over the last 288 bars: sum of |5-minute log return| / sum "
        "of dollar volume, per million USD.",
        ("price", "volume"),
        DAY_WINDOWS + 1,
        "return per million USD",
    )
    add(
        "vwap_dev_1h",
        "volume",
        "price / VWAP of the last 12 bars - 1 (VWAP from typical price and volume).",
        hlc + ("volume",),
        HOUR_WINDOWS,
        "fraction",
    )
    add("vwap_dev_1d", "volume", "price / VWAP of the last 288 bars - 1.", hlc + ("volume",), DAY_WINDOWS, "fraction")

    # ---------------------------------------------------------------- market context
    for label in ("5m", "1h", "4h", "1d"):
        k = RETURN_HORIZONS[label]
        add(
            f"btc_ret_{label}",
            "market",
            f"BTC's ret_{label} in the same window (the same for every symbol).",
            ("BTC price",),
            k + 1,
            "fraction",
        )
    for label in ("5m", "1h", "4h", "1d"):
        k = RETURN_HORIZONS[label]
        add(
            f"mkt_ret_{label}",
            "market",
            f"Market-cap-weighted ret_{label} of every symbol with a value (weights: market cap {k} windows earlier).",
            ("price", "market_cap"),
            k + 1,
            "fraction",
        )
    for label in ("1h", "1d"):
        k = RETURN_HORIZONS[label]
        add(
            f"mkt_ew_ret_{label}",
            "market",
            f"Equal-weighted mean ret_{label} across symbols.",
            price,
            k + 1,
            "fraction",
        )
    for label, n in (("4h", 48), ("1d", DAY_WINDOWS)):
        add(
            f"beta_btc_{label}",
            "market",
            f"Beta of the coin's 5-minute log returns to BTC's over the last {n} returns: cov / var(BTC).",
            ("price", "BTC price"),
            n + 1,
            "dimensionless",
        )
        add(
            f"corr_btc_{label}",
            "market",
            f"Correlation of the coin's 5-minute log returns with BTC's over the last {n} returns.",
            ("price", "BTC price"),
            n + 1,
            "correlation",
        )
    for label in ("1h", "1d"):
        k = RETURN_HORIZONS[label]
        add(
            f"excess_ret_{label}",
            "market",
            f"ret_{label} - mkt_ret_{label}.",
            ("price", "market_cap"),
            k + 1,
            "fraction",
        )
    add(
        "btc_rv_1d",
        "market",
        "BTC's rv_1d in the same window.",
        ("BTC price",),
        DAY_WINDOWS + 1,
        "log return per 5 minutes",
    )
    add("mkt_breadth_1h", "market", "Share of symbols with ret_1h > 0 among those with a value.", price, 13, "fraction")
    add("mkt_dispersion_1h", "market", "Cross-sectional sample standard deviation of ret_1h.", price, 13, "fraction")
    add(
        "btc_dominance",
        "market",
        "BTC's market cap / the sum of every symbol's market cap in the window.",
        ("market_cap",),
        1,
        "fraction",
    )

    # ---------------------------------------------------------------- sentiment
    sent_inputs = ("sentiment_score",)
    for label, n in SENTIMENT_HORIZONS.items():
        add(
            f"sent_mean_{label}",
            "sentiment",
            f"Mean sentiment score (P(bullish) - P(bearish)) of the items about "
            f"the symbol published in the last {label} ({n} windows); NULL when there are none.",
            sent_inputs,
            n,
            "-1..1",
        )
        add(
            f"sent_count_{label}",
            "sentiment",
            f"Number of items about the symbol published in the last {label}.",
            sent_inputs,
            n,
            "items",
        )
        add(
            f"sent_bull_share_{label}",
            "sentiment",
            f"Share of the last {label}'s items labelled bullish; NULL when there are none.",
            ("label",),
            n,
            "fraction",
        )
        add(
            f"sent_bear_share_{label}",
            "sentiment",
            f"Share of the last {label}'s items labelled bearish; NULL when there are none.",
            ("label",),
            n,
            "fraction",
        )
    add(
        "sent_decayed_6h",
        "sentiment",
        "Exponentially decayed mean score over the last 24 h with a 6-hour "
        "half-life (an item's weight halves every 72 windows of age); NULL when there are no items.",
        sent_inputs,
        DAY_WINDOWS,
        "-1..1",
    )
    add(
        "sent_conf_mean_24h",
        "sentiment",
        "Mean model confidence of the last 24 h's items.",
        ("confidence",),
        DAY_WINDOWS,
        "0..1",
    )
    add(
        "sent_count_surge_1h",
        "sentiment",
        "sent_count_1h / (sent_count_24h / 24): news flow in the last hour "
        "relative to the day's hourly average; NULL when the day has no items.",
        sent_inputs,
        DAY_WINDOWS,
        "ratio",
    )
    add(
        "mkt_sent_mean_1h",
        "sentiment",
        "Mean score of every symbol's items in the last hour (market-wide).",
        sent_inputs,
        HOUR_WINDOWS,
        "-1..1",
    )
    add(
        "mkt_sent_mean_24h",
        "sentiment",
        "Mean score of every symbol's items in the last 24 hours (market-wide).",
        sent_inputs,
        DAY_WINDOWS,
        "-1..1",
    )

    # ---------------------------------------------------------------- cross-section
    def lookback_of(feature: str) -> int:
        return next(spec.lookback for spec in specs if spec.name == feature)

    for feature in CROSS_SECTION_RANKED:
        add(
            f"cs_rank_{feature}",
            "cross_section",
            f"Percentile rank (average ties; 1 = highest) of {feature} "
            f"among the symbols with a value in the same window.",
            (feature,),
            lookback_of(feature),
            "fraction",
        )
    for feature in CROSS_SECTION_ZSCORED:
        add(
            f"cs_z_{feature}",
            "cross_section",
            f"z-score of {feature} across the symbols with a value in the same "
            f"window: (x - mean) / sample std; NULL with fewer than 3 values or no spread.",
            (feature,),
            lookback_of(feature),
            "standard deviations",
        )

    # ---------------------------------------------------------------- macro
    def macro_lookback(series_id: str) -> int:
        return MACRO_SERIES[series_id].max_age_days * DAY_WINDOWS

    def macro_add(name: str, series_id: str, what: str, unit: str) -> None:
        series = MACRO_SERIES[series_id]
        add(
            name,
            "macro",
            f"{what} of {series_id} ({series.label}, {series.source}): the latest observation "
            f"published at least 30 h before the window's end (realtime_start + 30 h); NULL when that "
            f"observation is more than {series.max_age_days} days old.",
            (f"macro:{series_id}",),
            macro_lookback(series_id),
            unit,
        )

    macro_add("macro_dgs10", "DGS10", "Latest value", "percent")
    macro_add("macro_dgs10_chg", "DGS10", "Change from the previous observation", "percentage points")
    macro_add("macro_dff", "DFF", "Latest value", "percent")
    macro_add("macro_dff_chg", "DFF", "Change from the previous observation", "percentage points")
    macro_add("macro_term_spread", "DGS10", "DGS10 minus DFF (both latest)", "percentage points")
    macro_add("macro_usd_broad", "DTWEXBGS", "Latest value", "index")
    macro_add("macro_usd_broad_ret", "DTWEXBGS", "Relative change from the previous observation", "fraction")
    macro_add(
        "macro_cpi_yoy",
        "CPIAUCSL",
        "Year-on-year change (latest / the observation dated a year earlier - 1, x 100)",
        "percent",
    )
    macro_add("macro_cpi_mom", "CPIAUCSL", "Relative change from the previous month's observation", "fraction")
    macro_add("macro_sp500", "^GSPC", "Latest close", "index points")
    macro_add("macro_sp500_ret", "^GSPC", "Relative change from the previous close", "fraction")
    macro_add("macro_vix", "^VIX", "Latest close", "index points")
    macro_add("macro_vix_chg", "^VIX", "Change from the previous close", "index points")
    macro_add("macro_dxy", "DX-Y.NYB", "Latest close", "index points")
    macro_add("macro_dxy_ret", "DX-Y.NYB", "Relative change from the previous close", "fraction")
    macro_add("macro_gold", "GC=F", "Latest close", "USD per troy ounce")
    macro_add("macro_gold_ret", "GC=F", "Relative change from the previous close", "fraction")

    # ---------------------------------------------------------------- quality
    add(
        "bars_missing",
        "quality",
        "Number of missing price bars among the last 289 windows (the longest price "
        "lookback, the window included). 0 means every price feature had complete history.",
        price,
        DAY_WINDOWS + 1,
        "bars",
    )
    add(
        "bars_missing_1h",
        "quality",
        "Number of missing price bars among the last 12 windows.",
        price,
        HOUR_WINDOWS,
        "bars",
    )
    add(
        "price_from_snapshot",
        "quality",
        "1 when the window's price is CoinGecko's current_price because the "
        "bar has no close, 0 when it is the bar's close; NULL when there is no price.",
        ("close", "current_price"),
        1,
        "flag",
    )

    # ---------------------------------------------------------------- calendar
    add("hour_sin", "calendar", "sin(2 pi x time of day of the window start / 24 h).", (), 0, "-1..1")
    add("hour_cos", "calendar", "cos(2 pi x time of day of the window start / 24 h).", (), 0, "-1..1")
    add("dow_sin", "calendar", "sin(2 pi x (weekday + time of day) / 7), Monday 00:00 = 0.", (), 0, "-1..1")
    add("dow_cos", "calendar", "cos(2 pi x (weekday + time of day) / 7), Monday 00:00 = 0.", (), 0, "-1..1")

    # ---------------------------------------------------------------- derivatives (perpetual swaps)
    coverage = (
        f"needs the window's own value and at least {DERIVATIVES_MIN_COVERAGE:.0%} of the samples with one; "
        "missing windows skipped, never filled"
    )
    per_year = f"x {HOURS_PER_YEAR} / funding_interval_h (simple, not compounded)"
    hourly = f"at the window and every {FUNDING_SAMPLE_WINDOWS}th window before it (hourly)"
    add(
        "funding_rate",
        "derivatives",
        "Funding rate in force at the window's end: the latest settlement strictly before it, per funding "
        "interval (positive: longs pay shorts).",
        ("funding_rate",),
        1,
        "fraction per interval",
    )
    add(
        "funding_rate_ann",
        "derivatives",
        f"funding_rate annualised by its interval: funding_rate {per_year}.",
        ("funding_rate", "funding_interval_h"),
        1,
        "fraction per year",
    )
    add(
        "funding_interval_h",
        "derivatives",
        "Hours between the perpetual's funding settlements (8 on most venues, 4 or 1 on some contracts).",
        ("funding_interval_h",),
        1,
        "hours",
    )
    add(
        "funding_hours_to_next",
        "derivatives",
        "Hours from the window's end to the next funding settlement (next_funding_time, or funding_time + "
        "funding_interval_h where the venue gave no next time).",
        ("next_funding_time", "funding_time", "funding_interval_h"),
        1,
        "hours",
    )
    add(
        "funding_pred_minus_current",
        "derivatives",
        "Predicted next funding rate as the live run observed it (a minute or so after the window's end) minus the rate in force "
        "(next_funding_rate - funding_rate); NULL where no prediction was observed (backfilled windows).",
        ("next_funding_rate", "funding_rate"),
        1,
        "fraction per interval",
    )
    for label, n in FUNDING_HORIZONS.items():
        add(
            f"funding_z_{label}",
            "derivatives",
            f"z-score of funding_rate_ann against its values in the last {label} ({n} windows), sampled "
            f"{hourly}; {coverage}: (x - mean) / sample std; NULL when the rate did not change.",
            ("funding_rate", "funding_interval_h"),
            n - FUNDING_SAMPLE_WINDOWS + 1,
            "standard deviations",
        )
    longest = max(FUNDING_HORIZONS.values())
    add(
        "funding_ann_mean_7d",
        "derivatives",
        f"Mean of funding_rate_ann over the last 7 days ({longest} windows), sampled {hourly}; {coverage}: "
        "the carry of holding the perpetual.",
        ("funding_rate", "funding_interval_h"),
        longest - FUNDING_SAMPLE_WINDOWS + 1,
        "fraction per year",
    )
    add(
        "premium",
        "derivatives",
        "Perpetual premium at the window's end: mark_close / index_close - 1.",
        ("premium",),
        1,
        "fraction",
    )
    add(
        "basis_ann",
        "derivatives",
        f"Annualised basis, mark over index: premium {per_year}, the premium read as a rate per funding "
        "interval (the convention of the venues' funding formula).",
        ("premium", "funding_interval_h"),
        1,
        "fraction per year",
    )
    for label, n in PREMIUM_HORIZONS.items():
        add(
            f"premium_z_{label}",
            "derivatives",
            f"z-score of premium against its values in the last {label} ({n} windows, {coverage}); NULL "
            "without spread.",
            ("premium",),
            n,
            "standard deviations",
        )
    for label, n in OPEN_INTEREST_HORIZONS.items():
        add(
            f"oi_change_{label}",
            "derivatives",
            f"Log change of open interest in contracts over the last {label}: ln(open_interest(t) / "
            f"open_interest(t - {n} windows)); NULL when either is missing.",
            ("open_interest",),
            n + 1,
            "log change",
        )
    add(
        "log_oi_value",
        "derivatives",
        "Natural log of the open interest's notional (open_interest_value, in the settle currency).",
        ("open_interest_value",),
        1,
        "log USD",
    )
    add(
        "oi_to_volume_24h",
        "derivatives",
        "Open interest notional / the coin's reported 24-hour traded volume (price_data_real.volume_24h, "
        "every venue's spot volume in USD; the settle currency is taken at par with USD).",
        ("open_interest_value", "volume_24h"),
        1,
        "days of volume",
    )
    add(
        "oi_to_market_cap",
        "derivatives",
        "Open interest notional / market cap: the share of the coin's value held in perpetual positions.",
        ("open_interest_value", "market_cap"),
        1,
        "fraction",
    )
    add(
        "oi_age_min",
        "derivatives",
        "Minutes between the open-interest observation used (open_interest_at) and the window's end.",
        ("open_interest_at",),
        1,
        "minutes",
    )
    add(
        "funding_rank",
        "derivatives",
        "Percentile rank (average ties; 1 = highest) of funding_rate_ann among the symbols with a value in the "
        "same window.",
        ("funding_rate_ann",),
        1,
        "fraction",
    )
    add(
        "mkt_funding_ann",
        "derivatives",
        "Open-interest-weighted mean funding_rate_ann of every symbol with both in the window (weights: "
        "open_interest_value); the same for every symbol, set also for a coin without a perpetual.",
        ("funding_rate_ann", "open_interest_value"),
        1,
        "fraction per year",
    )
    add(
        "funding_vs_mkt",
        "derivatives",
        "funding_rate_ann - mkt_funding_ann: the coin's funding against the market's.",
        ("funding_rate_ann", "open_interest_value"),
        1,
        "fraction per year",
    )

    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate feature names: {duplicates}")
    return tuple(specs)


FEATURES: tuple[FeatureSpec, ...] = _build()
FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURES)
FEATURES_BY_NAME: Mapping[str, FeatureSpec] = MappingProxyType({spec.name: spec for spec in FEATURES})

#: Features whose NULL is a normal value rather than missing data: sentiment scores and shares of a
#: symbol nobody wrote about, macro series that are not configured (or not published yet), derivatives
#: of a coin without a perpetual (or before its first derivatives window). Data-
#: quality checks on NULL ratios should leave these out (and look at rows with ``bars_missing == 0``).
SPARSE_FEATURES: frozenset[str] = frozenset(
    spec.name
    for spec in FEATURES
    if (spec.family == "sentiment" and not spec.name.startswith("sent_count_"))
    or spec.family in ("macro", "derivatives")
    or spec.name == "cs_rank_sent_mean_24h"
) | {"sent_count_surge_1h"}

#: Families whose lookback is counted in price bars (macro lookbacks are in days of publication,
#: derivatives lookbacks in ``derivatives_data`` windows).
_PRICE_FAMILIES = frozenset(FAMILIES) - {"macro", "sentiment", "calendar", "derivatives"}

#: The longest price lookback, the window included: the warm-up read is this minus one window.
PRICE_LOOKBACK_WINDOWS: int = max(s.lookback for s in FEATURES if s.family in _PRICE_FAMILIES)
#: The longest derivatives lookback (windows, the window included): the ``derivatives_data`` read.
DERIVATIVES_LOOKBACK_WINDOWS: int = max(s.lookback for s in FEATURES if s.family == "derivatives")
#: The longest derivatives lookback of the features that read every window (not the hourly funding samples).
DERIVATIVES_RECENT_WINDOWS: int = max(
    s.lookback
    for s in FEATURES
    if s.family == "derivatives" and not s.name.startswith(("funding_z_", "funding_ann_mean_"))
)
#: The longest sentiment lookback (windows, the window included).
SENTIMENT_LOOKBACK_WINDOWS: int = max(s.lookback for s in FEATURES if s.family == "sentiment")
#: How far back macro observations are read (days): CPI's year-on-year change needs a year plus its staleness.
MACRO_LOOKBACK_DAYS: int = 366 + max(s.max_age_days for s in MACRO_SERIES.values()) + 31


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for spec in FEATURES:
        digest.update(f"{spec.name}|{spec.family}|{spec.lookback}|{spec.unit}|{','.join(spec.inputs)}\n".encode())
    return digest.hexdigest()[:8]


#: Recorded on every row and in the asset's metadata (at most 32 characters).
FEATURE_SET_VERSION = f"{FEATURE_SET_MAJOR}+{_fingerprint()}"


def features_in_family(family: str) -> tuple[FeatureSpec, ...]:
    """The catalogued features of ``family``, in catalog order."""
    if family not in FAMILIES:
        raise KeyError(f"unknown feature family {family!r}")
    return tuple(spec for spec in FEATURES if spec.family == family)


def catalog_records() -> list[dict[str, object]]:
    """The catalog as plain records (for the API and the docs)."""
    return [
        {
            "name": s.name,
            "family": s.family,
            "description": s.description,
            "inputs": list(s.inputs),
            "lookback_windows": s.lookback,
            "unit": s.unit,
        }
        for s in FEATURES
    ]
