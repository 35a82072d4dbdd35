"""U-AFNO: a conditioned U-Net encoder/decoder around an AFNO bottleneck.

Shapes for a field [B, C_in, H, W] with ``level_channels`` c_0..c_L (c_i = min(base·2^i, max)):

- stem: 3×3 conv C_in → c_0 at H×W;
- encoder level i (0 ≤ i < L): ResBlocks at H/2^i with c_i channels → ``skip_i`` [B, c_i, H/2^i,
  W/2^i] (taken before downsampling), then a stride-2 3×3 conv c_i → c_{i+1};
- bottleneck: AFNO blocks at H/2^L with c_L channels → ``bottleneck`` [B, c_L, H/2^L, W/2^L];
- decoder level i (L−1 down to 0): 2×2 transposed conv c_{i+1} → c_i, concatenate ``skip_i``,
  ResBlocks → c_i; then GN → GELU → 1×1 conv c_0 → C_out; plus g(cond) ⊙ x, a per-sample,
  per-channel gain on the input (zero at start; the GN makes the decoder blind to amplitude).

So skip_0 is at full resolution (the spec's "H/2" was wrong in the original's docstrings too).
H and W must be divisible by 2^L. Every block reads the conditioning vector ``cond`` [B, E].
A model with a context encoder adds the context field [B, F, H, W] to the stem's output through
its own bias-free 3×3 conv (``context_term``); without a context field that conv is not run at
all. The field is the same at every step of a rollout, so a rollout computes the term once and
passes it to ``encode`` and ``forward_with_features``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from noa_core.config import ModelConfig
from noa_core.models.afno import AFNOBlock
from noa_core.models.conditioning import (
    AdaGroupNorm,
    Conditioned,
    Modulations,
    ZeroLinear,
    group_count,
)

EXTRACT_FROM = ("bottleneck", "skips", "all")
# g(cond) = 0.1·ZeroLinear(cond). A uniform gain is the direction the tokenizer's temporal
# features (drift monotonicity, ACF decay) are steepest in: at scale 1, the first AdamW step
# (every weight ±lr) already gave every operator a steady decay or growth, and the next step's
# alignment gradient was ~100× the first's (commit 2022 vs 22 on the `tiny` training test);
# at 0.1 it stays at the first's scale and g still reaches −α = −0.5 within the small run.
LINEAR_GAIN_SCALE = 0.1


class ResBlock(nn.Module):
    """Pre-norm residual conv block with adaptive group norm (PDEArena-style AdaGN).

    x [B, C_in, H, W], cond [B, E] (or ``Modulations``) → [B, C_out, H, W]; a 1×1 conv matches
    channels on the skip.
    """

    def __init__(self, c_in: int, c_out: int, cond_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = AdaGroupNorm(c_in, cond_dim)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = AdaGroupNorm(c_out, cond_dim)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor | Modulations) -> torch.Tensor:
        h = self.conv1(F.gelu(self.norm1(x, cond)))
        h = self.conv2(self.drop(F.gelu(self.norm2(h, cond))))
        return self.skip(x) + h


def _blocks(c_in: int, c_out: int, n: int, cond_dim: int, dropout: float) -> nn.ModuleList:
    return nn.ModuleList(
        ResBlock(c_in if j == 0 else c_out, c_out, cond_dim, dropout) for j in range(n)
    )


class UAFNO(Conditioned):
    """The U-AFNO network: normalised field [B, C, H, W] and cond [B, E] → Δ [B, C, H, W].

    Every method taking cond also takes ``Modulations.of(net, cond)``: a rollout builds it once
    and passes it to each step."""

    def __init__(self, cfg: ModelConfig, channels: int, cond_dim: int,
                 context_channels: int = 0) -> None:
        super().__init__()
        ch = cfg.level_channels
        self.levels = cfg.levels
        self.channels = ch
        self.stem = nn.Conv2d(channels, ch[0], 3, padding=1)
        # Bias-free: an all-zero context field adds exactly zero (the exported step's K = 0).
        self.context_stem = (nn.Conv2d(context_channels, ch[0], 3, padding=1, bias=False)
                             if context_channels else None)
        self.enc = nn.ModuleList(
            _blocks(ch[i], ch[i], cfg.blocks_per_level, cond_dim, cfg.dropout)
            for i in range(cfg.levels)
        )
        self.down = nn.ModuleList(
            nn.Conv2d(ch[i], ch[i + 1], 3, stride=2, padding=1) for i in range(cfg.levels)
        )
        self.afno = nn.ModuleList(
            AFNOBlock(ch[-1], num_blocks=cfg.afno_num_blocks,
                      hidden_factor=cfg.afno_hidden_factor, modes=cfg.modes,
                      sparsity=cfg.sparsity, mlp_ratio=cfg.mlp_ratio, cond_dim=cond_dim,
                      dropout=cfg.dropout)
            for _ in range(cfg.afno_blocks)
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in range(cfg.levels)
        )
        self.dec = nn.ModuleList(
            _blocks(2 * ch[i], ch[i], cfg.blocks_per_level, cond_dim, cfg.dropout)
            for i in range(cfg.levels)
        )
        self.out_norm = nn.GroupNorm(group_count(ch[0]), ch[0])
        self.out = nn.Conv2d(ch[0], channels, 1)
        with torch.no_grad():  # a fresh step is a small residual: u + O(scale)·Δ
            self.out.weight.mul_(cfg.output_init_scale)
            self.out.bias.zero_()
        # Per-sample, per-channel gain g(cond) on the input itself, zero at start: the output
        # GroupNorm makes the decoder's Δ blind to the field's amplitude, so without it a step
        # cannot express an increment proportional to u_t (the convex policy's −α·u_t).
        self.linear = ZeroLinear(cond_dim, channels)

    def check_grid(self, x: torch.Tensor) -> None:
        """Raise unless x [B, C, H, W] has H and W divisible by 2^levels."""
        f = 2 ** self.levels
        if x.ndim != 4 or x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"field of shape {tuple(x.shape)}: expected [B, C, H, W] with H and "
                             f"W divisible by 2^levels = {f}")

    def context_term(self, context_field: torch.Tensor | None) -> torch.Tensor | None:
        """The context field [B, F, H, W] → its addition to the stem's output [B, c_0, H, W]
        (None for None)."""
        if context_field is None:
            return None
        if self.context_stem is None:
            raise ValueError("this U-AFNO takes no context field (model.context_max = 0)")
        return self.context_stem(context_field)

    def encode(self, x: torch.Tensor, cond: torch.Tensor | Modulations,
               context_term: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encoder and AFNO stack: (bottleneck [B, c_L, H/2^L, W/2^L], [skip_0, …, skip_{L−1}]);
        ``context_term`` from ``context_term(field)``."""
        self.check_grid(x)
        x = self.stem(x)
        if context_term is not None:
            x = x + context_term
        skips = []
        for blocks, down in zip(self.enc, self.down, strict=True):
            for block in blocks:
                x = block(x, cond)
            skips.append(x)
            x = down(x)
        for block in self.afno:
            x = block(x, cond)
        return x, skips

    def decode(self, z: torch.Tensor, skips: list[torch.Tensor],
               cond: torch.Tensor | Modulations) -> torch.Tensor:
        """Decoder: bottleneck and skips → [B, C_out, H, W]."""
        for i in reversed(range(self.levels)):
            z = torch.cat([self.up[i](z), skips[i]], dim=1)
            for block in self.dec[i]:
                z = block(z, cond)
        return self.out(F.gelu(self.out_norm(z)))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | Modulations,
                latent_noise: torch.Tensor | None = None,
                context_field: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_with_features(x, cond, latent_noise,
                                          self.context_term(context_field))[0]

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor]:
        """(g(cond) [B, C, 1, 1],), the gain of ``linear_term``."""
        return (LINEAR_GAIN_SCALE * self.linear(cond)[:, :, None, None],)

    def linear_term(self, x: torch.Tensor, cond: torch.Tensor | Modulations) -> torch.Tensor:
        """g(cond) ⊙ x: x [B, C, H, W], cond [B, E] → [B, C, H, W] (zero for a fresh model)."""
        return self.modulated(cond)[0] * x

    def forward_with_features(self, x: torch.Tensor, cond: torch.Tensor | Modulations,
                              latent_noise: torch.Tensor | None = None,
                              context_term: torch.Tensor | None = None
                              ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Δ [B, C_out, H, W] with the features the step computed on the way: the bottleneck
        before any latent noise [B, c_L, H/2^L, W/2^L] (as ``get_intermediate_features``) and
        the skips [B, c_i, H/2^i, W/2^i]. ``context_term``: ``context_term(field)``."""
        z, skips = self.encode(x, cond, context_term)
        noisy = z if latent_noise is None else z + latent_noise
        return self.decode(noisy, skips, cond) + self.linear_term(x, cond), z, skips

    def latent_shape(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        """Shape of the bottleneck for a field x [B, C, H, W]."""
        f = 2 ** self.levels
        return (x.shape[0], self.channels[-1], x.shape[-2] // f, x.shape[-1] // f)

    def get_intermediate_features(self, x: torch.Tensor, cond: torch.Tensor,
                                  extract_from: str = "all",
                                  skip_levels: Sequence[int] | None = None,
                                  context_field: torch.Tensor | None = None
                                  ) -> dict[str, torch.Tensor]:
        """Encoder + AFNO features (no decoder) of a normalised field x [B, C, H, W].

        Returns ``bottleneck`` [B, c_L, H/2^L, W/2^L] (for "bottleneck" or "all") and
        ``skip_i`` [B, c_i, H/2^i, W/2^i] for i in ``skip_levels`` (for "skips" or "all";
        default all levels 0..L−1).
        """
        if extract_from not in EXTRACT_FROM:
            raise ValueError(f"extract_from={extract_from!r}; expected one of {EXTRACT_FROM}")
        levels = list(range(self.levels)) if skip_levels is None else list(skip_levels)
        bad = [i for i in levels if not 0 <= i < self.levels]
        if bad:
            raise ValueError(f"skip levels {bad} do not exist; this U-AFNO has levels "
                             f"0..{self.levels - 1}")
        z, skips = self.encode(x, cond, self.context_term(context_field))
        out: dict[str, torch.Tensor] = {}
        if extract_from in ("bottleneck", "all"):
            out["bottleneck"] = z
        if extract_from in ("skips", "all"):
            out.update({f"skip_{i}": skips[i] for i in levels})
        return out
