"""Guarded arithmetic shared by the feature families.

Every feature must be finite, with a finite gradient, for zero, constant and 1e6-scaled fields.
The rules, applied everywhere:

- a division by a scale uses a floor relative to that scale: ``eps_like(mean) = 1e-6 (1 + |mean|)``
  (absolute 1e-6 near zero, relative 1e-6 for large offsets);
- a square root gets its floor *inside* (``sqrt(v + ε²)``), so its gradient at 0 is finite;
  ``smooth_std`` subtracts the floor again so a zero variance gives exactly 0;
- powers above 2 are taken of standardised values, never of raw fields (a 1e6 field cubed or to
  the fourth power would lose float32 range);
- means over an empty axis (a second difference of a two-state series) are 0, not NaN.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: Relative floor of every scale (see the module docstring).
REL_EPS = 1e-6
#: Floor of dimensionless quantities of order 1 (fractions, correlations, standardised moments).
UNIT_EPS = 1e-12


def eps_like(mean: Tensor) -> Tensor:
    """The scale floor of a quantity whose mean is ``mean``: ``1e-6 (1 + |mean|)``, same shape."""
    return REL_EPS * (1.0 + mean.abs())


def floored_std(var: Tensor, eps: Tensor) -> Tensor:
    """``sqrt(var + eps²)``: a standard deviation that is never 0 (for standardising)."""
    return torch.sqrt(var + eps * eps)


def smooth_std(var: Tensor, eps: Tensor | float) -> Tensor:
    """``sqrt(var + eps²) − eps``: exactly 0 for a zero variance, gradient ≤ 1 / (2 eps)."""
    return torch.sqrt(var + eps * eps) - eps


def smooth_abs(x: Tensor, eps: Tensor | float) -> Tensor:
    """``sqrt(x² + eps²) − eps``: |x| with a continuous gradient at 0."""
    return torch.sqrt(x * x + eps * eps) - eps


def var_over(x: Tensor, dim: int | tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """(mean, population variance) over ``dim`` (correction 0: one element gives variance 0)."""
    mean = x.mean(dim, keepdim=True)
    var = ((x - mean) ** 2).mean(dim)
    return mean.reshape(var.shape), var


def std_over(x: Tensor, dim: int) -> Tensor:
    """Smooth population standard deviation over ``dim`` (0 for one element or a constant)."""
    mean, var = var_over(x, dim)
    return smooth_std(var, eps_like(mean))


def mean_or_zero(x: Tensor, dim: int = -1) -> Tensor:
    """Mean over ``dim``; 0 when that axis is empty (a difference of a too-short series)."""
    return x.sum(dim) / max(x.shape[dim], 1)


def ols_slope(y: Tensor) -> Tensor:
    """Least-squares slope of ``y [..., T]`` against t = 0 … T−1, units of y per step (0: T = 1)."""
    n = y.shape[-1]
    t = torch.arange(n, dtype=y.dtype, device=y.device)
    tc = t - t.mean()
    return (y * tc).sum(-1) / max(float((tc * tc).sum()), 1.0)


def soft_mean(values: Tensor, logits: Tensor, dim: int = -1) -> Tensor:
    """``Σ softmax(logits) · values`` over ``dim``: a differentiable stand-in for an argmax."""
    return (torch.softmax(logits, dim) * values).sum(dim)


def log_floor(x: Tensor, floor: Tensor | float) -> Tensor:
    """``log(x + floor)`` for x ≥ 0 (finite with a finite gradient at 0)."""
    return torch.log(x + floor)


LOG2 = math.log(2.0)
