"""The stochastic block: σ(t) schedules for the noise added to the bottleneck latent.

t is the rollout step (0 for the first update). Noise is drawn by the rollout, outside any
checkpointed step, so recomputation in the backward pass sees the same draw.
"""

from __future__ import annotations

import math

import torch

from noa_core.config import StochasticConfig


def noise_sigma(cfg: StochasticConfig, t: int) -> float:
    """σ at rollout step t: constant σ, σ·max(0, 1 − t/T) (annealing), σ(1 + ½ sin 2πt/P)."""
    if cfg.schedule == "constant":
        return cfg.sigma
    if cfg.schedule == "annealing":
        return cfg.sigma * max(0.0, 1.0 - t / cfg.anneal_steps)
    if cfg.schedule == "periodic":
        return cfg.sigma * (1.0 + 0.5 * math.sin(2 * math.pi * t / cfg.period))
    raise ValueError(f"unknown noise schedule {cfg.schedule!r}")


def draw_latent_noise(cfg: StochasticConfig, t: int, shape: tuple[int, ...],
                      like: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor | None:
    """σ(t)·ε, ε ~ N(0, 1) of ``shape`` on ``like``'s device and dtype; None when σ(t) = 0."""
    sigma = noise_sigma(cfg, t)
    if sigma == 0.0:
        return None
    eps = torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)
    return sigma * eps
