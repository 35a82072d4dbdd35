"""TEMPORAL family, cross-channel part: the C × C correlation of one state (5 per state).

Input: standardised fields ``z [..., C, H, W]`` (``Frames.z``); output ``[..., 5]`` in the order
of ``CROSS_CHANNEL_NAMES``. All dimensionless.

R is the channel correlation matrix with its diagonal set to 1 (a constant channel then
correlates 0 with the others instead of dividing by 0). It is positive semi-definite, trace C.

- The top eigenvalue is ``tr(R³³) / tr(R³²)``, the λ³²-weighted mean of the eigenvalues: equal to
  λ_max when it dominates and exact when eigenvalues tie, where ``eigvalsh``'s gradient is
  infinite. Computed by repeated squaring with trace normalisation (no overflow for any C).
- The participation ratio ``(Σλ)² / Σλ² = C² / ‖R‖²_F`` needs no eigenvalues.

For C = 1 the features are the constants of a channel perfectly correlated with itself
(correlation 1, std 0, λ_max 1, ratio 1): structurally flat. For C = 2 there is one pair, so the
std over pairs is 0. Left out from the original: the trace (always C), the 2nd/3rd eigenvalues
and the condition number (undefined gradients at ties), and the histogram mutual information.
"""

from __future__ import annotations

import torch
from torch import Tensor

from noa_core.features.numerics import smooth_std

CROSS_CHANNEL_NAMES: tuple[str, ...] = (
    "cross_corr_mean",          # mean off-diagonal correlation
    "cross_corr_min",           # smallest off-diagonal correlation
    "cross_corr_std",           # std of the off-diagonal correlations
    "cross_top_eigenvalue",     # λ_max of R, in [1, C]
    "cross_participation",      # (Σλ)² / Σλ², in [1, C]
)

#: Squarings for the top eigenvalue (R^(2^k)); 5 gives the λ³²-weighted mean.
_SQUARINGS = 5


def correlation_matrix(z: Tensor) -> Tensor:
    """``[..., C, C]`` correlation of standardised channels ``z [..., C, H, W]``, diagonal 1."""
    c = z.shape[-3]
    zf = z.flatten(-2)
    r = zf @ zf.transpose(-1, -2) / zf.shape[-1]
    eye = torch.eye(c, dtype=z.dtype, device=z.device)
    return r * (1.0 - eye) + eye


def top_eigenvalue(r: Tensor) -> Tensor:
    """``tr(R·P) / tr(P)`` with ``P ∝ R^(2^k)``: a smooth λ_max of PSD ``r [..., C, C]``."""
    p = r / r.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    for _ in range(_SQUARINGS):
        p = p @ p
        p = p / p.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    return (r * p.transpose(-1, -2)).sum((-2, -1)) / p.diagonal(dim1=-2, dim2=-1).sum(-1)


def cross_channel_features(z: Tensor) -> Tensor:
    """``[..., 5]`` cross-channel statistics of each state (order ``CROSS_CHANNEL_NAMES``)."""
    c = z.shape[-3]
    lead = z.shape[:-3]
    if c == 1:
        const = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0], dtype=z.dtype, device=z.device)
        # z · 0 keeps the result attached to the graph (a zero, finite gradient).
        return const.expand(*lead, 5) + 0.0 * z.mean((-3, -2, -1))[..., None]
    r = correlation_matrix(z)
    iu = torch.triu_indices(c, c, 1, device=z.device)
    pairs = r[..., iu[0], iu[1]]
    p_mean = pairs.mean(-1)
    p_var = ((pairs - p_mean[..., None]) ** 2).mean(-1)
    participation = c * c / (r * r).sum((-2, -1))
    return torch.stack([p_mean, pairs.amin(-1), smooth_std(p_var, 1e-6), top_eigenvalue(r),
                        participation], dim=-1)
