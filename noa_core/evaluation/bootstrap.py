"""Seeded percentile-bootstrap confidence intervals over test operators.

Resample b draws N operator indices with replacement (``numpy.random.default_rng(seed)``); the
statistic is recomputed on each resample and the interval is the (1 − level)/2 and
(1 + level)/2 quantiles of the B values. Paired statistics (a ratio of two errors, a contingency
of two labellings) use the same indices on both sides. Same seed, same intervals.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """Indices [B, n] of ``resamples`` draws of n operators with replacement."""
    if n < 1:
        raise ValueError("the bootstrap needs at least one sample")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _interval(values: np.ndarray, level: float) -> list[float] | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def mean_ci(per_sample: np.ndarray, idx: np.ndarray, level: float) -> list[float] | None:
    """Interval of ``mean_i x_i`` from per-sample values x [N] and indices [B, N]."""
    return _interval(np.asarray(per_sample, np.float64)[idx].mean(1), level)


def subset_mean_ci(per_sample: np.ndarray, member: np.ndarray, idx: np.ndarray, level: float
                   ) -> list[float] | None:
    """Interval of the mean of x over a subset (e.g. one update policy), from the same
    resamples [B, N] as the whole: each resample's mean over its drawn members (resamples
    that drew none are left out). x [N], member [N] bool."""
    values = np.asarray(per_sample, np.float64)[idx]
    inside = np.asarray(member, bool)[idx]
    counts = inside.sum(1)
    sums = np.where(inside, values, 0.0).sum(1)
    return _interval(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), level)


def ratio_ci(num: np.ndarray, den: np.ndarray, idx: np.ndarray, level: float
             ) -> list[float] | None:
    """Interval of ``mean_i a_i / mean_i b_i`` (paired: the same operators on both sides)."""
    a = np.asarray(num, np.float64)[idx].mean(1)
    b = np.asarray(den, np.float64)[idx].mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _interval(np.where(b > 0, a / b, np.nan), level)


def statistic_ci(statistic: Callable[[np.ndarray], float | None], idx: np.ndarray,
                 level: float) -> list[float] | None:
    """Interval of a set-level statistic f(rows) recomputed on each resample's rows [N]."""
    values = [statistic(rows) for rows in idx]
    return _interval(np.array([np.nan if v is None else v for v in values], np.float64), level)
