"""Every parameter receives a gradient from a rollout loss + head loss (the original: 92 % dead)."""

from __future__ import annotations

import pytest
import torch

from noa_core.config import load_config
from noa_core.models import NOABackbone, build_model, perturb_zero_layers


@pytest.fixture(autouse=True)
def _one_thread():  # small tensors: one thread is faster, and immune to a busy shared CPU
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def unreached(model: NOABackbone, theta: torch.Tensor, u: torch.Tensor, context: torch.Tensor,
              steps: int = 3, window: int = 2) -> list[str]:
    """Names of parameters whose gradient is missing or zero after rollout + heads losses."""
    model.zero_grad(set_to_none=True)
    traj = model.rollout(theta, u, steps, context, grad_window=window, checkpoint=True)
    heads = model.heads(u, theta, context, rollout=traj)
    loss = traj[:, -window:].square().mean() + sum(h.square().mean() for h in heads.values())
    loss.backward()
    return [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_every_parameter_gets_a_gradient_at_the_preset_grid(preset: str) -> None:
    cfg = load_config(preset)
    torch.manual_seed(0)
    model = build_model(cfg)
    perturb_zero_layers(model, 0.05, torch.Generator().manual_seed(1))  # as after some training
    c, g, k = cfg.dynamics.channels, cfg.dynamics.grid, cfg.model.context_max
    gen = torch.Generator().manual_seed(2)
    theta = torch.rand(2, 12, generator=gen)
    u = torch.randn(2, c, g, g, generator=gen)
    context = torch.randn(2, k, c, g, g, generator=gen)
    assert unreached(model, theta, u, context) == []
    assert model.num_parameters(trainable_only=True) == model.num_parameters()


def test_a_fresh_model_reaches_every_parameter_after_one_optimiser_step() -> None:
    """Zero-initialised conditioning layers block gradients upstream at step 0 only."""
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = build_model(cfg)
    c, g, k = cfg.dynamics.channels, cfg.dynamics.grid, cfg.model.context_max
    theta, u, context = torch.rand(2, 12), torch.randn(2, c, g, g), torch.randn(2, k, c, g, g)
    first = unreached(model, theta, u, context)
    assert first and all("theta_embedding" in n or "context_encoder" in n for n in first)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    opt.step()
    assert unreached(model, theta, u, context) == []
