"""Feature heads: the NOA's own estimates of the three family embeddings.

Each head reads U-AFNO intermediate features (``get_intermediate_features``) plus the
conditioning vector ``cond`` [B, E]:

- INITIAL [B, 42]: ``bottleneck`` of the start state, spatial mean and std per channel → MLP;
- SUMMARY [B, 128]: ``bottleneck`` of every predicted state, spatial mean per channel, then the
  mean and max over time → MLP;
- TEMPORAL [B, 128]: every ``skip_i`` of every predicted state, spatial mean per channel, as a
  series [B, Σc_i, T] → 1D residual convolutions over time → mean over time → MLP.

The heads read the feature maps only through spatial statistics, so a state's features are first
reduced to one vector (``pool_features``: [N, 2c_L + Σc_i]); a rollout can collect these while it
steps (every step encodes its input state anyway) instead of encoding its states again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from noa_core.config import HeadsConfig


def _mlp(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, hidden), nn.GELU(), nn.Linear(hidden, c_out))


def spatial_mean_std(x: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] → [N, 2C]: per-channel mean and std (ε inside the root: finite gradient)."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    # Two passes: on the channels-last bottleneck of `small` [8, 96, 8, 8], ``Tensor.var``
    # took 200 µs and this mean and variance 32 µs (two cores); every rollout step pools.
    var = (x - mean).square().mean(dim=(2, 3))
    return torch.cat([mean.flatten(1), torch.sqrt(var + 1e-6)], dim=1)


def pool_features(bottleneck: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
    """One state's head inputs: bottleneck [N, c_L, h, w] and skips [N, c_i, H/2^i, W/2^i] (level
    order) → [N, 2c_L + Σc_i] = (bottleneck mean, bottleneck std, each skip's mean) per channel."""
    return torch.cat([spatial_mean_std(bottleneck)] + [s.mean(dim=(2, 3)) for s in skips], dim=1)


class TemporalResBlock(nn.Module):
    """x + conv(GELU(conv(GELU(x)))) over time: [B, D, T] → [B, D, T]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(dim, dim, 3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.gelu(self.conv1(F.gelu(x))))


class FeatureHeads(nn.Module):
    """INITIAL / SUMMARY / TEMPORAL heads over intermediate features (see the module docstring)."""

    def __init__(self, cfg: HeadsConfig, bottleneck_channels: int, skip_channels: list[int],
                 cond_dim: int) -> None:
        super().__init__()
        hid = cfg.hidden
        self.bottleneck_channels = bottleneck_channels
        self.initial = _mlp(2 * bottleneck_channels + cond_dim, hid, cfg.initial)
        self.summary = _mlp(2 * bottleneck_channels + cond_dim, hid, cfg.summary)
        self.temporal_in = nn.Conv1d(sum(skip_channels), hid, 1)
        self.temporal_blocks = nn.Sequential(TemporalResBlock(hid), TemporalResBlock(hid))
        self.temporal = _mlp(hid + cond_dim, hid, cfg.temporal)

    def forward(self, start: dict[str, torch.Tensor], states: dict[str, torch.Tensor],
                cond: torch.Tensor, steps: int) -> dict[str, torch.Tensor]:
        """start: features of the start state [B, …]; states: of T = ``steps`` predicted states
        flattened time-major per sample [B·T, …]; cond [B, E] → {name: [B, size]}."""
        return self.forward_pooled(self._pool(start), self._pool(states).unflatten(0, (-1, steps)),
                                   cond)

    @staticmethod
    def _pool(feats: dict[str, torch.Tensor]) -> torch.Tensor:
        skips = sorted((k for k in feats if k.startswith("skip_")), key=lambda k: int(k[5:]))
        return pool_features(feats["bottleneck"], [feats[k] for k in skips])

    def forward_pooled(self, start: torch.Tensor, states: torch.Tensor,
                       cond: torch.Tensor) -> dict[str, torch.Tensor]:
        """start [B, P] and states [B, T, P] from ``pool_features``, cond [B, E] →
        {name: [B, size]}."""
        c = self.bottleneck_channels
        initial = self.initial(torch.cat([start[:, :2 * c], cond], dim=1))
        z = states[..., :c]  # [B, T, c_L] spatial means of the bottleneck
        summary = self.summary(torch.cat([z.mean(dim=1), z.amax(dim=1), cond], dim=1))
        series = states[..., 2 * c:].transpose(1, 2)  # [B, Σc_i, T]
        t = self.temporal_blocks(self.temporal_in(series)).mean(dim=2)
        temporal = self.temporal(torch.cat([t, cond], dim=1))
        return {"initial": initial, "summary": summary, "temporal": temporal}
