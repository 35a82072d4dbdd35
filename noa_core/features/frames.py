"""Per-frame intermediates shared by the TEMPORAL and SUMMARY families, computed once.

A *frame* is one channel of one state: a field ``x [..., H, W]`` (the extractor's leading dims are
``[B, M, T, C]``). Conventions used by every family:

- pixel spacing 1; spatial derivatives are periodic central differences, the same boundary as
  the FFT, so gradient and Laplacian means are exactly 0 (and are not features);
- frequencies are in cycles per pixel (``noa_core.features.fourier``);
- few full-size temporaries: on CPU each one costs an allocation and a pass over memory, so
  means of squares use fused reductions or Parseval sums of the spectrum.
"""

from __future__ import annotations

from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor

from noa_core.features.fourier import POWER_COLUMNS, frequency_grid, power_basis
from noa_core.features.numerics import eps_like, floored_std
from noa_core.features.order_stats import quantiles

#: Levels of ``Frames.quantiles``: min, p05, p25, p50, p75, p95, max.
QUANTILE_LEVELS: tuple[float, ...] = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
#: Order statistics kept at each end of a frame (``Frames.extremes``).
NUM_EXTREMES = 4


def central_differences(x: Tensor) -> tuple[Tensor, Tensor]:
    """Periodic central differences ``(∂x, ∂y)`` of ``x [..., H, W]``, each ``[..., H, W]``:
    ``∂x[i, j] = (x[i, j+1] − x[i, j−1]) / 2`` (indices mod H, W), ∂y alike over rows."""
    h, w = x.shape[-2:]
    # One circularly padded copy, then differences of views (torch.roll copies per call).
    xp = F.pad(x.reshape(-1, 1, h, w), (1, 1, 1, 1), mode="circular")
    gx = torch.sub(xp[..., 1:-1, 2:], xp[..., 1:-1, :-2]).mul_(0.5)
    gy = torch.sub(xp[..., 2:, 1:-1], xp[..., :-2, 1:-1]).mul_(0.5)
    return gx.view(x.shape), gy.view(x.shape)


class CentralDifferences(torch.autograd.Function):
    """``central_differences`` with its adjoint as the backward.

    A periodic central difference D is antisymmetric (Dᵀ = −D), so the gradient of (∂x, ∂y)
    with grads (g_x, g_y) is −(D_x g_x + D_y g_y): two differences of the grads. Autograd's own
    backward of the padded-view form zero-fills and scatters a padded copy per view and folds
    the circular pad back. On the `small` training step's 65 predicted states the alignment
    terms' forward + backward took 195 ms instead of 205 (medians of 8, the two forms
    alternating in one process, two cores). The backward is made of differentiable ops, so
    double backward works.
    """

    @staticmethod
    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        return central_differences(x)

    @staticmethod
    def setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple[Tensor],
                      output: tuple[Tensor, Tensor]) -> None:
        pass

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, gx: Tensor, gy: Tensor) -> Tensor:
        # An unused output's grad arrives as zeros (materialised grads, the default).
        return -(central_differences(gx)[0] + central_differences(gy)[1])


class Frames:
    """Lazily computed statistics of fields ``x [..., H, W]`` (float32 or float64).

    Every attribute keeps the leading dims ``[...]``; field-shaped ones end in ``[H, W]``.
    """

    def __init__(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"frames need [..., H, W], got shape {tuple(x.shape)}")
        self.x = x.contiguous()   # a window cut from a trajectory is a strided view

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of one frame."""
        return int(self.x.shape[-2]), int(self.x.shape[-1])

    @property
    def pixels(self) -> int:
        return self.shape[0] * self.shape[1]

    @cached_property
    def _moments(self) -> tuple[Tensor, Tensor, Tensor]:
        mean = self.x.mean((-2, -1), keepdim=True)
        xc = self.x - mean                 # two-pass variance: exact for large offsets
        var = torch.linalg.vector_norm(xc, 2, dim=(-2, -1)) ** 2 / self.pixels
        return mean[..., 0, 0], var, xc

    @property
    def mean(self) -> Tensor:
        """Spatial mean ``[...]`` (field units)."""
        return self._moments[0]

    @property
    def var(self) -> Tensor:
        """Spatial population variance ``[...]`` (field units²)."""
        return self._moments[1]

    @property
    def centred(self) -> Tensor:
        """``x − mean`` ``[..., H, W]``."""
        return self._moments[2]

    @cached_property
    def eps(self) -> Tensor:
        """Scale floor ``1e-6 (1 + |mean|)`` ``[...]`` (field units)."""
        return eps_like(self.mean)

    @cached_property
    def std(self) -> Tensor:
        """Floored spatial std ``sqrt(var + eps²)`` ``[...]``: never 0, used to standardise."""
        return floored_std(self.var, self.eps)

    @cached_property
    def energy(self) -> Tensor:
        """Mean square ``mean(x²) = var + mean²`` ``[...]`` (field units²)."""
        return self.var + self.mean * self.mean

    @cached_property
    def z(self) -> Tensor:
        """Standardised field ``(x − mean) / std`` ``[..., H, W]`` (dimensionless)."""
        return self.centred / self.std[..., None, None]

    @cached_property
    def _order_stats(self) -> Tensor:
        n = self.pixels
        k = min(NUM_EXTREMES, n)
        ends = [r / max(n - 1, 1) for r in (*range(k), *range(n - k, n))]
        # One sort serves the quantiles and the extremes.
        return quantiles(self.x.flatten(-2), (*QUANTILE_LEVELS, *ends))

    @property
    def quantiles(self) -> Tensor:
        """``[..., 7]`` pixel quantiles: min, p05, p25, p50, p75, p95, max (QUANTILE_LEVELS)."""
        return self._order_stats[..., : len(QUANTILE_LEVELS)]

    @property
    def extremes(self) -> Tensor:
        """``[..., 2k]``: the k smallest then the k largest pixel values (k = NUM_EXTREMES)."""
        return self._order_stats[..., len(QUANTILE_LEVELS):]

    @cached_property
    def grad(self) -> tuple[Tensor, Tensor]:
        """Periodic central differences ``(∂x, ∂y)``, each ``[..., H, W]`` (field units/pixel)."""
        return CentralDifferences.apply(self.x)

    @cached_property
    def spectrum(self) -> Tensor:
        """``rfft2(x, norm="ortho")`` ``[..., H, W//2+1]`` complex."""
        return torch.fft.rfft2(self.x, norm="ortho")

    @cached_property
    def power(self) -> Tensor:
        """``|X|²`` ``[..., H, W//2+1]`` (the DC bin included; bases and features skip it)."""
        spec = self.spectrum
        return spec.real.square() + spec.imag.square()   # 3× faster than view_as_real + sum

    @cached_property
    def power_sums(self) -> dict[str, Tensor]:
        """Parseval sums ``{column: [...]}`` over ``fourier.POWER_COLUMNS`` (DC excluded).

        ``band_k``, ``f``, ``f2``: Σ weight·|X|²·(column) (field units²; f in cycles/pixel);
        ``laplacian2``, ``dx2``, ``dy2``, ``total``: H·W × the mean square of the periodic
        Laplacian, ∂x, ∂y and of x − mean.
        """
        h, w = self.shape
        basis = power_basis(h, w, self.x.dtype, self.x.device)[:, : len(POWER_COLUMNS)]
        sums = self.power.flatten(-2) @ basis
        return dict(zip(POWER_COLUMNS, sums.unbind(-1), strict=True))

    def grid(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``fourier.frequency_grid`` of these frames (cycles per pixel)."""
        h, w = self.shape
        return frequency_grid(h, w, self.x.dtype, self.x.device)

    def lowpass(self, sigma_px: float) -> Frames:
        """Frames of the periodic Gaussian blur of ``x`` (std ``sigma_px`` pixels), decimated.

        Applied in Fourier space with the transfer ``exp(−2π² σ² |f|²)`` (|f| in cycles per
        pixel), cut at |f_x|, |f_y| < 1/4 where the gain is below ``exp(−π² σ² / 8)`` (0.7 % for
        σ = 2), and sampled on every second pixel when both sides are multiples of 4: the
        blurred field then has no content a half-resolution grid cannot hold, and every later
        pass costs a quarter. Values are those of the blurred field at the even pixels; a
        derivative of the returned frames is per two pixels.
        """
        h, w = self.shape
        _, _, f, _ = self.grid()
        gain = torch.exp(-2.0 * torch.pi ** 2 * sigma_px ** 2 * f * f)
        if h % 4 or w % 4:
            return Frames(torch.fft.irfft2(self.spectrum * gain, s=(h, w), norm="ortho"))
        h2, w2 = h // 2, w // 2
        rows = torch.cat([torch.arange(0, h2 // 2), torch.arange(h - h2 // 2, h)]).to(f.device)
        cut = torch.ones(h2, w2 // 2 + 1, dtype=f.dtype, device=f.device)
        cut[h2 // 2, :] = 0.0      # the coarse grid's Nyquist row and column (|f| = 1/4)
        cut[:, -1] = 0.0
        kept = self.spectrum[..., rows, : w2 // 2 + 1] * (gain[rows, : w2 // 2 + 1] * cut)
        # ortho norm: the coarse inverse has 1/sqrt(h2·w2), the fine one 1/sqrt(h·w).
        return Frames(torch.fft.irfft2(kept, s=(h2, w2), norm="ortho") * 0.5)
