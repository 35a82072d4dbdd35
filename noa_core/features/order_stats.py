"""Differentiable quantiles of many small rows, fast on CPU.

``torch.sort`` on CPU costs about 50 ns per element on rows of a thousand values (the spatial
quantiles of every frame would dominate the feature time); NumPy's SIMD sort is about ten times
faster. ``quantiles`` therefore sorts without autograd (NumPy on CPU, ``torch.sort`` elsewhere;
the permutation only when a gradient is wanted) and defines the gradient itself: a quantile is
a linear interpolation of two order statistics, and the derivative of an order statistic with
respect to the row is the indicator of the element at that rank (as for ``torch.quantile``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor


def _sort(x: Tensor, with_indices: bool) -> tuple[Tensor, Tensor | None]:
    """Sorted values of ``x`` along the last dim, and the sorting permutation if asked."""
    x = x.detach()
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        a = x.numpy()
        if not with_indices:
            return torch.from_numpy(np.sort(a, axis=-1)), None
        idx = np.argsort(a, axis=-1)
        return torch.from_numpy(np.take_along_axis(a, idx, axis=-1)), torch.from_numpy(idx)
    srt = torch.sort(x, dim=-1)
    return srt.values, (srt.indices if with_indices else None)


def _ranks(n: int, qs: tuple[float, ...]) -> tuple[list[int], list[int], list[float]]:
    """Lower and upper ranks and the interpolation weight of each level (exact ranks snapped)."""
    pos = [q * (n - 1) for q in qs]
    pos = [float(round(p)) if abs(p - round(p)) < 1e-9 else p for p in pos]
    lo = [int(np.floor(p)) for p in pos]
    hi = [min(n - 1, v + 1) for v in lo]
    return lo, hi, [p - v for p, v in zip(pos, lo, strict=True)]


class _Quantiles(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, qs: tuple[float, ...]) -> Tensor:
        srt, order = _sort(x, with_indices=ctx.needs_input_grad[0])
        lo, hi, frac = _ranks(x.shape[-1], qs)
        f = torch.tensor(frac, dtype=x.dtype, device=x.device)
        if order is not None:
            # Pixel index of each order statistic used: the gradient goes there.
            ctx.save_for_backward(order[..., lo].to(x.device), order[..., hi].to(x.device), f)
            ctx.n = x.shape[-1]
        return srt[..., lo] * (1 - f) + srt[..., hi] * f

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None]:
        i_lo, i_hi, f = ctx.saved_tensors
        gx = grad.new_zeros((*grad.shape[:-1], ctx.n))
        gx.scatter_add_(-1, i_lo, grad * (1 - f))
        gx.scatter_add_(-1, i_hi, grad * f)
        return gx, None


def quantiles(x: Tensor, qs: tuple[float, ...]) -> Tensor:
    """Quantiles ``qs`` (linear interpolation, as ``torch.quantile``) of ``x [..., N]``.

    Returns ``[..., len(qs)]``; ``q = 0`` and ``q = 1`` give the min and the max.
    """
    if not qs or any(not 0.0 <= q <= 1.0 for q in qs):
        raise ValueError(f"quantiles must lie in [0, 1], got {qs}")
    return _Quantiles.apply(x, tuple(float(q) for q in qs))
