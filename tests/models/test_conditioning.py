"""θ and context reach the NOA; a fresh model is a small residual; K = 0 is bit-exact."""

from __future__ import annotations

import pytest
import torch

from noa_core.config import ModelConfig, load_config
from noa_core.errors import ConfigError
from noa_core.models import NOABackbone, StepModule, build_model, perturb_zero_layers
from noa_core.models.conditioning import ZeroLinear

CFG = load_config("tiny")
C, G, K = CFG.dynamics.channels, CFG.dynamics.grid, CFG.model.context_max


@pytest.fixture(autouse=True)
def _one_thread():  # small tensors: one thread is faster, and immune to a busy shared CPU
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)



def _model(cfg: ModelConfig = CFG.model, perturb: bool = True) -> NOABackbone:
    torch.manual_seed(0)
    m = build_model(cfg, channels=C, theta_dim=12, theta_mask=[True] * 7 + [False] * 5)
    if perturb:
        perturb_zero_layers(m, 0.1, torch.Generator().manual_seed(1))
    return m.eval()


def _inputs(b: int = 2, k: int = K, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 12, generator=g), torch.randn(b, C, G, G, generator=g),
            torch.randn(b, k, C, G, G, generator=g))


@torch.no_grad()
def test_a_fresh_step_is_a_small_residual_that_ignores_theta() -> None:
    m = _model(perturb=False)
    theta, u, _ = _inputs()
    out = m.step(u, theta)
    rel = float((out - u).norm() / u.norm())
    assert 0 < rel < 0.1
    assert torch.equal(out, m.step(u, torch.rand(2, 12)))  # conditioning layers start at zero


def test_zero_conditioning_layers_get_gradients_at_init() -> None:
    """They start at zero but leave it: the step loss reaches the FiLM / AFNO ones, the head
    loss (heads read cond directly) the context encoder's output layer."""
    m = _model(perturb=False).train()
    theta, u, ctx = _inputs()
    traj = m.rollout(theta, u, 1, ctx)
    heads = m.heads(u, theta, ctx, rollout=traj)
    (traj[:, 1].square().mean() + sum(h.square().mean() for h in heads.values())).backward()
    zero = [mod for mod in m.modules() if isinstance(mod, ZeroLinear)]
    assert len(zero) > 10
    assert all(float(z.weight.grad.abs().sum()) > 0 for z in zero)


def test_theta_reaches_the_output_and_its_mlp_gets_gradients() -> None:
    m = _model()
    theta, u, _ = _inputs()
    with torch.no_grad():
        a, b = m.step(u, theta), m.step(u, theta.flip(0))
    assert float((a - b).abs().max()) > 1e-4
    m.step(u, theta).square().mean().backward()
    for p in m.theta_embedding.parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0


@torch.no_grad()
def test_constant_theta_slots_are_ignored() -> None:
    m = _model()
    theta, u, _ = _inputs()
    other = theta.clone()
    other[:, 7:] = torch.rand(2, 5)  # masked-out (constant) slots
    assert torch.equal(m.step(u, theta), m.step(u, other))
    with pytest.raises(ValueError, match=r"expected \[B, 12\]"):
        m.embed(theta[:, :5])
    with pytest.raises(ConfigError, match="no sampled slot"):
        build_model(CFG.model, channels=C, theta_dim=3, theta_mask=[False] * 3)


@torch.no_grad()
def test_context_changes_the_step_once_conditioning_is_on() -> None:
    m = _model()
    theta, u, ctx = _inputs()
    assert float((m.step(u, theta, ctx) - m.step(u, theta)).abs().max()) > 1e-5
    with pytest.raises(ValueError, match="at most 2"):
        m.step(u, theta, torch.randn(2, K + 1, C, G, G))


@torch.no_grad()
def test_k0_equals_the_model_without_a_context_branch_bit_for_bit() -> None:
    full = _model()
    bare = _model(CFG.model.model_copy(update={"context_max": 0}))
    assert bare.context_encoder is None
    missing, unexpected = bare.load_state_dict(full.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("context_encoder.") for k in unexpected)
    theta, u, ctx = _inputs()
    empty = ctx[:, :0]
    assert torch.equal(full.context_embedding(empty, 2), torch.zeros(2, CFG.model.theta_embed_dim))
    assert torch.equal(full.context_embedding(None, 2), torch.zeros(2, CFG.model.theta_embed_dim))
    assert torch.equal(full.embed(theta, empty), bare.embed(theta))
    assert torch.equal(full.step(u, theta, empty), bare.step(u, theta))
    assert torch.equal(full.rollout(theta, u, 3, empty), bare.rollout(theta, u, 3))
    h_full, h_bare = full.heads(u, theta, empty, rollout=bare.rollout(theta, u, 2)), \
        bare.heads(u, theta, rollout=bare.rollout(theta, u, 2))
    assert all(torch.equal(h_full[k], h_bare[k]) for k in h_bare)
    # The exported unit with a zero context embedding is the same step.
    step = StepModule(full)
    assert torch.equal(step(theta, full.context_embedding(empty, 2), u), bare.step(u, theta))


@torch.no_grad()
def test_field_stats_normalise_inside_the_step() -> None:
    m = _model()
    theta, u, _ = _inputs()
    mean, std = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.5])
    base = m.step(u, theta)
    m.set_field_stats(mean, std)
    shifted = m.step(u * std[:, None, None] + mean[:, None, None], theta)
    torch.testing.assert_close(shifted, base * std[:, None, None] + mean[:, None, None],
                               atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="std > 0"):
        m.set_field_stats(mean, torch.tensor([1.0, 0.0]))
