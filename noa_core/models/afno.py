"""AFNO block (Guibas et al. 2022) with ModAFNO-style conditioning, written to export to ONNX.

The token mixer is a block-diagonal complex two-layer MLP applied to every kept Fourier mode with
weights shared across modes, followed by soft-shrink. Choices that matter:

- ``rfft2(norm="forward")``: a mode's coefficient is the field's amplitude at that frequency,
  whatever the grid; so the soft-shrink λ (in field units) sparsifies alike at 16² and 64².
- Mode selection keeps both signs of k_y (rows [0, m) and [h − m, h) of the full-FFT axis) and
  0 ≤ k_x < m on the half-spectrum axis: a wave travelling along (+x, −y) lives at k_y < 0 and
  is not lost (the original kept only the positive corner).
- The spectrum is handled as its real view [..., C, 2] (``view_as_real``): modes are sliced and
  zero-filled with ``F.pad`` on real tensors (no complex slice assignment) and the parts stay
  interleaved through the MLP, so ``torch.onnx.export(dynamo=True)`` emits standard ``DFT``.
- The block works channels last ([B, H, W, C]): the transforms run over axes (1, 2) and the
  norms, the spectral MLP and the channel MLP all act on the trailing channels as GEMMs.
- Two forms of the same transform. By default the kept modes are taken, and put back, with real
  DFT matrices (``dft_matrices``): on two CPU cores, at the 8×8 bottleneck both presets have,
  these two small GEMMs took a quarter of the time of rfft2 + irfft2 and their mode copies (the
  `small` training step ran 8.5 % faster, the two forms alternating in one process). Under
  ``fft_transforms`` the filter runs rfft2 / irfft2 instead: the ONNX export uses it, so the
  graph has ``DFT`` nodes as above, and ``benchmarks/bench_train.py`` counts FLOPs with it,
  so the transform's work is not counted in either form.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from noa_core.models.conditioning import Conditioned, Modulations, ZeroLinear

# [B, h, w, C, 2] ↔ [B, C, 2, h, w]: the spectrum's real view with its mode axes last, as the
# mode helpers take it; the permutation is its own inverse.
MODES_LAST = (0, 3, 4, 1, 2)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a channels-last field: [B, H, W, C] → same.

    Its own module (not a bare ``nn.LayerNorm``) so checkpoints keep the key ``….norm.weight``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


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
        return kept if kx == wr else F.pad(kept, (0, wr - kx))
    top = F.pad(kept[..., :m, :], (0, wr - kx, 0, h - m))
    bottom = F.pad(kept[..., m:, :], (0, wr - kx, h - m, 0))
    return top + bottom  # disjoint rows, since 2m < h


def dft_matrices(h: int, w: int, modes: int, dtype: torch.dtype, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept-mode transform of an h × w field as real matrices (built in float64, cached).

    ``forward`` [2S, h·w] maps the pixels (row-major) to the real and imaginary parts of the S
    kept modes of ``rfft2(norm="forward")``, mode-major (re, im) rows, in ``select_modes``
    order; ``inverse`` [h·w, 2S] maps them back as ``irfft2(place_modes(·))`` does: a
    half-spectrum column other than k_x = 0 and the Nyquist column stands for itself and its
    conjugate (weight 2), and only the real part of e^{iφ}·X reaches the field.
    """
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        # Under a trace (torch.export, torch.compile) the tensors built here are the trace's
        # fakes: cached, they would poison every later eager call.
        return _build_dft_matrices(h, w, modes, dtype, device)
    return _cached_dft_matrices(h, w, modes, dtype, device)


def _build_dft_matrices(h: int, w: int, modes: int, dtype: torch.dtype, device: torch.device
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    m = kept_rows(h, modes)
    rows = list(range(h)) if m is None else [*range(m), *range(h - m, h)]
    kx = min(modes, w // 2 + 1)
    f64 = torch.float64
    ky = torch.tensor(rows, dtype=f64).repeat_interleave(kx)  # [S]
    kxs = torch.arange(kx, dtype=f64).repeat(len(rows))  # [S]
    y, x = torch.arange(h, dtype=f64).repeat_interleave(w), torch.arange(w, dtype=f64).repeat(h)
    phase = 2 * math.pi * (ky[:, None] * y / h + kxs[:, None] * x / w)  # [S, h·w]
    cos, sin = torch.cos(phase), torch.sin(phase)
    twice = torch.where((kxs == 0) | ((w % 2 == 0) & (kxs == w // 2)), 1.0, 2.0)[:, None]
    forward = torch.stack([cos, -sin], dim=1).flatten(0, 1) / (h * w)
    inverse = torch.stack([twice * cos, -twice * sin], dim=1).flatten(0, 1).T
    return forward.to(device, dtype).contiguous(), inverse.to(device, dtype).contiguous()


@functools.cache
def _cached_dft_matrices(h: int, w: int, modes: int, dtype: torch.dtype, device: torch.device
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    # Outside inference mode: a cached inference tensor could not be saved for a backward.
    with torch.inference_mode(False):
        return _build_dft_matrices(h, w, modes, dtype, device)


def _complex_init(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
    # Variance preserving for a complex product (re and im parts each of variance 1/(2·fan_in)):
    # AFNO's 0.02 init would leave most outputs under λ, shrunk to zero, and their weights dead.
    return nn.Parameter(torch.randn(2, *shape) / math.sqrt(2 * fan_in))


def _complex_as_real(w: torch.Tensor) -> torch.Tensor:
    """Block weights w [2, n, i, o] (re, im) → the real matrices [n, 2i, 2o] that map a row of
    interleaved parts (re_0, im_0, re_1, im_1, …) [2i] to the same layout [2o]:
    (re·w_re − im·w_im, re·w_im + im·w_re) per output."""
    wr, wi = w[0], w[1]  # [n, i, o]
    from_re = torch.stack([wr, wi], dim=-1)  # an input's re part feeds (re, im) of each output
    from_im = torch.stack([-wi, wr], dim=-1)
    return torch.stack([from_re, from_im], dim=2).flatten(3).flatten(1, 2)


def _interleave(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    """[..., k] and [..., k] → [..., 2k] as (re_0, im_0, re_1, im_1, …)."""
    return torch.stack([re, im], dim=-1).flatten(-2)


class SpectralFilter(Conditioned):
    """AFNO token mixer: x [B, C, h, w], cond [B, E] → [B, C, h, w].

    rfft2 → kept modes → block-diagonal complex MLP (hidden scaled and shifted per sample by
    cond) → soft-shrink(λ) → zeros elsewhere → irfft2, the transforms by DFT matrices unless
    ``fft`` is set (module docstring). Weights do not depend on the grid or on ``modes``.
    ``filter_modes`` exposes the kept modes after the MLP (tests use it). The work is done
    channels last (``forward_nhwc``): the block MLP is then a GEMM over the trailing
    channels of every mode, and the spectrum's real view [..., C, 2] needs no re/im split.
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
        self.fft = False  # rfft2 / irfft2 instead of the DFT matrices (``fft_transforms``)

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The block MLP's weights in real form and the per-sample modulation, in the filter's
        precision (at least fp32, also under AMP): w1 [n, 2·block, 2·hid], b1 [n, 1, 2·hid],
        w2 [n, 2·hid, 2·block], b2 [n, 1, 2·block] (``_complex_as_real``, interleaved biases),
        gain and shift [n, B, 1, 2·hid] (interleaved like the hidden modes: one gain for both
        parts, a complex shift)."""
        if torch.is_autocast_enabled(cond.device.type):
            with torch.autocast(cond.device.type, enabled=False):
                return self.modulation(cond.float())
        n, hid = self.num_blocks, self.hidden
        mod = self.mod(cond).view(cond.shape[0], 3, n, hid).transpose(0, 2)  # [n, 3, B, hid]
        # A broadcast over the mode axis alone keeps the fused multiply-add vectorised.
        return (_complex_as_real(self.w1), _interleave(self.b1[0], self.b1[1])[:, None],
                _complex_as_real(self.w2), _interleave(self.b2[0], self.b2[1])[:, None],
                _interleave(mod[:, 0], mod[:, 0])[:, :, None] + 1,
                _interleave(mod[:, 1], mod[:, 2])[:, :, None])

    def mix(self, x: torch.Tensor, cond: torch.Tensor | Modulations) -> torch.Tensor:
        """Kept modes channels last with interleaved parts, x [B, S, C, 2] (S modes) →
        filtered, same shape: complex MLP with the per-sample gain and shift, soft-shrink.

        Each block product is one batched GEMM over the n blocks with its bias fused
        (``baddbmm``); its input is a strided view (block-major over a mode-major tensor) that
        the GEMM reads in place."""
        w1, b1, w2, b2, gain, shift = self.modulated(cond)
        b, s = x.shape[:2]
        n, hid = self.num_blocks, self.hidden
        xb = x.reshape(b * s, n, 2 * self.block).transpose(0, 1)  # [n, B·S, 2·block], a view
        h = torch.baddbmm(b1, xb, w1).view(n, b, s, 2 * hid)
        h = F.relu(torch.addcmul(shift, h, gain)).view(n, b * s, 2 * hid)
        out = F.softshrink(torch.baddbmm(b2, h, w2), self.sparsity)
        return out.transpose(0, 1).reshape(b, s, self.channels, 2)

    def filter_modes(self, re: torch.Tensor, im: torch.Tensor,
                     cond: torch.Tensor | Modulations) -> tuple[torch.Tensor, torch.Tensor]:
        """Kept modes, channels last [B, R, Kx, C] (re, im) → filtered [B, R, Kx, C]."""
        b, r, kx, c = re.shape
        out = self.mix(torch.stack([re, im], dim=-1).view(b, r * kx, c, 2), cond)
        out = out.view(b, r, kx, c, 2)
        return out[..., 0], out[..., 1]

    def forward(self, x: torch.Tensor, cond: torch.Tensor | Modulations) -> torch.Tensor:
        return self.forward_nhwc(x.permute(0, 2, 3, 1), cond).permute(0, 3, 1, 2)

    def forward_nhwc(self, x: torch.Tensor, cond: torch.Tensor | Modulations) -> torch.Tensor:
        """The filter channels last: x [B, h, w, C], cond [B, E] (or ``Modulations``) →
        [B, h, w, C]."""
        if torch.is_autocast_enabled(x.device.type):
            # FFTs and the spectral MLP stay in fp32 under AMP (half-precision FFTs are
            # inaccurate and need power-of-two grids); checked at trace time, so the exported
            # graph has no autocast region. Modulations are fp32 already.
            with torch.autocast(x.device.type, enabled=False):
                c = cond if isinstance(cond, Modulations) else cond.float()
                return self._filter(x.float(), c).to(x.dtype)
        return self._filter(x, cond)

    def _filter(self, x: torch.Tensor, cond: torch.Tensor | Modulations) -> torch.Tensor:
        """x [B, h, w, C] → [B, h, w, C], at least in fp32 (bf16 fields come here only outside
        autocast; fp64 stays fp64)."""
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        out = self._filter_fft(xf, cond) if self.fft else self._filter_dft(xf, cond)
        return out.to(x.dtype)

    def _filter_dft(self, x: torch.Tensor, cond: torch.Tensor | Modulations) -> torch.Tensor:
        """The transforms as GEMMs with ``dft_matrices``: x [B, h, w, C] → [B, h, w, C]."""
        b, h, w, c = x.shape
        forward, inverse = dft_matrices(h, w, self.modes, x.dtype, x.device)
        s = forward.shape[0] // 2
        spec = torch.matmul(forward, x.reshape(b, h * w, c))  # [B, 2S, C]
        out = self.mix(spec.view(b, s, 2, c).transpose(2, 3), cond)  # [B, S, C, 2]
        return torch.matmul(inverse, out.transpose(2, 3).reshape(b, 2 * s, c)).view(b, h, w, c)

    def _filter_fft(self, x: torch.Tensor, cond: torch.Tensor | Modulations) -> torch.Tensor:
        """rfft2 / irfft2: x [B, h, w, C] → [B, h, w, C]; the mode helpers see
        [B, C, 2, h, w//2+1] views."""
        h, w = x.shape[1:3]
        spec = torch.fft.rfft2(x, dim=(1, 2), norm="forward")
        kept = select_modes(torch.view_as_real(spec).permute(MODES_LAST), self.modes)
        r, kx = kept.shape[-2:]
        kept = kept.permute(MODES_LAST)  # [B, R, Kx, C, 2]
        out = self.mix(kept.reshape(x.shape[0], r * kx, self.channels, 2), cond)
        out = out.view(x.shape[0], r, kx, self.channels, 2).permute(MODES_LAST)
        full = place_modes(out, h, w // 2 + 1, self.modes).permute(MODES_LAST)
        return torch.fft.irfft2(torch.view_as_complex(full.contiguous()), s=(h, w), dim=(1, 2),
                                norm="forward")


@contextlib.contextmanager
def fft_transforms(module: nn.Module) -> Iterator[None]:
    """Within: every ``SpectralFilter`` in ``module`` transforms with rfft2 / irfft2 (the
    exported graph's ``DFT`` nodes) instead of the DFT matrices; restored on exit."""
    filters = [m for m in module.modules() if isinstance(m, SpectralFilter)]
    before = [f.fft for f in filters]
    for f in filters:
        f.fft = True
    try:
        yield
    finally:
        for f, fft in zip(filters, before, strict=True):
            f.fft = fft


class ChannelMLP(Conditioned):
    """Pointwise MLP C → r·C → C with a per-sample scale/shift on the hidden layer (zero start).

    Channels last, x [B, H, W, C], cond [B, E] (or ``Modulations``) → [B, H, W, C]: two GEMMs
    over the trailing channels (the weights keep their 1×1-conv shapes).
    """

    def __init__(self, channels: int, ratio: float, cond_dim: int, dropout: float) -> None:
        super().__init__()
        hidden = max(1, round(channels * ratio))
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.mod = ZeroLinear(cond_dim, 2 * hidden)
        self.drop = nn.Dropout(dropout)

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1 + scale, shift), each [B, 1, 1, hidden]."""
        scale, shift = self.mod(cond)[:, None, None].chunk(2, dim=-1)
        return 1 + scale, shift

    def forward(self, x: torch.Tensor, cond: torch.Tensor | Modulations) -> torch.Tensor:
        gain, shift = self.modulated(cond)
        h = F.linear(x, self.fc1.weight.flatten(1), self.fc1.bias)
        h = F.gelu(torch.addcmul(shift, h, gain))
        return self.drop(F.linear(self.drop(h), self.fc2.weight.flatten(1), self.fc2.bias))


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

    def forward(self, x: torch.Tensor, cond: torch.Tensor | Modulations) -> torch.Tensor:
        # Channels last inside: the norms, the spectral MLP and the channel MLP all act on
        # the trailing channel axis (for a channels-last x the permutes are free views).
        x = x.permute(0, 2, 3, 1)
        x = x + self.filter.forward_nhwc(self.norm1(x), cond)
        x = x + self.mlp(self.norm2(x), cond)
        return x.permute(0, 3, 1, 2)
