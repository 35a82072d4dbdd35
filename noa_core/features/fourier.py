"""Frequency geometry of a frame's ``rfft2``: frequencies, band edges and Parseval weights.

Frequencies are in **cycles per pixel** (``torch.fft.fftfreq``): |f| ≤ 0.5 per axis, radial
|f| ≤ √2/2. (The original compared such frequencies with cut-offs in grid units, so its
low/mid/high ratios were always 1/0/0.) With ``norm="ortho"`` and the rfft's left-out conjugate
bins counted twice (``weight``), ``Σ weight · |X|² = Σ x²`` (Parseval), so a weighted sum of the
power gives spatial means of linear filters of x for the price of one matrix product:
``mean((Dx)²) = Σ weight · |X|² · |D̂(f)|² / (H·W)`` for a filter D with transfer D̂.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import torch
from torch import Tensor

#: Radial band edges in cycles per pixel (octaves; the last band runs to the corner, √2/2).
BAND_EDGES: tuple[float, ...] = (0.0, 1 / 16, 1 / 8, 1 / 4, 1 / 2, math.inf)
NUM_BANDS = len(BAND_EDGES) - 1

#: Columns of ``power_basis`` that weight a power spectrum: band memberships, |f|, |f|², the
#: squared transfer functions of the periodic 5-point Laplacian and of the x/y central
#: differences, and 1.
POWER_COLUMNS: tuple[str, ...] = (
    *(f"band_{k}" for k in range(NUM_BANDS)), "f", "f2", "laplacian2", "dx2", "dy2", "total",
)
#: Further columns, for cross spectra Im(conj X_t · X_t+1): sin(2π f_x), sin(2π f_y), the
#: transfer functions of the central differences divided by i.
BASIS_COLUMNS: tuple[str, ...] = (*POWER_COLUMNS, "dx1", "dy1")


@lru_cache(maxsize=16)
def frequency_grid(h: int, w: int, dtype: torch.dtype, device: torch.device
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(fy [H, 1], fx [1, W//2+1], f [H, W//2+1], weight [H, W//2+1])`` of an ``rfft2``.

    ``fy``, ``fx`` and the radial ``f`` are in cycles per pixel; ``weight`` is 2 for the columns
    whose conjugate bin the rfft leaves out, else 1.
    """
    fy = torch.fft.fftfreq(h, dtype=dtype, device=device)[:, None]
    fx = torch.fft.rfftfreq(w, dtype=dtype, device=device)[None, :]
    f = torch.sqrt(fy * fy + fx * fx)
    weight = torch.full((h, w // 2 + 1), 2.0, dtype=dtype, device=device)
    weight[:, 0] = 1.0
    if w % 2 == 0:
        weight[:, -1] = 1.0
    return fy, fx, f, weight


@lru_cache(maxsize=16)
def power_basis(h: int, w: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``[H·(W//2+1), len(BASIS_COLUMNS)]``: Parseval weight × each column, 0 at DC.

    ``power.flatten(-2) @ power_basis`` gives, per frame, the power in each band, Σ|f|·P,
    Σ|f|²·P, H·W·mean((∇²x)²), H·W·mean((∂x)²), H·W·mean((∂y)²) and H·W·var(x).
    """
    fy, fx, f, weight = frequency_grid(h, w, dtype, device)
    two_pi = 2.0 * math.pi
    lap = 2.0 * torch.cos(two_pi * fx) + 2.0 * torch.cos(two_pi * fy) - 4.0
    dx = torch.sin(two_pi * fx).expand(h, -1)       # (x[j+1] − x[j−1]) / 2 ↔ i·sin(2π f_x)
    dy = torch.sin(two_pi * fy).expand(-1, w // 2 + 1)
    bands = [((f > lo) & (f <= hi)).to(dtype) for lo, hi in itertools.pairwise(BAND_EDGES)]
    cols = [*bands, f, f * f, lap * lap, dx * dx, dy * dy, torch.ones_like(f), dx, dy]
    nodc = weight.clone()
    nodc[0, 0] = 0.0
    return torch.stack([(c * nodc).flatten() for c in cols], dim=-1).contiguous()
