"""SUMMARY family, drift part: how the field's norms drift over the window (32 per realization).

Input: the norms of a window's frames (``drift_norms`` of ``Frames`` with leading dims
``[B, M, T, C]``); output ``[B, M, 32]`` in the order of ``DRIFT_NAMES``: scale × norm ×
metric, computed per channel and averaged over C.

- scales: ``raw`` and ``lowpass`` (periodic Gaussian blur, σ = 2 pixels, applied in Fourier
  space and sampled on every second pixel: ``Frames.lowpass``). The original's third scale,
  highpass = raw − lowpass, is left out.
- norms per state (field units): ``l1`` mean |x|; ``l2`` RMS; ``linf`` a soft max of |x|: the
  softmax-weighted mean (temperature RMS/8) of |x| over the 4 smallest and 4 largest values,
  which hold the max (≤ max |x|, smooth where the max changes hands); ``tv`` mean |∂x| + |∂y|
  (periodic central differences). The histogram entropy of the original is left out.
- metrics over the T states of a norm series n(t), divided by its time mean n̄ (floored) so
  they are dimensionless: ``mean_delta`` mean Δn / n̄ per step; ``var_delta`` var Δn / n̄²;
  ``log_ratio`` log of n(T) / n(0) (each plus 1e-3 n̄); ``monotonicity`` mean tanh(Δn / κ), a
  soft mean sign with κ = 0.1 mean |Δn|.
"""

from __future__ import annotations

import torch
from torch import Tensor

from noa_core.features.frames import Frames
from noa_core.features.numerics import REL_EPS, eps_like, mean_or_zero

DRIFT_SCALES: tuple[str, ...] = ("raw", "lowpass")
DRIFT_NORMS: tuple[str, ...] = ("l1", "l2", "linf", "tv")
DRIFT_METRICS: tuple[str, ...] = ("mean_delta", "var_delta", "log_ratio", "monotonicity")
DRIFT_NAMES: tuple[str, ...] = tuple(
    f"drift_{s}_{n}_{m}" for s in DRIFT_SCALES for n in DRIFT_NORMS for m in DRIFT_METRICS
)

#: Std of the Gaussian low-pass, in pixels (the original's σ = 2).
LOWPASS_SIGMA_PX = 2.0
#: Temperature of the soft max of |x|, as a fraction of the frame's RMS.
LINF_TEMPERATURE = 1.0 / 8.0


def frame_norms(fr: Frames) -> Tensor:
    """``[..., 4]`` norms (l1, l2, linf, tv) of each frame, field units (tv: per pixel)."""
    rms = torch.sqrt(fr.energy + fr.eps * fr.eps)        # floored: never 0
    l1 = fr.x.abs().mean((-2, -1))
    # Soft max of |x| over the candidates for the max (the k smallest and k largest values).
    cand = fr.extremes.abs()
    soft = torch.softmax(cand / (LINF_TEMPERATURE * rms[..., None]), dim=-1)
    linf = (soft * cand).sum(-1)
    gx, gy = fr.grad
    tv = gx.abs().mean((-2, -1)) + gy.abs().mean((-2, -1))
    return torch.stack([l1, rms - fr.eps, linf, tv], dim=-1)


def drift_metrics(n: Tensor) -> Tensor:
    """``[..., 4]`` drift metrics of norm series ``n [..., T]`` (n ≥ 0), dimensionless."""
    nbar = n.mean(-1)
    nbar = nbar + eps_like(nbar)
    dn = torch.diff(n, dim=-1)
    mean_d = dn.mean(-1)
    var_d = ((dn - mean_d[..., None]) ** 2).mean(-1)
    off = 1e-3 * nbar
    log_ratio = torch.log((n[..., -1] + off) / (n[..., 0] + off))
    kappa = 0.1 * dn.abs().mean(-1) + REL_EPS * nbar
    mono = mean_or_zero(torch.tanh(dn / kappa[..., None]))
    return torch.stack([mean_d / nbar, var_d / nbar ** 2, log_ratio, mono], dim=-1)


def drift_norms(fr: Frames) -> Tensor:
    """``[..., 2, 4]``: ``frame_norms`` of each frame at the scales of ``DRIFT_SCALES``."""
    return torch.stack([frame_norms(fr), frame_norms(fr.lowpass(LOWPASS_SIGMA_PX))], dim=-2)


def drift_features(norms: Tensor) -> Tensor:
    """``[B, M, 32]`` drift features of a window's ``drift_norms [B, M, T, C, 2, 4]``."""
    series = norms.permute(0, 1, 3, 4, 5, 2)            # [B, M, C, scale, norm, T]
    return drift_metrics(series).mean(2).flatten(-3)    # [B, M, 2·4·4], scale-major
