"""The CNO operator family: random, untrained conv nets acting on fields [B, C, H, W].

Architecture as in the original (``spinlock_dynamics.md`` §1): a stem ConvBlock(C → c); L hidden
layers of width c·2^min(i, 2), each a ResidualBlock (two ConvBlocks and a skip, projected 1×1
when the width changes) when L > 3, else one ConvBlock; ConvBlock = bias-free k×k conv with zero
padding → InstanceNorm(affine, eps 1e-5) → activation; additive noise σ·ε on the last hidden
features; a 1×1 output conv with bias.

The operator is written functionally over plain tensors: weights are drawn once from a local
generator seeded per sample (PyTorch's default init, U(±1/√fan_in)), so building one never touches
the global RNG, and a rollout runs without ``nn.Module`` dispatch per step.

Noise is drawn where it lands. The output conv is 1×1 and linear, so σ·ε on the c_last hidden
channels reaches the output as σ·W ε, a Gaussian with per-pixel covariance W Wᵀ ([C, C]). We draw
that C-channel field directly, as S η with S = (W Wᵀ)^½ and η ~ N(0, I): the same law as the
original's noise, at C / c_last of the draws (and of the FFTs when the noise is correlated,
since a spatial filter commutes with the 1×1 projection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from noa_core.dynamics.parameters import OperatorSpec
from noa_core.dynamics.seeding import noise_seed, torch_generator

INSTANCE_NORM_EPS = 1e-5

_ACTIVATIONS = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
}


@dataclass
class ConvBlock:
    """Bias-free k×k conv → InstanceNorm(affine) → activation."""

    weight: torch.Tensor  # [C_out, C_in, k, k]
    norm_weight: torch.Tensor  # [C_out]
    norm_bias: torch.Tensor  # [C_out]

    def __call__(self, x: torch.Tensor, act) -> torch.Tensor:
        pad = self.weight.shape[-1] // 2
        x = F.conv2d(x, self.weight, padding=pad)
        # Group norm with one channel per group is instance norm, with a kernel ~5× faster on
        # the CPU than F.instance_norm (which repeats the input into a batch norm).
        x = F.group_norm(x, x.shape[1], self.norm_weight, self.norm_bias, INSTANCE_NORM_EPS)
        return act(x)


@dataclass
class ResidualBlock:
    """Two ConvBlocks plus a skip; the skip is a bias-free 1×1 projection when widths differ."""

    first: ConvBlock
    second: ConvBlock
    skip: torch.Tensor | None  # [C_out, C_in, 1, 1] or None for identity

    def __call__(self, x: torch.Tensor, act) -> torch.Tensor:
        shortcut = x if self.skip is None else F.conv2d(x, self.skip)
        return self.second(self.first(x, act), act) + shortcut


def _uniform(shape: tuple[int, ...], fan_in: int, gen: torch.Generator) -> torch.Tensor:
    # PyTorch's default conv init (kaiming_uniform with a=√5) is exactly U(±1/√fan_in).
    bound = 1.0 / math.sqrt(fan_in)
    return torch.empty(shape).uniform_(-bound, bound, generator=gen)


def _conv_block(c_in: int, c_out: int, k: int, gen: torch.Generator) -> ConvBlock:
    return ConvBlock(
        weight=_uniform((c_out, c_in, k, k), c_in * k * k, gen),
        norm_weight=torch.ones(c_out),
        norm_bias=torch.zeros(c_out),
    )


def hidden_widths(spec: OperatorSpec) -> list[int]:
    """Widths of the L hidden layers: c·2^min(i, 2)."""
    return [spec.base_channels * 2 ** min(i, 2) for i in range(spec.num_layers)]


@dataclass
class CNOOperator:
    """One built operator O_θ: ``forward(x [B, C, H, W], noise) → [B, C, H, W]``."""

    spec: OperatorSpec
    channels: int
    stem: ConvBlock
    hidden: list[ConvBlock | ResidualBlock]
    out_weight: torch.Tensor  # [C, c_last, 1, 1]
    out_bias: torch.Tensor  # [C]
    weight_seed: int
    _act: object = field(init=False, repr=False)
    noise_mix: torch.Tensor = field(init=False, repr=False)  # S = (W Wᵀ)^½, [C, C]

    def __post_init__(self) -> None:
        self._act = _ACTIVATIONS[self.spec.activation]
        self.noise_mix = output_noise_mix(self.out_weight)

    @classmethod
    def build(cls, spec: OperatorSpec, channels: int, weight_seed: int,
              device: str | torch.device = "cpu") -> CNOOperator:
        """Draw the weights from a CPU generator seeded with ``weight_seed``, then move them.

        Drawing on the CPU makes the weights independent of the device they run on.
        """
        gen = torch_generator(weight_seed)
        k = spec.kernel_size
        stem = _conv_block(channels, spec.base_channels, k, gen)
        blocks: list[ConvBlock | ResidualBlock] = []
        c_in = spec.base_channels
        for c_out in hidden_widths(spec):
            if spec.num_layers > 3:
                first = _conv_block(c_in, c_out, k, gen)
                second = _conv_block(c_out, c_out, k, gen)
                skip = _uniform((c_out, c_in, 1, 1), c_in, gen) if c_in != c_out else None
                blocks.append(ResidualBlock(first, second, skip))
            else:
                blocks.append(_conv_block(c_in, c_out, k, gen))
            c_in = c_out
        out_w = _uniform((channels, c_in, 1, 1), c_in, gen)
        out_b = _uniform((channels,), c_in, gen)
        op = cls(spec, channels, stem, blocks, out_w, out_b, weight_seed)
        return op.to(device)

    @property
    def hidden_channels(self) -> int:
        """Width of the last hidden layer, where the original adds its noise."""
        return self.out_weight.shape[1]

    def tensors(self) -> list[torch.Tensor]:
        """Every weight tensor, in build order."""
        out: list[torch.Tensor] = []
        for blk in [self.stem, *self.hidden]:
            parts = [blk] if isinstance(blk, ConvBlock) else [blk.first, blk.second]
            for cb in parts:
                out += [cb.weight, cb.norm_weight, cb.norm_bias]
            if isinstance(blk, ResidualBlock) and blk.skip is not None:
                out.append(blk.skip)
        return [*out, self.out_weight, self.out_bias]

    def num_parameters(self) -> int:
        return sum(t.numel() for t in self.tensors())

    def to(self, device: str | torch.device) -> CNOOperator:
        def mv(cb: ConvBlock) -> ConvBlock:
            return ConvBlock(cb.weight.to(device), cb.norm_weight.to(device),
                             cb.norm_bias.to(device))

        hidden: list[ConvBlock | ResidualBlock] = []
        for blk in self.hidden:
            if isinstance(blk, ConvBlock):
                hidden.append(mv(blk))
            else:
                skip = None if blk.skip is None else blk.skip.to(device)
                hidden.append(ResidualBlock(mv(blk.first), mv(blk.second), skip))
        return CNOOperator(self.spec, self.channels, mv(self.stem), hidden,
                           self.out_weight.to(device), self.out_bias.to(device), self.weight_seed)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden features [B, c_last, H, W] of input [B, C, H, W] (before the noise)."""
        h = self.stem(x, self._act)
        for blk in self.hidden:
            h = blk(h, self._act)
        return h

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """O_θ(x) [B, C, H, W]; ``noise`` [B, C, H, W] is S η (``step_noise``), scaled by σ here."""
        out = F.conv2d(self.features(x), self.out_weight, self.out_bias)
        if noise is not None and self.spec.noise_scale > 0:
            out = out + self.spec.noise_scale * noise
        return out

    __call__ = forward


def output_noise_mix(out_weight: torch.Tensor) -> torch.Tensor:
    """S = (W Wᵀ)^½ [C, C] for the output conv W [C, c_last, 1, 1] (symmetric PSD square root).

    Computed in float64 by eigendecomposition, so it exists even when c_last < C (rank-deficient).
    """
    w = out_weight.detach().cpu().flatten(1).double()
    vals, vecs = torch.linalg.eigh(w @ w.T)
    root = (vecs * vals.clamp_min(0).sqrt()) @ vecs.T
    return root.to(dtype=torch.float32, device=out_weight.device)


def correlation_filter(grid: int, correlation: float, device: str | torch.device = "cpu"
                       ) -> torch.Tensor | None:
    """rfft2 filter [grid, grid//2+1]: unit white noise → unit-variance correlated noise.

    A Gaussian kernel of std s·grid/2π px has transfer exp(−(f·s·grid)²/2) (f in cycles/px). It
    is divided by √mean(G²) over the full spectrum, the analytic variance of filtered white
    noise, so the noise keeps unit variance without looking at the draw (a batch std would make
    realizations depend on each other). ``None`` for s = 0 (white noise).
    """
    if correlation <= 0:
        return None
    fy = torch.fft.fftfreq(grid, dtype=torch.float64)
    fx = torch.fft.rfftfreq(grid, dtype=torch.float64)
    f2 = fy[:, None] ** 2 + fx[None, :] ** 2
    g = torch.exp(-0.5 * f2 * (correlation * grid) ** 2)
    full = torch.exp(-0.5 * (fy[:, None] ** 2 + fy[None, :] ** 2) * (correlation * grid) ** 2)
    g = g / torch.sqrt((full**2).mean())
    return g.to(device=device, dtype=torch.float32)


def step_noise(op: CNOOperator, base_seed: int, step: int, realizations: int, grid: int,
               filt: torch.Tensor | None, device: str | torch.device = "cpu") -> torch.Tensor:
    """Output-space noise S η [M, C, H, W] of one step; realization m from seed (base, m, step).

    Each realization has its own generator, so realization m is the same whatever M is and
    however the realizations are batched. η is drawn on the CPU, so the noise does not depend on
    the device either.
    """
    eta = torch.stack([
        torch.randn((op.channels, grid, grid),
                    generator=torch_generator(noise_seed(base_seed, m, step)))
        for m in range(realizations)
    ]).to(device)
    if filt is not None:
        eta = torch.fft.irfft2(torch.fft.rfft2(eta) * filt, s=(grid, grid))
    return torch.einsum("ij,mjhw->mihw", op.noise_mix, eta)
