"""TEMPORAL family, spatial part: one-frame statistics of a field (15 per frame and channel).

Input: ``Frames`` of fields ``[..., H, W]``; output ``[..., 15]`` in the order of
``SPATIAL_NAMES``. Units: field units unless stated; derivatives are periodic central
differences per pixel (``noa_core.features.frames``).

Left out as structurally constant (``spinlock_vqvae.md`` §2.2): the mean x/y gradient and the
mean Laplacian (0 under periodic boundaries), and the Laplacian energy (its mean square, equal to
``laplacian_std²`` once the mean is 0). The variance and range are one-to-one with std, min, max.
"""

from __future__ import annotations

import torch
from torch import Tensor

from noa_core.features.frames import Frames
from noa_core.features.numerics import smooth_std

SPATIAL_NAMES: tuple[str, ...] = (
    "spatial_mean",           # field units
    "spatial_std",            # field units (smooth: exactly 0 for a constant field)
    "spatial_skewness",       # mean z³ of the standardised field z
    "spatial_kurtosis",       # excess: mean z⁴ − 3
    "spatial_min",
    "spatial_max",
    "spatial_iqr",            # p75 − p25
    "spatial_mad",            # mean absolute deviation from the mean
    "spatial_p05",
    "spatial_p50",
    "spatial_p95",
    "grad_mag_mean",          # |∇x|, field units per pixel
    "grad_mag_std",
    "grad_mag_max",
    "laplacian_std",          # periodic 5-point Laplacian, field units per pixel²
)


def spatial_features(fr: Frames) -> Tensor:
    """``[..., 15]`` spatial statistics of each frame (order ``SPATIAL_NAMES``)."""
    eps = fr.eps
    n = fr.pixels
    z = fr.z
    z2 = z * z                       # products, not pow: pow(·, 3) is several times slower
    skew = (z2 * z).mean((-2, -1))
    kurt = torch.linalg.vector_norm(z2, 2, dim=(-2, -1)) ** 2 / n - 3.0
    vmin, p05, p25, p50, p75, p95, vmax = fr.quantiles.unbind(-1)
    mad = fr.centred.abs().mean((-2, -1))
    gx, gy = fr.grad
    e = eps[..., None, None]
    # |∇x|² + ε² then its root: a finite gradient where ∇x = 0 (ε is removed from the stats).
    g2 = torch.addcmul(e * e, gx, gx).addcmul_(gy, gy)
    g = torch.sqrt(g2)
    g_mean = g.mean((-2, -1))
    g_var = (g2.mean((-2, -1)) - g_mean * g_mean).clamp_min(0.0)
    lap_ms = fr.power_sums["laplacian2"] / n        # Parseval; the Laplacian's mean is 0
    return torch.stack([
        fr.mean, smooth_std(fr.var, eps), skew, kurt, vmin, vmax, p75 - p25, mad,
        p05, p50, p95, g_mean - eps, smooth_std(g_var, eps), g.amax((-2, -1)) - eps,
        smooth_std(lap_ms, eps),
    ], dim=-1)
