"""SUMMARY family, trajectory part: statistics of one realization's time series (15 each).

Input: the series of a window's frames (``realization_series``, from ``[B, M, T, C]``); output
``[B, M, 15]`` in the order of ``TEMPORAL_SUMMARY_NAMES``, computed per channel and averaged
over C. T ≥ 2 states; time is in steps (one update).

Series per realization and channel: the spatial mean s(t), the energy E(t) = mean x² and the
spatial variance V(t). Features with field units are divided by the realization's RMS
``level = sqrt(mean_t E)`` (floored), so they are dimensionless and a 1e6-scaled field gives
the same values. Counts and first-passage times of the original are replaced by smooth
relaxations (tanh/sigmoid soft signs and a soft survival product), so every feature has a
gradient with respect to the trajectory. Features that need a longer series than the window
has (a second difference of two states, an ACF lag of three) are 0 rather than NaN.

Left out from the original: the dominant temporal frequency and period (an argmax; the period is
its inverse), the oscillation amplitude, burst counts and most rolling windows (one kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from noa_core.features.numerics import (
    LOG2,
    REL_EPS,
    UNIT_EPS,
    eps_like,
    mean_or_zero,
    ols_slope,
    smooth_std,
)

TEMPORAL_SUMMARY_NAMES: tuple[str, ...] = (
    "energy_growth_rate",      # OLS slope of log E per step
    "energy_acceleration",     # mean |Δ² log E| per step²
    "variance_growth_rate",    # OLS slope of log V per step
    "acf_decay_time",          # soft count of ACF lags (≤ 20) of s above 1/e, in steps
    "lyapunov_proxy",          # mean log |Δs| / level
    "smoothness",              # mean |Δ² s| / level
    "final_initial_ratio",     # s(T)·s(0) / (s(0)² + (0.1 level)²): s(T)/s(0), guarded
    "trend_r2",                # R² of a linear fit of s on t
    "detrended_variance",      # residual variance of that fit / level²
    "sign_switch_rate",        # soft rate of direction changes of s, per step
    "zero_crossing_rate",      # soft rate of crossings of s through its mean, per step
    "spike_fraction",          # soft fraction of steps with s above mean + 2 std
    "time_to_half_energy",     # soft first time E ≤ E(0)/2, as a fraction of the window (1: never)
    "time_to_double_energy",   # soft first time E ≥ 2 E(0), as a fraction of the window
    "rolling_std_mean",        # mean rolling std of s (window max(2, T/10)) / level
)

ACF_MAX_LAG = 20
# Widths of the soft indicators: sigmoid/tanh transition widths relative to the natural scale.
_SOFT = 0.1
_ACF_SOFT = 0.05


@dataclass
class RealizationSeries:
    """Series of each realization and channel, ``[B, M, C, T]``, and its RMS ``level [B, M, C]``."""

    s: Tensor        # spatial mean (field units)
    energy: Tensor   # mean x² (field units²)
    var: Tensor      # spatial variance (field units²)
    eps: Tensor      # scale floor [B, M, C] (field units)
    level: Tensor    # sqrt(mean_t E + eps²) (field units), never 0


def realization_series(mean: Tensor, energy: Tensor, var: Tensor) -> RealizationSeries:
    """The per-realization series of the frames' spatial mean, mean square and variance, each
    ``[B, M, T, C]`` (``Frames.mean``, ``.energy``, ``.var``)."""
    s = mean.transpose(-1, -2)
    energy = energy.transpose(-1, -2)
    eps = eps_like(s.mean(-1))
    level = torch.sqrt(energy.mean(-1) + eps * eps)
    return RealizationSeries(s, energy, var.transpose(-1, -2), eps, level)


def _acf_decay(d: Tensor, floor: Tensor) -> Tensor:
    """Soft count of lags 1…L (L = min(20, T−2)) where the ACF of ``d [..., T]`` exceeds 1/e."""
    t = d.shape[-1]
    lags = min(ACF_MAX_LAG, t - 2)
    if lags < 1:
        return torch.zeros_like(d[..., 0])
    n = 2 * t  # zero-padded: a linear, not circular, autocovariance
    spec = torch.view_as_real(torch.fft.rfft(d, n=n))
    acov = torch.fft.irfft(spec[..., 0] ** 2 + spec[..., 1] ** 2, n=n)[..., : lags + 1] / t
    acf = acov[..., 1:] / (acov[..., :1] + floor[..., None] ** 2)
    return torch.sigmoid((acf - math.exp(-1.0)) / _ACF_SOFT).sum(-1)


def _soft_crossings(x: Tensor, width: Tensor) -> Tensor:
    """Soft fraction of consecutive pairs of ``x [..., T]`` with opposite signs."""
    th = torch.tanh(x / width[..., None])
    return mean_or_zero(0.5 * (1.0 - th[..., :-1] * th[..., 1:]))


def _time_to(log_ratio: Tensor) -> Tensor:
    """Mean soft survival of ``log_ratio [..., T−1] < 0`` over the window (1: never crossed)."""
    survival = torch.exp(torch.cumsum(F.logsigmoid(-log_ratio / _SOFT), dim=-1))
    return survival.mean(-1)


def series_features(ser: RealizationSeries) -> Tensor:
    """``[B, M, C, 15]`` series statistics per realization and channel."""
    s, level = ser.s, ser.level
    t = s.shape[-1]
    tiny = REL_EPS * level                              # dimension of s, never 0
    e_floor = (ser.eps * ser.eps)[..., None]
    log_e = torch.log(ser.energy + e_floor)
    log_v = torch.log(ser.var + e_floor)
    d = s - s.mean(-1, keepdim=True)
    ds = torch.diff(s, dim=-1)
    dds = torch.diff(s, n=2, dim=-1) if t > 2 else s[..., :0]
    ddlog_e = torch.diff(log_e, n=2, dim=-1) if t > 2 else log_e[..., :0]

    lyap = 0.5 * mean_or_zero(torch.log((ds / level[..., None]) ** 2 + UNIT_EPS))
    ratio = s[..., -1] * s[..., 0] / (s[..., 0] ** 2 + (0.1 * level) ** 2)

    tc = torch.arange(t, dtype=s.dtype, device=s.device)
    tc = tc - tc.mean()
    stt = float((tc * tc).sum())
    cov = (d * tc).sum(-1)
    sdd = (d * d).sum(-1)
    r2 = cov * cov / (stt * (sdd + t * tiny * tiny))
    detrended = (sdd - cov * cov / stt).clamp_min(0.0) / t / level ** 2

    sig = torch.sqrt(sdd / t + tiny * tiny)            # std of s over time, floored
    switch = _soft_crossings(ds, _SOFT * ds.abs().mean(-1) + tiny)
    zero_cross = _soft_crossings(d, _SOFT * sig)
    spikes = torch.sigmoid((d - 2.0 * sig[..., None]) / (_SOFT * sig[..., None])).mean(-1)

    rel = log_e[..., 1:] - log_e[..., :1]
    half = _time_to(-(rel + LOG2))
    double = _time_to(rel - LOG2)

    w = max(2, t // 10)
    win = s.unfold(-1, w, 1)
    wmean = win.mean(-1, keepdim=True)
    rolling = smooth_std(((win - wmean) ** 2).mean(-1), tiny[..., None]).mean(-1) / level

    return torch.stack([
        ols_slope(log_e), mean_or_zero(ddlog_e.abs()), ols_slope(log_v),
        _acf_decay(d, tiny), lyap, mean_or_zero(dds.abs()) / level, ratio, r2, detrended,
        switch, zero_cross, spikes, half, double, rolling,
    ], dim=-1)


def temporal_summary_features(ser: RealizationSeries) -> Tensor:
    """``[B, M, 15]``: ``series_features`` averaged over channels."""
    return series_features(ser).mean(-2)
