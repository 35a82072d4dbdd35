"""TEMPORAL family, spectral part: the power spectrum of one frame (10 per frame and channel).

Input: ``Frames`` of fields ``[..., H, W]``; output ``[..., 10]`` in the order of
``SPECTRAL_NAMES``. Power is ``|rfft2(x, norm="ortho")|²`` without the DC bin, as a fraction of
the total (so every spectral feature is scale-free). Frequencies are in **cycles per pixel**, and
so are the band edges (``fourier.BAND_EDGES``): octaves ``(0, 1/16], (1/16, 1/8], (1/8, 1/4],
(1/4, 1/2], (1/2, √2/2]``. (The original's band edges were in grid units against frequencies in
cycles per pixel: its low/mid/high ratios were always 1/0/0.) Band 0 is empty below a 16-pixel
grid.

Left out: the rolloff index (a step function of the data), the x/y dominant frequency and
centroid (sign-ambiguous halves of the radial ones) and the anisotropy (constant 1 in the
original).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from noa_core.features.fourier import NUM_BANDS
from noa_core.features.frames import Frames
from noa_core.features.numerics import UNIT_EPS

SPECTRAL_NAMES: tuple[str, ...] = (
    *(f"spectral_band_{k}" for k in range(NUM_BANDS)),  # power fraction per band
    "spectral_centroid",        # power-weighted mean radial frequency, cycles/pixel
    "spectral_bandwidth",       # power-weighted std of the radial frequency, cycles/pixel
    "spectral_flatness",        # geometric / arithmetic mean of the bin power fractions, (0, 1]
    "spectral_dominant_power",  # power fraction of the dominant bin (soft max)
    "spectral_dominant_freq",   # radial frequency of the dominant bin (soft argmax), cycles/pixel
)

#: Temperature of the soft argmax over log power: weights ∝ power^(1/τ) = power^10.
DOMINANT_TAU = 0.1


def spectral_features(fr: Frames) -> Tensor:
    """``[..., 10]`` spectral statistics of each frame (order ``SPECTRAL_NAMES``)."""
    sums = fr.power_sums
    # Σ weight·|X|² over non-DC bins = H·W·var (Parseval); floored like the std.
    total = fr.pixels * (fr.var + fr.eps * fr.eps)
    bands = torch.stack([sums[f"band_{k}"] for k in range(NUM_BANDS)], dim=-1) / total[..., None]
    centroid = sums["f"] / total
    spread = (sums["f2"] / total - centroid * centroid).clamp_min(0.0)
    bandwidth = torch.sqrt(spread + UNIT_EPS) - math.sqrt(UNIT_EPS)
    _, _, f, weight = fr.grid()
    # Per-bin fractions without the DC bin (flattened index 0).
    frac = (fr.power.flatten(-2)[..., 1:] * weight.flatten()[1:]) / total[..., None]
    log_frac = torch.log(frac + UNIT_EPS)
    flatness = torch.exp(log_frac.mean(-1)) / (frac.mean(-1) + UNIT_EPS)
    soft = torch.softmax(log_frac / DOMINANT_TAU, dim=-1)
    dom_power = (soft * frac).sum(-1)
    dom_freq = soft @ f.flatten()[1:]
    return torch.cat([bands, torch.stack([centroid, bandwidth, flatness, dom_power, dom_freq],
                                         dim=-1)], dim=-1)
