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


class Modulations(dict):
    """Every conditioned layer's modulation of one conditioning vector, keyed by the layer.

    The modulations depend on the weights and on cond [B, E] only, so a rollout computes them
    once (``Modulations.of``) and all its steps read them: per step, the `small` U-AFNO had
    run 17 projections of cond and rebuilt its spectral weights in real form, 13 % of a no-grad
    step at batch 8 on two cores (17.3-18.5 ms, now 15.1-15.8 ms: small ops, each paying the
    dispatch cost). Built with gradients on, the modulations carry them to the conditioning
    weights from every step that reads them.
    """

    @classmethod
    def of(cls, module: nn.Module, cond: torch.Tensor) -> Modulations:
        """The modulations of every ``Conditioned`` layer in ``module`` (itself included)."""
        return cls((m, m.modulation(cond)) for m in module.modules()
                   if isinstance(m, Conditioned))


class Conditioned(nn.Module):
    """A layer modulated by the conditioning vector.

    ``modulation(cond)`` maps cond [B, E] to the tensors the layer's forward reads; the forward
    takes either cond itself or a ``Modulations`` holding them (``modulated``).
    """

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def modulated(self, cond: torch.Tensor | Modulations) -> tuple[torch.Tensor, ...]:
        """This layer's modulation: looked up in ``Modulations``, or computed from cond."""
        return cond[self] if isinstance(cond, Modulations) else self.modulation(cond)


class AdaGroupNorm(Conditioned):
    """Adaptive group norm: GN(x)·(1 + scale(cond)) + shift(cond), per sample.

    x [B, C, H, W], cond [B, E] (or ``Modulations``) → [B, C, H, W]. GroupNorm uses each
    sample's own statistics (never batch statistics); scale and shift start at zero.
    """

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(group_count(channels), channels)
        self.proj = ZeroLinear(cond_dim, 2 * channels)

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1 + scale, shift), each [B, C, 1, 1]."""
        scale, shift = self.proj(cond)[:, :, None, None].chunk(2, dim=1)
        return 1 + scale, shift

    def forward(self, x: torch.Tensor, cond: torch.Tensor | Modulations) -> torch.Tensor:
        gain, shift = self.modulated(cond)
        return torch.addcmul(shift, self.norm(x), gain)  # one pass over the field


class ThetaEmbedding(nn.Module):
    """θ [B, P] in [0, 1] → [B, E]: sampled slots mapped to [−1, 1], then a two-layer MLP.

    Constant slots carry 0.5 for every operator and hold no information, so they are dropped
    (``theta_mask``); the model is self-contained and takes the stored θ rows as they are.
    A discrete slot (integer, choice, boolean) maps its unit value to a setting through
    thresholds (``theta_edges``: per slot, the unit values where the setting changes); each
    threshold adds one ±1 input, θ_s ≥ edge. So the MLP sees the update policy (residual below
    0.75, convex above, in the presets) as a switch, not as a smooth coordinate it would have
    to learn a step function of.
    """

    def __init__(self, theta_dim: int, embed_dim: int,
                 theta_mask: Sequence[bool] | None = None,
                 theta_edges: Sequence[Sequence[float]] | None = None,
                 rule_slot: int | None = None) -> None:
        super().__init__()
        mask = [True] * theta_dim if theta_mask is None else [bool(m) for m in theta_mask]
        if len(mask) != theta_dim:
            raise ConfigError(f"theta_mask has {len(mask)} entries for a θ of {theta_dim} slots")
        index = [i for i, m in enumerate(mask) if m]
        if not index:
            raise ConfigError("θ has no sampled slot: nothing to condition the model on")
        edges = [[] for _ in range(theta_dim)] if theta_edges is None else theta_edges
        if len(edges) != theta_dim:
            raise ConfigError(f"theta_edges has {len(edges)} entries for a θ of {theta_dim} "
                              "slots")
        pairs = [(i, float(e)) for i in index for e in edges[i]]
        self.theta_dim = theta_dim
        # Saved with the weights, so a checkpoint carries the slot selection it was trained on.
        self.register_buffer("index", torch.tensor(index, dtype=torch.long))
        self.register_buffer("edge_slot", torch.tensor([i for i, _ in pairs], dtype=torch.long))
        self.register_buffer("edge_value", torch.tensor([e for _, e in pairs],
                                                        dtype=torch.float32))
        self.mlp = nn.Sequential(
            nn.Linear(len(index) + len(pairs), embed_dim), nn.GELU(),
            nn.Linear(embed_dim, embed_dim),
        )
        # Every setting of the rule slot as a unit interval [lo, hi) of θ_s.
        rule = [] if rule_slot is None else [rule_slot]
        bounds = [(i, lo, hi) for i in rule if edges[i]
                  for lo, hi in zip([-1.0, *map(float, edges[i])],
                                    [*map(float, edges[i]), 2.0], strict=True)]
        self.register_buffer("setting_slot", torch.tensor([i for i, _, _ in bounds],
                                                          dtype=torch.long))
        self.register_buffer("setting_lo", torch.tensor([lo for _, lo, _ in bounds]))
        self.register_buffer("setting_hi", torch.tensor([hi for _, _, hi in bounds]))

    @property
    def num_settings(self) -> int:
        """S: the settings of the rule slot (0 without one)."""
        return int(self.setting_slot.numel())

    def settings(self, theta: torch.Tensor) -> torch.Tensor:
        """θ [B, P] → [B, S]: one-hot of the rule slot's setting. A layer reading these has
        one weight per setting, fed only by the operators that have it, so its optimiser
        statistics are not shared across settings."""
        x = theta.index_select(1, self.setting_slot)
        lo, hi = self.setting_lo.to(theta.dtype), self.setting_hi.to(theta.dtype)
        return ((x >= lo) & (x < hi)).to(self.mlp[0].weight.dtype)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        if theta.ndim != 2 or theta.shape[1] != self.theta_dim:
            raise ValueError(f"θ has shape {tuple(theta.shape)}, expected [B, {self.theta_dim}]")
        dtype = self.mlp[0].weight.dtype
        x = theta.index_select(1, self.index).to(dtype) * 2 - 1
        if self.edge_slot.numel():
            above = theta.index_select(1, self.edge_slot) >= self.edge_value.to(theta.dtype)
            x = torch.cat([x, above.to(dtype) * 2 - 1], dim=1)
        return self.mlp(x)


def context_transitions(context: torch.Tensor | None) -> int:
    """K, the observed transitions of a context u_0 … u_K [B, K + 1, C, H, W]; 0 for None or
    for fewer than two states (a lone state shows no transition: no context)."""
    return 0 if context is None or context.shape[1] < 2 else int(context.shape[1]) - 1


class ContextEncoder(nn.Module):
    """Observed states u_0 … u_K [B, K + 1, C, H, W] (normalised) → the operator's context.

    θ does not fix an operator (its conv weights are a separate draw); its transitions do. The
    encoder returns two things:

    - ``embedding`` [B, E]: a shared strided CNN reads each state with its increment
      (u_i, (u_{i+1} − u_i)/s), pools over space, averages over the K transitions (any K from 1
      to ``context_max``) and an MLP ending in a ``ZeroLinear`` maps it to the conditioning
      width; it joins the θ embedding at every conditioning site.
    - ``field`` [B, 2C, H, W]: the mean increment and the last increment, each divided by the
      dataset-level increment scale s [C], fed to the U-AFNO stem at every step: where and how
      fast this operator moves the field, which a pooled vector cannot carry.
    """

    def __init__(self, channels: int, width: int, embed_dim: int, cond_dim: int,
                 context_max: int) -> None:
        super().__init__()
        self.context_max = context_max
        self.cond_dim = cond_dim
        self.field_channels = 2 * channels
        self.cnn = nn.Sequential(
            nn.Conv2d(2 * channels, width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
        )
        self.mlp = nn.Sequential(
            nn.Linear(2 * width, embed_dim), nn.GELU(), ZeroLinear(embed_dim, cond_dim),
        )

    def forward(self, states: torch.Tensor, increment_scale: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """states [B, K + 1, C, H, W], increment_scale s [C] → (embedding [B, E],
        field [B, 2C, H, W]); needs 1 ≤ K ≤ ``context_max``."""
        b, k = states.shape[0], states.shape[1] - 1
        if not 1 <= k <= self.context_max:
            raise ValueError(f"context holds {k} transitions ({k + 1} states); this model "
                             f"accepts 1 … {self.context_max}")
        inc = (states[:, 1:] - states[:, :-1]) / increment_scale[:, None, None]  # [B, K, C, H, W]
        pairs = torch.cat([states[:, :-1], inc], dim=2).flatten(0, 1)  # [B·K, 2C, H, W]
        per_step = self.cnn(pairs).mean(dim=(2, 3)).unflatten(0, (b, k))  # [B, K, 2w]
        field = torch.cat([inc.mean(dim=1), inc[:, -1]], dim=1)
        return self.mlp(per_step.mean(dim=1)), field
