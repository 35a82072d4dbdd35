"""AFNO block (Guibas et al. 2022) with ModAFNO-style conditioning, written to export to ONNX.

The token mixer is a block-diagonal complex two-layer MLP applied to every kept Fourier mode with
weights shared across modes, followed by soft-shrink. Choices that matter:

- ``rfft2(norm="forward")``: a mode's coefficient is the field's amplitude at that frequency,
  whatever the grid; so the soft-shrink λ (in field units) sparsifies alike at 16² and 64².
- Mode selection keeps both signs of k_y (rows [0, m) and [h − m, h) of the full-FFT axis) and
  0 ≤ k_x < m on the half-spectrum axis: a wave travelling along (+x, −y) lives at k_y < 0 and
  is not lost (the original kept only the positive corner).
- Real and imaginary parts are separate real tensors; the spectrum is rebuilt with ``F.pad``
  (no complex slice assignment), so ``torch.onnx.export(dynamo=True)`` emits standard ``DFT``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from noa_core.models.conditioning import ZeroLinear


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels at each grid point: [B, C, H, W] → [B, C, H, W]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def kept_rows(h: int, modes: int) -> int | None:
    """Rows kept at each end of the full-FFT axis of length h, or None when all are kept."""
    return modes if 2 * modes < h else None


def select_modes(spec: torch.Tensor, modes: int) -> torch.Tensor:
    """Kept modes of a half spectrum [..., h, w//2+1] → [..., R, Kx] (R = 2m or h, Kx ≤ m).

    Rows: k_y = 0..m−1 then k_y = −m..−1 (both signs); columns: k_x = 0..m−1.
    """
    h, wr = spec.shape[-2:]
    kx = min(modes, wr)
    m = kept_rows(h, modes)
    if m is None:
        return spec[..., :kx]
    return torch.cat([spec[..., :m, :kx], spec[..., h - m:, :kx]], dim=-2)


def place_modes(kept: torch.Tensor, h: int, wr: int, modes: int) -> torch.Tensor:
    """Inverse of ``select_modes``: zeros elsewhere, [..., R, Kx] → [..., h, wr], via F.pad."""
    kx = kept.shape[-1]
    m = kept_rows(h, modes)
    if m is None:
        return F.pad(kept, (0, wr - kx))
    top = F.pad(kept[..., :m, :], (0, wr - kx, 0, h - m))
    bottom = F.pad(kept[..., m:, :], (0, wr - kx, h - m, 0))
    return top + bottom  # disjoint rows, since 2m < h


def _complex_init(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
    # Variance preserving for a complex product (re and im parts each of variance 1/(2·fan_in)):
    # AFNO's 0.02 init would leave most outputs under λ, shrunk to zero, and their weights dead.
    return nn.Parameter(torch.randn(2, *shape) / math.sqrt(2 * fan_in))


def _complex_as_real(w: torch.Tensor) -> torch.Tensor:
    """Block weights w [2, n, i, o] (re, im) → the real matrices [n, 2o, 2i] that map a column
    (re; im) [2i] to (re·w_re − im·w_im; re·w_im + im·w_re) [2o]."""
    wr, wi = w[0].transpose(1, 2), w[1].transpose(1, 2)  # [n, o, i]
    return torch.cat([torch.cat([wr, -wi], dim=2), torch.cat([wi, wr], dim=2)], dim=1)


def _block_matmul(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Block-diagonal complex product: x [B, n, 2i, S] (re rows over im rows) → [B, n, 2o, S].

    One broadcast ``matmul`` for all n blocks (a single batched GEMM over B·n) in place of
    four einsums per complex product; b [2, n, o] is the complex bias.
    """
    bias = torch.cat([b[0], b[1]], dim=1)[..., None]  # [n, 2o, 1]
    return torch.matmul(_complex_as_real(w), x) + bias


class SpectralFilter(nn.Module):
    """AFNO token mixer: x [B, C, h, w], cond [B, E] → [B, C, h, w].

    rfft2 → kept modes → block-diagonal complex MLP (hidden scaled and shifted per sample by
    cond) → soft-shrink(λ) → zeros elsewhere → irfft2. Weights do not depend on the grid or on
    ``modes``. ``filter_modes`` exposes the kept modes after the MLP (tests use it).
    """

    def __init__(self, channels: int, num_blocks: int, hidden_factor: float, modes: int,
                 sparsity: float, cond_dim: int) -> None:
        super().__init__()
        if channels % num_blocks:
            raise ValueError(f"{num_blocks} blocks do not divide {channels} channels")
        self.channels, self.num_blocks, self.modes = channels, num_blocks, modes
        self.block = channels // num_blocks
        self.hidden = max(1, round(self.block * hidden_factor))
        self.sparsity = sparsity
        self.w1 = _complex_init((num_blocks, self.block, self.hidden), self.block)
        self.b1 = nn.Parameter(torch.zeros(2, num_blocks, self.hidden))
        self.w2 = _complex_init((num_blocks, self.hidden, self.block), self.hidden)
        self.b2 = nn.Parameter(torch.zeros(2, num_blocks, self.block))
        # Per-sample gain on the hidden modes and complex shift (ModAFNO), zero at start.
        self.mod = ZeroLinear(cond_dim, 3 * num_blocks * self.hidden)

    def mix(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Kept modes by block, x [B, n, 2·block, S] (real rows over imaginary rows, S modes)
        → filtered, same shape: complex MLP with the per-sample gain and shift, soft-shrink."""
        h = _block_matmul(x, self.w1, self.b1)  # [B, n, 2·hidden, S]
        mod = self.mod(cond).unflatten(-1, (3, self.num_blocks, self.hidden))[..., None]
        gain = 1 + mod[:, 0]  # [B, n, hidden, 1], the same for both parts
        h = F.relu(h * torch.cat([gain, gain], dim=2) + torch.cat([mod[:, 1], mod[:, 2]], dim=2))
        return F.softshrink(_block_matmul(h, self.w2, self.b2), self.sparsity)

    def filter_modes(self, re: torch.Tensor, im: torch.Tensor,
                     cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Kept modes, channels last [B, R, Kx, C] (re, im) → filtered [B, R, Kx, C]."""
        r, kx = re.shape[1:3]
        out = self.mix(self._by_block(re.permute(0, 3, 1, 2), im.permute(0, 3, 1, 2)), cond)
        re, im = self._from_blocks(out, r, kx)
        return re.permute(0, 2, 3, 1), im.permute(0, 2, 3, 1)

    def _by_block(self, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        """re, im [B, C, R, Kx] → [B, n, 2·block, R·Kx]."""
        n, blk = self.num_blocks, self.block
        return torch.cat([re.flatten(2).unflatten(1, (n, blk)),
                          im.flatten(2).unflatten(1, (n, blk))], dim=2)

    def _from_blocks(self, x: torch.Tensor, r: int, kx: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, n, 2·block, R·Kx] → re, im [B, C, R, Kx]."""
        re, im = x.split(self.block, dim=2)
        return re.flatten(1, 2).unflatten(2, (r, kx)), im.flatten(1, 2).unflatten(2, (r, kx))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type):
            # FFTs and the spectral MLP stay in fp32 under AMP (half-precision FFTs are
            # inaccurate and need power-of-two grids); checked at trace time, so the exported
            # graph has no autocast region.
            with torch.autocast(x.device.type, enabled=False):
                return self._filter(x.float(), cond.float()).to(x.dtype)
        return self._filter(x, cond)

    def _filter(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # At least fp32 (bf16 fields come here only outside autocast); fp64 stays fp64.
        spec = torch.fft.rfft2(x.to(torch.promote_types(x.dtype, torch.float32)), norm="forward")
        re, im = select_modes(spec.real, self.modes), select_modes(spec.imag, self.modes)
        r, kx = re.shape[-2:]
        re, im = self._from_blocks(self.mix(self._by_block(re, im), cond), r, kx)
        wr = w // 2 + 1
        re, im = place_modes(re, h, wr, self.modes), place_modes(im, h, wr, self.modes)
        out = torch.fft.irfft2(torch.complex(re, im), s=(h, w), norm="forward")
        return out.to(x.dtype)


class ChannelMLP(nn.Module):
    """Pointwise MLP C → r·C → C with a per-sample scale/shift on the hidden layer (zero start).

    x [B, C, H, W], cond [B, E] → [B, C, H, W].
    """

    def __init__(self, channels: int, ratio: float, cond_dim: int, dropout: float) -> None:
        super().__init__()
        hidden = max(1, round(channels * ratio))
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.mod = ZeroLinear(cond_dim, 2 * hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.mod(cond)[:, :, None, None].chunk(2, dim=1)
        x = F.gelu(self.fc1(x) * (1 + scale) + shift)
        return self.drop(self.fc2(self.drop(x)))


class AFNOBlock(nn.Module):
    """Pre-norm residual block: x + filter(LN(x)), then + MLP(LN(x)). [B, C, H, W] → same."""

    def __init__(self, channels: int, *, num_blocks: int, hidden_factor: float, modes: int,
                 sparsity: float, mlp_ratio: float, cond_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(channels)
        self.filter = SpectralFilter(channels, num_blocks, hidden_factor, modes, sparsity,
                                     cond_dim)
        self.norm2 = ChannelLayerNorm(channels)
        self.mlp = ChannelMLP(channels, mlp_ratio, cond_dim, dropout)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = x + self.filter(self.norm1(x), cond)
        return x + self.mlp(self.norm2(x), cond)
