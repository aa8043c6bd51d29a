"""Fixed-window numeric kernels over a (symbol x 5-minute window) grid.

Every kernel computes a target window's value from a fixed number of bars ending at it, with
element-wise NumPy operations applied in a fixed order (tap by tap, symbol by symbol). So a value
depends only on its own trailing bars, bit for bit: computing a window alone, inside a backfill
range of any length, or again later gives identical floats. Running sums, cumulative sums,
whole-series recursions and NumPy reductions over axes whose length or layout changes with the
range would not (their rounding, and for EMAs their value, depends on where the series starts),
so none is used on floats. Integer counts (missing bars) use prefix sums: integers are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

NAN = np.nan


@dataclass(frozen=True)
class Block:
    """Target columns ``[lo, hi)`` of a grid whose first ``lo`` columns are warm-up history."""

    lo: int
    hi: int

    @property
    def n(self) -> int:
        """Number of target windows in the block."""
        return self.hi - self.lo

    def at(self, values: np.ndarray, lag: int = 0) -> np.ndarray:
        """The value ``lag`` windows before each target (a view; ``values`` is (..., T))."""
        if lag > self.lo:
            raise IndexError(f"lag {lag} reaches before the grid (warm-up {self.lo})")
        return values[..., self.lo - lag : self.hi - lag]

    def window(self, values: np.ndarray, length: int) -> np.ndarray:
        """The last ``length`` values of each target as a (..., n, length) view, oldest first."""
        if length - 1 > self.lo:
            raise IndexError(f"window {length} reaches before the grid (warm-up {self.lo})")
        span = values[..., self.lo - length + 1 : self.hi]
        return np.lib.stride_tricks.sliding_window_view(span, length, axis=-1)


def nan_prefix(values: np.ndarray) -> np.ndarray:
    """Prefix counts of missing values along the last axis, with a leading 0 column (int32)."""
    missing = np.isnan(values).astype(np.int32)
    prefix = np.zeros(values.shape[:-1] + (values.shape[-1] + 1,), dtype=np.int32)
    np.cumsum(missing, axis=-1, out=prefix[..., 1:])
    return prefix


def missing_in_window(block: Block, prefix: np.ndarray, length: int) -> np.ndarray:
    """How many of the last ``length`` values (the target's included) are missing (exact integers)."""
    return prefix[..., block.lo + 1 : block.hi + 1] - prefix[..., block.lo + 1 - length : block.hi + 1 - length]


class MissingCounts:
    """Missing-bar counts of named grid arrays over trailing windows (cached per block)."""

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        self._prefix = {name: nan_prefix(values) for name, values in arrays.items()}
        self._cache: dict[tuple, np.ndarray] = {}

    def complete(self, block: Block, names: Iterable[str], length: int) -> np.ndarray:
        """True where none of the arrays ``names`` misses a value in the last ``length`` windows."""
        key = (block.lo, block.hi, tuple(sorted(names)), length)
        cached = self._cache.get(key)
        if cached is None:
            first, *others = key[2]
            ok = missing_in_window(block, self._prefix[first], length) == 0
            for name in others:
                ok = ok & (missing_in_window(block, self._prefix[name], length) == 0)
            cached = self._cache[key] = ok
        return cached

    def count(self, block: Block, name: str, length: int) -> np.ndarray:
        """Missing values of ``name`` among the last ``length`` windows (float array)."""
        return missing_in_window(block, self._prefix[name], length).astype(np.float64)

    def forget(self, block: Block) -> None:
        """Drop the cached masks of ``block`` (call when a block is done)."""
        for key in [k for k in self._cache if k[:2] == (block.lo, block.hi)]:
            del self._cache[key]


def rolling_sums(
    terms: Callable[[int], Mapping[str, np.ndarray]], windows: Sequence[int]
) -> dict[int, dict[str, np.ndarray]]:
    """``sum over k < d of terms(k)`` for every ``d`` in ``windows``, accumulated k = 0, 1, ... in order.

    ``terms(k)`` gives named arrays for the tap ``k`` windows back; the sums of all names share
    the taps. NaN in any tap propagates into the sums that include it.
    """
    wanted = sorted(set(windows))
    acc: dict[str, np.ndarray] = {}
    out: dict[int, dict[str, np.ndarray]] = {}
    for k in range(wanted[-1]):
        for name, value in terms(k).items():
            current = acc.get(name)
            if current is None:
                acc[name] = np.array(value, dtype=np.float64, copy=True)
            else:
                current += value
        if k + 1 in wanted:
            out[k + 1] = {name: value.copy() for name, value in acc.items()}
    return out


def rolling_extreme(
    block: Block, values: np.ndarray, windows: Sequence[int], *, largest: bool
) -> dict[int, np.ndarray]:
    """Rolling max (``largest``) or min of ``values`` over each window length (NaN propagates)."""
    wanted = sorted(set(windows))
    combine = np.maximum if largest else np.minimum
    acc = np.array(block.at(values, 0), dtype=np.float64, copy=True)
    out: dict[int, np.ndarray] = {}
    for k in range(wanted[-1]):
        if k:
            combine(acc, block.at(values, k), out=acc)
        if k + 1 in wanted:
            out[k + 1] = acc.copy()
    return out


def fir(block: Block, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_j weights[j] * value(lag = len(weights) - 1 - j)``: weights run oldest to newest.

    Taps whose weight is exactly zero are skipped (they may reach before the indicator's own
    bars); callers mask incomplete histories themselves.
    """
    length = len(weights)
    acc = np.zeros(np.broadcast_shapes(block.at(values).shape), dtype=np.float64)
    for j, weight in enumerate(weights):
        if weight != 0.0:
            acc += weight * block.at(values, length - 1 - j)
    return acc


def sample_var(s1: np.ndarray, s2: np.ndarray, n: int) -> np.ndarray:
    """Sample variance from the sum and sum of squares of ``n`` (shifted) values, floored at 0."""
    return np.maximum((s2 - s1 * s1 / n) / (n - 1), 0.0)


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, NaN where ``den`` is zero or missing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), NAN)


def row_sums(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum over symbols (axis 0) of the valid values, and their count, symbol by symbol in order."""
    total = np.zeros(values.shape[1:], dtype=np.float64)
    count = np.zeros(values.shape[1:], dtype=np.float64)
    for i in range(values.shape[0]):
        total += np.where(valid[i], values[i], 0.0)
        count += valid[i]
    return total, count


def cross_section_rank(values: np.ndarray) -> np.ndarray:
    """Percentile rank of each symbol's value among the symbols with a value, per window.

    As ``pandas.Series.rank(pct=True)``: ties get their average rank; 1 is the highest.
    """
    valid = ~np.isnan(values)
    less = np.zeros(values.shape, dtype=np.int64)
    equal = np.zeros(values.shape, dtype=np.int64)
    for j in range(values.shape[0]):
        other = values[j][None, :]
        ok = valid[j][None, :]
        less += (other < values) & ok
        equal += (other == values) & ok
    count = valid.sum(axis=0)[None, :]
    rank = less + (equal + 1) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(valid, rank / np.maximum(count, 1), NAN)


def cross_section_zscore(values: np.ndarray, min_count: int = 3) -> np.ndarray:
    """(x - mean) / sample std across the symbols with a value, per window (two-pass, symbol order)."""
    valid = ~np.isnan(values)
    total, count = row_sums(values, valid)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
        squares, _ = row_sums((values - mean) ** 2, valid)
        std = np.sqrt(squares / (count - 1))
        z = (values - mean) / std
    ok = valid & (count >= min_count) & (std > 0)
    return np.where(ok, z, NAN)
