"""Vector quantisation with an EMA codebook, straight-through gradients and dead-code reset.

The codebook is a buffer updated only by exponential moving averages (the original let Adam and
the EMA both write it); the encoder receives the commitment loss β·‖z − sg(e)‖² and the
straight-through gradient of the reconstruction.
"""

from __future__ import annotations

import torch
from torch import nn


class EMAQuantizer(nn.Module):
    """K codes of dimension d: ``forward(z [B, d]) → (z_q [B, d], codes [B], commit loss)``."""

    def __init__(self, num_codes: int, dim: int, decay: float = 0.99, beta: float = 0.35,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.num_codes, self.dim, self.decay, self.beta, self.eps = num_codes, dim, decay, beta, eps
        self.register_buffer("codebook", torch.zeros(num_codes, dim))
        self.register_buffer("ema_count", torch.zeros(num_codes))
        self.register_buffer("ema_sum", torch.zeros(num_codes, dim))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the closest code (squared L2) for each row of z [B, d] → [B]."""
        d = (z.pow(2).sum(1, keepdim=True) - 2 * z @ self.codebook.T
             + self.codebook.pow(2).sum(1)[None])
        return d.argmin(1)

    @torch.no_grad()
    def init_from(self, z: torch.Tensor, gen: torch.Generator) -> None:
        """Initialise the codes on encoder outputs [B, d] (sampled with replacement if B < K)."""
        idx = torch.randint(len(z), (self.num_codes,), generator=gen)
        self.codebook.copy_(z[idx])
        self.ema_sum.copy_(z[idx])
        self.ema_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, codes: torch.Tensor) -> None:
        onehot = torch.nn.functional.one_hot(codes, self.num_codes).type_as(z)
        self.ema_count.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(onehot.T @ z, alpha=1 - self.decay)
        # Laplace smoothing keeps unused codes from dividing by ~0 (norms of thousands in the
        # original), then the codes are the smoothed cluster means.
        n = self.ema_count.sum()
        count = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n
        self.codebook.copy_(self.ema_sum / count[:, None])

    @torch.no_grad()
    def reset_dead(self, z: torch.Tensor, threshold: float, gen: torch.Generator) -> int:
        """Move codes whose EMA usage is below ``threshold``/K of the total onto batch latents."""
        share = self.ema_count / self.ema_count.sum().clamp_min(1e-12)
        dead = torch.nonzero(share < threshold / self.num_codes).flatten()
        if dead.numel() == 0 or len(z) == 0:
            return 0
        picks = z[torch.randint(len(z), (dead.numel(),), generator=gen)]
        self.codebook[dead] = picks
        self.ema_sum[dead] = picks
        self.ema_count[dead] = self.ema_count.mean()
        return int(dead.numel())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        codes = self.nearest(z.detach())
        e = self.codebook[codes]
        if self.training:
            self._ema_update(z.detach(), codes)
        commit = self.beta * (z - e.detach()).pow(2).mean()
        z_q = z + (e - z).detach()  # straight-through
        return z_q, codes, commit
