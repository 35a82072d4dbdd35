"""Conditioning: θ embedding, context encoder, and the FiLM / adaptive group norm helpers.

The conditioning vector ``cond`` [B, E] (E = ``theta_embed_dim``) is the θ embedding plus the
context embedding. Every layer that reads it ends in a ``ZeroLinear``: a fresh model ignores θ
and context and is a small residual update, and training turns the conditioning on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from noa_core.errors import ConfigError


class ZeroLinear(nn.Linear):
    """A linear layer that starts at zero: the output layer of every conditioning path.

    A distinct type so tests and export checks can find (and re-initialise) these layers.
    """

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


@torch.no_grad()
def perturb_zero_layers(module: nn.Module, std: float = 0.05,
                        generator: torch.Generator | None = None) -> int:
    """Re-initialise every ``ZeroLinear`` in ``module`` to N(0, std²); returns how many.

    For tests and export checks: with zero conditioning layers θ and context have no effect,
    so a check that they reach the output must first make them non-zero.
    """
    count = 0
    for m in module.modules():
        if isinstance(m, ZeroLinear):
            for p in (m.weight, m.bias):
                if p is not None:
                    p.copy_(torch.randn(p.shape, generator=generator) * std)
            count += 1
    return count


def group_count(channels: int) -> int:
    """GroupNorm groups: up to 8, at least 2 channels per group where the width allows."""
    return math.gcd(channels, max(1, min(8, channels // 2)))


class AdaGroupNorm(nn.Module):
    """Adaptive group norm: GN(x)·(1 + scale(cond)) + shift(cond), per sample.

    x [B, C, H, W], cond [B, E] → [B, C, H, W]. GroupNorm uses each sample's own statistics
    (never batch statistics); scale and shift start at zero.
    """

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(group_count(channels), channels)
        self.proj = ZeroLinear(cond_dim, 2 * channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(cond)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x) * (1 + scale) + shift


class ThetaEmbedding(nn.Module):
    """θ [B, P] in [0, 1] → [B, E]: sampled slots mapped to [−1, 1], then a two-layer MLP.

    Constant slots carry 0.5 for every operator and hold no information, so they are dropped
    (``theta_mask``); the model is self-contained and takes the stored θ rows as they are.
    """

    def __init__(self, theta_dim: int, embed_dim: int,
                 theta_mask: Sequence[bool] | None = None) -> None:
        super().__init__()
        mask = [True] * theta_dim if theta_mask is None else [bool(m) for m in theta_mask]
        if len(mask) != theta_dim:
            raise ConfigError(f"theta_mask has {len(mask)} entries for a θ of {theta_dim} slots")
        index = [i for i, m in enumerate(mask) if m]
        if not index:
            raise ConfigError("θ has no sampled slot: nothing to condition the model on")
        self.theta_dim = theta_dim
        # Saved with the weights, so a checkpoint carries the slot selection it was trained on.
        self.register_buffer("index", torch.tensor(index, dtype=torch.long))
        self.mlp = nn.Sequential(
            nn.Linear(len(index), embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim),
        )

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        if theta.ndim != 2 or theta.shape[1] != self.theta_dim:
            raise ValueError(f"θ has shape {tuple(theta.shape)}, expected [B, {self.theta_dim}]")
        x = theta.index_select(1, self.index).to(self.mlp[0].weight.dtype) * 2 - 1
        return self.mlp(x)


class ContextEncoder(nn.Module):
    """K observed states [B, K, C, H, W] → context embedding [B, E] (zeros when K = 0).

    Each state is seen with its increment from the previous state (zero for the first), since
    the operator shows itself in the transitions; a shared strided CNN with global pooling gives
    one vector per state, averaged over K (any K from 1 to ``context_max``), then an MLP whose
    output layer starts at zero. Inputs are already normalised fields.
    """

    def __init__(self, channels: int, width: int, embed_dim: int, cond_dim: int,
                 context_max: int) -> None:
        super().__init__()
        self.context_max = context_max
        self.cond_dim = cond_dim
        self.cnn = nn.Sequential(
            nn.Conv2d(2 * channels, width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
        )
        self.mlp = nn.Sequential(
            nn.Linear(2 * width, embed_dim), nn.GELU(), ZeroLinear(embed_dim, cond_dim),
        )

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        b, k = context.shape[:2]
        if k == 0:
            return context.new_zeros(b, self.cond_dim)
        if k > self.context_max:
            raise ValueError(f"context holds {k} states; this model accepts at most "
                             f"{self.context_max}")
        prev = torch.cat([context[:, :1], context[:, :-1]], dim=1)
        pairs = torch.cat([context, context - prev], dim=2).flatten(0, 1)  # [B·K, 2C, H, W]
        per_state = self.cnn(pairs).mean(dim=(2, 3)).unflatten(0, (b, k))  # [B, K, 2w]
        return self.mlp(per_state.mean(dim=1))
