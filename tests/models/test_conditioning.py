"""θ and context reach the NOA; a fresh model is a small residual; K = 0 is bit-exact."""

from __future__ import annotations

import pytest
import torch

from noa_core.config import ModelConfig, load_config
from noa_core.errors import ConfigError
from noa_core.models import NOABackbone, StepModule, build_model, perturb_zero_layers
from noa_core.models.backbone import Conditioning
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
    """θ, u_start and a context u_0 … u_k [b, k + 1, C, G, G] ending at u_start."""
    g = torch.Generator().manual_seed(seed)
    theta, ctx = torch.rand(b, 12, generator=g), torch.randn(b, k + 1, C, G, G, generator=g)
    return theta, ctx[:, -1].clone(), ctx


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
    for k in range(1, K + 1):  # one model serves every K up to context_max
        assert m.step(u, theta, ctx[:, -k - 1:]).shape == u.shape
    with pytest.raises(ValueError, match=f"accepts 1 … {K}"):
        m.step(u, theta, torch.randn(2, K + 2, C, G, G))


@torch.no_grad()
def test_a_context_field_without_its_gate_is_refused_by_step_and_rollout() -> None:
    m = _model()
    theta, u, ctx = _inputs()
    c = m.condition(theta, ctx)
    ungated = Conditioning(c.vector, c.field, None, c.gain)
    with pytest.raises(ValueError, match="extrapolation gate"):
        m.step(u, cond=ungated)
    with pytest.raises(ValueError, match="extrapolation gate"):
        m.rollout(theta, u, 2, cond=ungated)


@torch.no_grad()
def test_the_drift_gate_extrapolates_the_observed_motion() -> None:
    """With every other conditioning layer at zero and the gate's bias at 1, a step adds the
    mean observed increment (u_K − u_0)/K to the fresh model's own small update."""
    m = _model(perturb=False)
    m.set_field_stats(torch.zeros(C), torch.full((C,), 2.0), torch.full((C,), 0.05))
    theta, u, ctx = _inputs()
    base = m.step(u, theta)  # fresh: the context embedding is zero, the gate is zero
    assert torch.equal(m.step(u, theta, ctx), m.step(u, theta, cond=m.condition(theta, ctx)))
    m.drift_gate.bias.fill_(1.0)
    drift = (ctx[:, -1] - ctx[:, 0]) / K
    moved = m.step(u, theta, ctx) - base
    # The context stem also sees the field, through the fresh (1e-3 scaled) output conv.
    assert float((moved - drift).abs().max()) < 0.05 * float(drift.abs().max())


@torch.no_grad()
def test_k0_equals_the_model_without_a_context_branch_bit_for_bit() -> None:
    full = _model()
    bare = _model(CFG.model.model_copy(update={"context_max": 0}))
    assert bare.context_encoder is None
    missing, unexpected = bare.load_state_dict(full.state_dict(), strict=False)
    assert not missing and unexpected
    assert {k.split(".")[0] for k in unexpected} == {"context_encoder", "drift_gate", "net"}
    assert all(k.startswith(("context_encoder.", "drift_gate.", "net.context_stem."))
               for k in unexpected)
    theta, u, ctx = _inputs()
    zero = torch.zeros(2, CFG.model.theta_embed_dim)
    for empty in (None, ctx[:, :0], ctx[:, -1:]):  # K = 0: no state, or the start state alone
        assert torch.equal(full.context_embedding(empty, 2), zero)
        assert torch.equal(full.embed(theta, empty), bare.embed(theta))
        assert torch.equal(full.step(u, theta, empty), bare.step(u, theta))
        assert torch.equal(full.rollout(theta, u, 3, empty), bare.rollout(theta, u, 3))
        h_full, h_bare = full.heads(u, theta, empty, rollout=bare.rollout(theta, u, 2)), \
            bare.heads(u, theta, rollout=bare.rollout(theta, u, 2))
        assert all(torch.equal(h_full[k], h_bare[k]) for k in h_bare)
        a, _ = full(theta, u, 2, empty)
        b, _ = bare(theta, u, 2)
        assert torch.equal(a, b)
    # The exported unit with an all-zero context (embedding and field) is the same step.
    step = StepModule(full)
    assert torch.equal(step(theta, zero, u, torch.zeros(2, 2 * C, G, G)), bare.step(u, theta))
    assert not torch.equal(full.step(u, theta, ctx), bare.step(u, theta))


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


def test_discrete_theta_slots_enter_as_switches_at_their_edges() -> None:
    """The update policy (residual below 0.75, convex above in `small`) and the other discrete
    slots reach the θ MLP as ±1 switches at the unit values where their setting changes."""
    cfg = load_config("small")
    from noa_core.dynamics.parameters import ThetaSpace, map_unit

    space = ThetaSpace(cfg.parameter_space, cfg.dynamics)
    m = build_model(cfg)
    emb = m.theta_embedding
    policy = space.names.index("update_policy")
    pairs = list(zip(emb.edge_slot.tolist(), emb.edge_value.tolist(), strict=True))
    assert (policy, 0.75) in pairs
    assert all(space.sampled.count(i) for i, _ in pairs)  # constants carry no edges
    spec = space.specs[policy]
    below, above = torch.full((1, 12), 0.5), torch.full((1, 12), 0.5)
    below[0, policy], above[0, policy] = 0.7499, 0.7501
    assert (map_unit(spec, 0.7499), map_unit(spec, 0.7501)) == ("residual", "convex")
    x_in = []
    emb.mlp[0].register_forward_hook(lambda _m, inp, _out: x_in.append(inp[0]))
    with torch.no_grad():
        emb(below), emb(above)
    switch = len(emb.index) + pairs.index((policy, 0.75))
    assert (float(x_in[0][0, switch]), float(x_in[1][0, switch])) == (-1.0, 1.0)
    assert float((x_in[1] - x_in[0]).abs().max()) == 2.0  # the switch moved by 2, the rest ~0


def test_the_extrapolation_gate_keeps_one_weight_per_discrete_setting() -> None:
    """settings(θ) is the one-hot update policy (``model.rule_slot``); the gate's table
    column of a setting learns only from operators that have it (the convex column gets
    nothing from a residual one)."""
    cfg = load_config("tiny")
    from noa_core.dynamics.parameters import ThetaSpace

    space = ThetaSpace(cfg.parameter_space, cfg.dynamics)
    torch.manual_seed(0)
    m = build_model(cfg)
    emb = m.theta_embedding
    policy = space.names.index("update_policy")
    theta = torch.full((2, 12), 0.5)
    theta[:, policy] = torch.tensor([0.1, 0.9])  # residual, convex
    onehot = emb.settings(theta)
    assert emb.setting_slot.tolist() == [policy, policy]
    assert onehot.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    columns = [0, 1]
    ctx = torch.randn(2, 3, C, G, G)
    m.step(ctx[:, -1], theta, ctx)[0].square().sum().backward()  # operator 0 only
    grad = m.drift_table.weight.grad  # [C, S]
    assert float(grad[:, columns[0]].abs().sum()) > 0
    assert float(grad[:, columns[1]].abs().sum()) == 0.0
