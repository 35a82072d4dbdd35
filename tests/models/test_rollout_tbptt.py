"""Rollouts: shapes and time axis, truncated BPTT, activation checkpointing, the noise block."""

from __future__ import annotations

import pytest
import torch

from noa_core.config import StochasticConfig, load_config
from noa_core.models import NOABackbone, build_model, perturb_zero_layers
from noa_core.models.backbone import grad_states
from noa_core.models.stochastic import noise_sigma

CFG = load_config("tiny")
C, G = CFG.dynamics.channels, CFG.dynamics.grid


@pytest.fixture(autouse=True)
def _one_thread():  # small tensors: one thread is faster, and immune to a busy shared CPU
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)



def _model(stochastic: StochasticConfig | None = None) -> NOABackbone:
    cfg = CFG
    if stochastic is not None:
        cfg = CFG.model_copy(update={"model": CFG.model.model_copy(update={"stochastic":
                                                                           stochastic})})
    torch.manual_seed(0)
    m = build_model(cfg)
    perturb_zero_layers(m, 0.1, torch.Generator().manual_seed(1))
    return m


def _inputs(b: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.rand(b, 12, generator=g), torch.randn(b, C, G, G, generator=g)


def _grads(m: NOABackbone) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}


def test_rollout_shape_starts_with_x_start() -> None:
    m = _model()
    theta, u = _inputs(3)
    with torch.no_grad():
        out = m.rollout(theta, u, 4)
        assert out.shape == (3, 5, C, G, G)
        assert torch.equal(out[:, 0], u)
        torch.testing.assert_close(out[:, 1], m.step(u, theta))
        torch.testing.assert_close(out[:, 2], m.step(out[:, 1], theta))
        assert m.rollout(theta, u, 0).shape == (3, 1, C, G, G)
    with pytest.raises(ValueError, match="divisible"):
        m.rollout(theta, torch.randn(3, C, 18, 18), 1)


@pytest.mark.parametrize("with_context", [False, True])
def test_terms_shared_by_a_rollout_give_the_per_step_outputs_and_gradients(
        with_context: bool) -> None:
    """A rollout computes the conditioning modulations, and with a context its stem term and
    drift, once and every step reads them; its states and gradients equal those of stepping
    with θ (and the context), which recomputes them per step."""
    m = _model()
    theta, u = _inputs(2)
    ctx = torch.randn(2, 3, C, G, G, generator=torch.Generator().manual_seed(4)) \
        if with_context else None
    grads, runs = [], []
    for shared in (True, False):
        m.zero_grad(set_to_none=True)
        if shared:
            states = m.rollout(theta, u, 3, ctx)[:, 1:]
        else:
            states, x = [], u
            for _ in range(3):
                x = m.step(x, theta, ctx)
                states.append(x)
            states = torch.stack(states, dim=1)
        (states ** 2).mean().backward()
        grads.append(_grads(m))
        runs.append(states.detach())
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    shared_grads, step_grads = grads
    assert shared_grads.keys() == step_grads.keys()
    conditioning = [n for n in shared_grads if ".proj." in n or ".mod." in n]
    if with_context:
        conditioning += ["net.context_stem.weight", "drift_gate.weight"]
    assert conditioning and all(shared_grads[n].abs().max() > 0 for n in conditioning)
    for name, g in shared_grads.items():
        torch.testing.assert_close(g, step_grads[name], rtol=1e-4, atol=1e-7, msg=name)


def _reaches(m: NOABackbone, out: torch.Tensor, t: int) -> bool:
    """Whether state t of rollout ``out`` has a gradient path to a parameter of m."""
    params = [p for p in m.parameters() if p.requires_grad]
    grads = torch.autograd.grad(out[:, t].square().sum(), params, allow_unused=True,
                                retain_graph=True)
    return any(g is not None and bool(g.any()) for g in grads)


def test_a_window_with_an_offset_carries_gradients_through_its_own_updates_only() -> None:
    """grad_offset 1, W 2 over 5 updates: states 2 and 3 (updates 1 and 2) carry gradients,
    the warm-up before and the no-grad tail after do not; the values are the plain rollout's."""
    m = _model()
    theta, u = _inputs()
    out = m.rollout(theta, u, 5, grad_window=2, grad_offset=1)
    assert [_reaches(m, out, t) for t in range(1, 6)] == [False, True, True, False, False]
    with torch.no_grad():
        torch.testing.assert_close(out, m.rollout(theta, u, 5), rtol=0, atol=0)
    late = m.rollout(theta, u, 5, grad_window=2, grad_offset=9)  # clamped to the last W
    assert [_reaches(m, late, t) for t in range(1, 6)] == [False, False, False, True, True]


@pytest.mark.parametrize(("window", "offset"),
                         [(2, 1), (2, 9), (2, None), (3, 0), (7, None), (None, None)])
def test_grad_states_names_the_states_a_gradient_reaches(window: int | None,
                                                         offset: int | None) -> None:
    """The trainer's features skip the backward of every other state: it must not miss one."""
    m = _model()
    theta, u = _inputs()
    out = m.rollout(theta, u, 5, grad_window=window, grad_offset=offset)
    live = grad_states(5, window, offset)
    assert [_reaches(m, out, t) for t in range(6)] == \
        [live.start <= t < live.stop for t in range(6)]


def test_tbptt_warm_up_has_no_gradient_path() -> None:
    m = _model()
    theta, u = _inputs()
    steps, window = 5, 2
    out = m.rollout(theta, u, steps, grad_window=window)
    out[:, steps - window].square().mean().backward()  # the last warm-up state
    assert all(p.grad is None or not p.grad.any() for p in m.parameters())
    m.zero_grad(set_to_none=True)

    out = m.rollout(theta, u, steps, grad_window=window)
    out[:, -1].square().mean().backward()
    truncated = _grads(m)
    m.zero_grad(set_to_none=True)
    # The same gradients as W grad steps from the detached warm-up state.
    start = out[:, steps - window].detach()
    m.rollout(theta, start, window)[:, -1].square().mean().backward()
    manual = _grads(m)
    assert truncated.keys() == manual.keys() and truncated
    for name, g in truncated.items():
        torch.testing.assert_close(g, manual[name], msg=name)


def test_checkpointing_gives_the_same_gradients() -> None:
    m = _model()
    theta, u = _inputs()
    results = []
    for ckpt in (False, True):
        m.zero_grad(set_to_none=True)
        out = m.rollout(theta, u, 4, grad_window=3, checkpoint=ckpt)
        out[:, 1:].square().mean().backward()
        results.append((out.detach(), _grads(m)))
    (o0, g0), (o1, g1) = results
    assert torch.equal(o0, o1) and g0.keys() == g1.keys()
    for name, g in g0.items():
        torch.testing.assert_close(g1[name], g, rtol=1e-5, atol=1e-7, msg=name)


def test_noise_only_when_enabled_and_asked() -> None:
    plain = _model()
    noisy = _model(StochasticConfig(enabled=True, schedule="constant", sigma=0.5))
    off = _model(StochasticConfig(enabled=False, sigma=0.5))
    theta, u = _inputs()
    with torch.no_grad():
        ref = plain.rollout(theta, u, 3)
        assert torch.equal(noisy.rollout(theta, u, 3), ref)  # noise=False: deterministic
        assert torch.equal(off.rollout(theta, u, 3, noise=True), ref)  # disabled block
        a = noisy.rollout(theta, u, 3, noise=True, generator=torch.Generator().manual_seed(5))
        b = noisy.rollout(theta, u, 3, noise=True, generator=torch.Generator().manual_seed(5))
        c = noisy.rollout(theta, u, 3, noise=True, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, ref) and not torch.equal(a, c)


def test_noisy_checkpointed_rollout_replays_the_same_noise() -> None:
    m = _model(StochasticConfig(enabled=True, sigma=0.5))
    theta, u = _inputs()
    grads = []
    for ckpt in (False, True):
        m.zero_grad(set_to_none=True)
        gen = torch.Generator().manual_seed(7)
        m.rollout(theta, u, 3, checkpoint=ckpt, noise=True, generator=gen)[:, -1].sum().backward()
        grads.append(_grads(m))
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-5, atol=1e-7, msg=name)


def test_noise_schedules() -> None:
    const = StochasticConfig(enabled=True, schedule="constant", sigma=0.2)
    anneal = StochasticConfig(enabled=True, schedule="annealing", sigma=0.2, anneal_steps=10)
    periodic = StochasticConfig(enabled=True, schedule="periodic", sigma=0.2, period=8)
    assert [noise_sigma(const, t) for t in (0, 50)] == [0.2, 0.2]
    assert [noise_sigma(anneal, t) for t in (0, 5, 10, 20)] == pytest.approx([0.2, 0.1, 0, 0])
    assert [noise_sigma(periodic, t) for t in (0, 2, 6)] == pytest.approx([0.2, 0.3, 0.1])


@torch.no_grad()
def test_a_bf16_autocast_rollout_runs_with_the_spectral_path_in_fp32() -> None:
    m = _model()
    theta, u = _inputs()
    ref = m.rollout(theta, u, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m.rollout(theta, u, 2)
    assert torch.isfinite(out).all()
    assert float((out.float() - ref).abs().max()) < 0.05 * float(ref.abs().max())
