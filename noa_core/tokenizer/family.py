"""Family encoders: the embeddings the NOA's feature heads are trained to match.

Each is the encoder half of an autoencoder of its family, trained on the train split and frozen:
- INITIAL 42 = the 14 manual features (standardised) ⊕ 28 from a small CNN over the window's
  first state [C, H, W] (the autoencoder reconstructs that state pooled to 8×8);
- SUMMARY 128 from the aggregated summary [3·D_s] (an MLP autoencoder);
- TEMPORAL 128 from the per-step series [H+1, D_t] (1D convolutions over time; the autoencoder
  reconstructs the series pooled to 16 steps).
Inputs are standardised with train statistics saved in the module (never batch statistics).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FIELD_POOL = 8  # the IC autoencoder reconstructs the first state pooled to 8×8
TIME_POOL = 16  # the temporal autoencoder reconstructs the series pooled to 16 steps
CLIP_Z = 10.0  # standardised inputs are clipped here, so a wild NOA rollout stays bounded


class Standardizer(nn.Module):
    """(x − mean) / std with saved train statistics over the last axis, NaN→0, clipped ±10."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Fit on train rows x [..., dim]."""
        flat = torch.nan_to_num(x.reshape(-1, x.shape[-1]).double())
        self.mean.copy_(flat.mean(0).float())
        std = flat.std(0, correction=0).float()
        self.std.copy_(torch.where(std < 1e-8, torch.ones_like(std), std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (torch.nan_to_num(x) - self.mean) / self.std
        return z.clamp(-CLIP_Z, CLIP_Z)


def _field(x: torch.Tensor) -> torch.Tensor:
    """Per-sample standardised field [B, C, H, W]: the CNN sees shape, not amplitude."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True, correction=0)
    return (x - mean) / (std + 1e-6 * (1 + mean.abs()))


class InitialEncoder(nn.Module):
    """[B, 14] manual features + first state [B, C, H, W] → [B, 14 + cnn_dim]."""

    def __init__(self, channels: int, cnn_dim: int, hidden: int) -> None:
        super().__init__()
        self.manual = Standardizer(14)
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 16, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, cnn_dim))
        self.decoder = nn.Sequential(nn.Linear(cnn_dim, hidden), nn.GELU(),
                                     nn.Linear(hidden, channels * FIELD_POOL * FIELD_POOL))

    def forward(self, manual: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.manual(manual), self.cnn(_field(x0))], 1)

    def reconstruction_loss(self, manual: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        f = _field(x0)
        target = F.adaptive_avg_pool2d(f, FIELD_POOL).flatten(1)
        return F.mse_loss(self.decoder(self.cnn(f)), target)


class SummaryEncoder(nn.Module):
    """[B, 3·D_s] → [B, dim]."""

    def __init__(self, in_dim: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = Standardizer(in_dim)
        self.encoder = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.decoder = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, in_dim))

    def forward(self, summary: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.norm(summary))

    def reconstruction_loss(self, summary: torch.Tensor) -> torch.Tensor:
        z = self.norm(summary)
        return F.mse_loss(self.decoder(self.encoder(z)), z)


class TemporalEncoder(nn.Module):
    """[B, T, D_t] → [B, dim] (1D convolutions over time, then the mean over time)."""

    def __init__(self, d_t: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = Standardizer(d_t)
        self.encoder = nn.Sequential(
            nn.Conv1d(d_t, dim, 5, padding=2), nn.GELU(),
            nn.Conv1d(dim, dim, 5, stride=2, padding=2), nn.GELU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(dim, dim))
        self.decoder = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(),
                                     nn.Linear(hidden, d_t * TIME_POOL))

    def forward(self, temporal: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.norm(temporal).transpose(1, 2))

    def reconstruction_loss(self, temporal: torch.Tensor) -> torch.Tensor:
        z = self.norm(temporal).transpose(1, 2)  # [B, D_t, T]
        target = F.adaptive_avg_pool1d(z, TIME_POOL).flatten(1)
        return F.mse_loss(self.decoder(self.encoder(z)), target)


class FamilyEncoders(nn.Module):
    """The three family encoders: ``forward`` gives {"initial", "summary", "temporal"}."""

    def __init__(self, channels: int, d_s_aggregated: int, d_t: int, cnn_dim: int,
                 summary_dim: int, temporal_dim: int, hidden: int) -> None:
        super().__init__()
        self.initial = InitialEncoder(channels, cnn_dim, hidden)
        self.summary = SummaryEncoder(d_s_aggregated, summary_dim, hidden)
        self.temporal = TemporalEncoder(d_t, temporal_dim, hidden)

    @property
    def dims(self) -> dict[str, int]:
        return {"initial": 14 + self.initial.cnn[-1].out_features,
                "summary": self.summary.encoder[-1].out_features,
                "temporal": self.temporal.encoder[-1].out_features}

    def forward(self, initial: torch.Tensor, summary: torch.Tensor, temporal: torch.Tensor,
                x0: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"initial": self.initial(initial, x0), "summary": self.summary(summary),
                "temporal": self.temporal(temporal)}
