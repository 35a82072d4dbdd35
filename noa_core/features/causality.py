"""SUMMARY family, causality part: time asymmetry and transport (4 per realization).

Input: per-frame quantities of a window ``[B, M, T, C, H, W]`` (``features.frame_stats``);
output ``[B, M, 4]`` in the order of ``CAUSALITY_NAMES``, all dimensionless.

- ``irreversibility``: skewness of the increments Δs of the spatial mean, ⟨Δs³⟩ / ⟨Δs²⟩^{3/2}
  (the original's ⟨Δs³⟩_fwd − ⟨Δs³⟩_rev is 2⟨Δs³⟩, since reversing time negates Δs), averaged
  over channels.
- ``flow_magnitude``, ``flow_anisotropy``: with c_x = corr(∂x u(t), u(t+1)) and c_y likewise,
  averaged over t (an advected field u(t+1) ≈ u − v·∇u correlates with −v·∇u), the magnitude
  |(c_x, c_y)| and (c_x² − c_y²) / (c_x² + c_y²); averaged over channels.
- ``lag_asymmetry_max``: max over channel pairs and lags 1–3 of |corr(s_i(t), s_j(t+k)) −
  corr(s_j(t), s_i(t+k))|. Its mean over pairs is structurally 0 (the matrix is antisymmetric)
  and is left out; so are the prediction-error ratio and difference (forward and backward errors
  are equal: constant 1 and 0). For C = 1 there is no pair: structurally 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from noa_core.features.fourier import BASIS_COLUMNS, power_basis
from noa_core.features.numerics import UNIT_EPS, eps_like
from noa_core.features.temporal_summary import RealizationSeries

CAUSALITY_NAMES: tuple[str, ...] = (
    "irreversibility",
    "flow_magnitude",
    "flow_anisotropy",
    "lag_asymmetry_max",
)

MAX_LAG = 3


def _irreversibility(ser: RealizationSeries) -> Tensor:
    """``[B, M]``: skewness of Δs, averaged over channels."""
    d = torch.diff(ser.s, dim=-1) / ser.level[..., None]
    m2 = (d * d).mean(-1)
    m3 = (d ** 3).mean(-1)
    return (m3 / (m2 + UNIT_EPS) ** 1.5).mean(-1)


def flow_dots(spectrum: Tensor, shape: tuple[int, int]) -> Tensor:
    """``[B, M, T−1, C, 2]``: mean(∂x u(t) · u(t+1)) and mean(∂y u(t) · u(t+1)) of consecutive
    states, from their spectra ``[B, M, T, C, H, W//2+1]`` (``Frames.spectrum`` of fields of
    ``shape`` (H, W); field units² per pixel)."""
    # In Fourier space (Parseval): Σ ∂x u(t) · u(t+1) = Σ_k weight·sin(2π f_x)·Im(conj X_t · X_t+1)
    # since ∂x ↔ i·sin(2π f_x); one half-size product serves both directions.
    h, w = shape
    a, b = spectrum[:, :, :-1], spectrum[:, :, 1:]
    cross = a.real * b.imag - a.imag * b.real                  # Im(conj(a) · b)
    basis = power_basis(h, w, cross.dtype, cross.device)
    cols = [BASIS_COLUMNS.index("dx1"), BASIS_COLUMNS.index("dy1")]
    return (cross.flatten(-2) @ basis[:, cols]) / (h * w)


def _flow(dots: Tensor, grad_ms: Tensor, std: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    """``[B, M]`` each: flow magnitude and anisotropy, averaged over channels (inputs: see
    ``causality_features``)."""
    floor = (eps * eps)[:, :, :-1]
    rms_g = torch.sqrt(grad_ms[:, :, :-1] + floor[..., None])
    corr = dots / (rms_g * std[:, :, 1:, :, None])              # corr(∂u(t), u(t+1))
    cx, cy = corr.mean(2).unbind(-1)                            # [B, M, C], mean over t
    sq = cx * cx + cy * cy
    magnitude = torch.sqrt(sq + UNIT_EPS) - math.sqrt(UNIT_EPS)
    anisotropy = (cx * cx - cy * cy) / (sq + UNIT_EPS)
    return magnitude.mean(-1), anisotropy.mean(-1)


def _lag_asymmetry(ser: RealizationSeries) -> Tensor:
    """``[B, M]``: max |lagged cross-correlation asymmetry| over channel pairs and lags."""
    s = ser.s                                                   # [B, M, C, T]
    c, t = s.shape[-2], s.shape[-1]
    if c == 1:
        return 0.0 * s.mean((-2, -1))
    d = s - s.mean(-1, keepdim=True)
    tiny = 1e-6 * ser.level[..., None]
    u = d / torch.sqrt((d * d).mean(-1, keepdim=True) + tiny * tiny)
    iu = torch.triu_indices(c, c, 1, device=s.device)
    per_lag = []
    for k in range(1, min(MAX_LAG, t - 1) + 1):                # lags, not time steps
        x = u[..., :-k] @ u[..., k:].transpose(-1, -2) / t     # [B, M, C, C]
        a = x - x.transpose(-1, -2)
        per_lag.append(a[..., iu[0], iu[1]].abs())
    return torch.cat(per_lag, dim=-1).amax(-1)


def causality_features(ser: RealizationSeries, dots: Tensor, grad_ms: Tensor,
                       std: Tensor) -> Tensor:
    """``[B, M, 4]`` causality features of a window: its ``realization_series``, the
    ``flow_dots [B, M, T−1, C, 2]`` of its states, and per frame ``[B, M, T, C]`` the mean
    squares of ∂x, ∂y (``grad_ms [..., 2]``, field units² per pixel²) and ``Frames.std``."""
    magnitude, anisotropy = _flow(dots, grad_ms, std, eps_like(ser.s.transpose(-1, -2)))
    return torch.stack([_irreversibility(ser), magnitude, anisotropy, _lag_asymmetry(ser)],
                       dim=-1)
