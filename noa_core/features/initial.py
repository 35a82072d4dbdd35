"""INITIAL family: 14 hand-made features of the initial condition.

Input: ``x0 [B, C, H, W]``; the features describe the channel-mean field ``u [B, H, W]``
standardised to ``z = (u − mean) / std`` (so all 14 are dimensionless and scale-free, and a
constant field gives finite values). Output ``[B, 14]`` in the order of ``INITIAL_NAMES``.
Neighbourhoods are periodic; radial spectral bins are integer wavenumbers in cycles per domain
side, k = 1 … min(H, W)/2.

Smooth stand-ins replace the original's counts, masks and argmaxes so every feature has a
gradient: soft local maxima (sigmoid comparisons with the 8 neighbours), a soft top-decile mass
fraction for the dilated largest cluster, a softmax over log power for the peak bin, a
Gaussian-kernel histogram for the entropy, and sigmoid binarisation for transitions. The
original's "fraction above the median" is 0.5 by construction; it is replaced by the soft
fraction above the mean (an asymmetry measure).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from noa_core.features.frames import Frames
from noa_core.features.numerics import UNIT_EPS, soft_mean
from noa_core.features.order_stats import quantiles

INITIAL_NAMES: tuple[str, ...] = (
    # spatial
    "ic_peak_density",          # soft local maxima above the median, per pixel
    "ic_mass_concentration",    # share of Σ|z| in the (soft) top decile of |z|
    "ic_morans_i",              # Moran's I, 8-neighbour weights
    "ic_centroid_distance",     # |z|-weighted centroid to grid centre, fraction of the side
    # spectral
    "ic_spectral_peak_bin",     # soft argmax radial wavenumber / number of bins
    "ic_spectral_mean_bin",     # power-weighted mean wavenumber / number of bins
    "ic_spectral_slope",        # log-log slope of radial power, softly clipped to ±5
    # information
    "ic_entropy",               # soft 32-bin histogram entropy of z over [−4, 4] / log 32
    "ic_patch_variance_var",    # variance of the variances of 8×8 patches of z
    "ic_transition_rate",       # soft rate of above/below-median changes between neighbours
    "ic_lag1_autocorr",         # |lag-1 autocorrelation along x|
    # morphology
    "ic_frac_above_mean",       # soft fraction of pixels above the mean
    "ic_sobel_mean",            # mean Sobel gradient magnitude of z, per pixel
    "ic_rotation_symmetry",     # mean |corr(z, z rotated by 90°, 180°, 270°)|
)

_TAU = 0.1            # width of the soft comparisons, in standard deviations
_SPECTRAL_TAU = 0.1   # soft argmax over log power: weights ∝ power^10
_HIST_BINS = 32
_HIST_RANGE = 4.0
_SLOPE_CLIP = 5.0
_PATCH = 8
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _neighbours(z: Tensor) -> dict[tuple[int, int], Tensor]:
    """``{(dy, dx): z(y + dy, x + dx)}`` for the 8 periodic neighbours of ``z [B, H, W]``."""
    return {(dy, dx): torch.roll(z, shifts=(-dy, -dx), dims=(-2, -1)) for dy, dx in _NEIGHBOURS}


@lru_cache(maxsize=8)
def _radial_bins(h: int, w: int, dtype: torch.dtype, device: torch.device
                 ) -> tuple[Tensor, Tensor]:
    """``(masks [H·(W//2+1), K], k [K])``: rfft2 bins by integer radial wavenumber 1 … K."""
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None] * h
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)[None, :] * w
    nb = min(h, w) // 2
    k = torch.round(torch.sqrt(fy * fy + fx * fx)).flatten()
    ks = torch.arange(1, nb + 1, dtype=torch.float64)
    masks = (k[:, None] == ks[None, :]).to(dtype=dtype, device=device)
    return masks, ks.to(dtype=dtype, device=device)


def _spatial(z: Tensor, nb: dict[tuple[int, int], Tensor], z_med: Tensor) -> list[Tensor]:
    h, w = z.shape[-2:]
    m2 = (z * z).mean((-2, -1)) + UNIT_EPS
    logp = sum(F.logsigmoid((z - v) / _TAU) for v in nb.values())
    logp = logp + F.logsigmoid((z - z_med[:, None, None]) / _TAU)
    peaks = torch.exp(logp).mean((-2, -1))
    a = z.abs().flatten(-2)
    q90 = quantiles(a, (0.9,))[..., 0]
    top = torch.sigmoid((a - q90[:, None]) / _TAU)
    concentration = (top * a).sum(-1) / (a.sum(-1) + UNIT_EPS * h * w)
    moran = sum((z * v).mean((-2, -1)) for v in nb.values()) / len(nb) / m2
    wgt = a / (a.sum(-1, keepdim=True) + UNIT_EPS * h * w)
    iy = torch.arange(h, dtype=z.dtype, device=z.device)[:, None].expand(h, w).flatten()
    ix = torch.arange(w, dtype=z.dtype, device=z.device)[None, :].expand(h, w).flatten()
    dy = (wgt * iy).sum(-1) - (h - 1) / 2
    dx = (wgt * ix).sum(-1) - (w - 1) / 2
    dist = (torch.sqrt(dy * dy + dx * dx + UNIT_EPS) - math.sqrt(UNIT_EPS)) / max(h, w)
    return [peaks, concentration, moran, dist]


def _spectral(fr: Frames) -> list[Tensor]:
    h, w = fr.shape
    masks, ks = _radial_bins(h, w, fr.x.dtype, fr.x.device)
    _, _, _, weight = fr.grid()
    total = (h * w) * (fr.var + fr.eps * fr.eps)
    p = (fr.power * weight).flatten(-2) @ masks / total[:, None]     # [B, K] power fractions
    n = float(len(ks))
    logp = torch.log(p + UNIT_EPS)
    peak = soft_mean(ks, logp / _SPECTRAL_TAU) / n
    mean_bin = (p * ks).sum(-1) / (p.sum(-1) + UNIT_EPS) / n
    logk = torch.log(ks)
    # OLS slope of log p against log k (ols_slope assumes unit spacing: rescale by the spread).
    lk = logk - logk.mean()
    beta = ((logp - logp.mean(-1, keepdim=True)) * lk).sum(-1) / max(float((lk * lk).sum()),
                                                                        UNIT_EPS)
    return [peak, mean_bin, _SLOPE_CLIP * torch.tanh(beta / _SLOPE_CLIP)]


def _information(z: Tensor, nb: dict[tuple[int, int], Tensor], z_med: Tensor) -> list[Tensor]:
    h, w = z.shape[-2:]
    centres = torch.linspace(-_HIST_RANGE, _HIST_RANGE, _HIST_BINS, dtype=z.dtype,
                             device=z.device)
    width = 2 * _HIST_RANGE / (_HIST_BINS - 1)
    kern = torch.exp(-0.5 * ((z.flatten(-2)[..., None] - centres) / width) ** 2).sum(-2)
    p = kern / (kern.sum(-1, keepdim=True) + UNIT_EPS)
    entropy = -(p * torch.log(p + UNIT_EPS)).sum(-1) / math.log(_HIST_BINS)
    patch = max(2, min(_PATCH, min(h, w) // 2))
    m1 = F.avg_pool2d(z[:, None], patch)
    m2 = F.avg_pool2d((z * z)[:, None], patch)
    pv = (m2 - m1 * m1).clamp_min(0.0).flatten(1)
    pv_var = ((pv - pv.mean(-1, keepdim=True)) ** 2).mean(-1)
    b = torch.sigmoid((z - z_med[:, None, None]) / _TAU)
    bx, by = torch.sigmoid((nb[(0, 1)] - z_med[:, None, None]) / _TAU), \
        torch.sigmoid((nb[(1, 0)] - z_med[:, None, None]) / _TAU)
    xor = (b + bx - 2 * b * bx) + (b + by - 2 * b * by)          # soft "differs" per pair
    transitions = 0.5 * xor.mean((-2, -1))
    lag1 = (z * nb[(0, 1)]).mean((-2, -1)).abs() / ((z * z).mean((-2, -1)) + UNIT_EPS)
    return [entropy, pv_var, transitions, lag1]


def _morphology(z: Tensor, nb: dict[tuple[int, int], Tensor]) -> list[Tensor]:
    above = torch.sigmoid(z / _TAU).mean((-2, -1))
    sx = (nb[(-1, 1)] - nb[(-1, -1)] + 2 * (nb[(0, 1)] - nb[(0, -1)]) + nb[(1, 1)]
          - nb[(1, -1)]) / 8
    sy = (nb[(1, -1)] - nb[(-1, -1)] + 2 * (nb[(1, 0)] - nb[(-1, 0)]) + nb[(1, 1)]
          - nb[(-1, 1)]) / 8
    sobel = (torch.sqrt(sx * sx + sy * sy + UNIT_EPS) - math.sqrt(UNIT_EPS)).mean((-2, -1))
    m2 = (z * z).mean((-2, -1)) + UNIT_EPS
    turns = (1, 2, 3) if z.shape[-1] == z.shape[-2] else (2,)
    rot = sum((z * torch.rot90(z, k, dims=(-2, -1))).mean((-2, -1)).abs() for k in turns)
    return [above, sobel, rot / len(turns) / m2]


def initial_features(x0: Tensor) -> Tensor:
    """``[B, 14]`` INITIAL features of initial conditions ``x0 [B, C, H, W]``."""
    if x0.dim() != 4:
        raise ValueError(f"initial conditions must be [B, C, H, W], got shape {tuple(x0.shape)}")
    fr = Frames(x0.mean(1))
    z = fr.z
    nb = _neighbours(z)
    p50 = fr.quantiles[..., 3]
    z_med = (p50 - fr.mean) / fr.std
    cols = (_spatial(z, nb, z_med) + _spectral(fr) + _information(z, nb, z_med)
            + _morphology(z, nb))
    return torch.stack(cols, dim=-1)
