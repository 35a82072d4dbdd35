"""get_intermediate_features shapes, feature heads, parameter counts per preset, config errors."""

from __future__ import annotations

import pytest
import torch

from noa_core.config import ModelConfig, load_config
from noa_core.errors import ConfigError
from noa_core.models import MODELS, build_model, perturb_zero_layers


@pytest.fixture(autouse=True)
def _one_thread():  # small tensors: one thread is faster, and immune to a busy shared CPU
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@torch.no_grad()
def test_intermediate_features_of_the_paper_u_afno_at_64() -> None:
    cfg = load_config("paper")
    model = build_model(cfg).eval()
    u, theta = torch.randn(1, 3, 64, 64), torch.rand(1, 12)
    feats = model.get_intermediate_features(u, model.embed(theta))
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "bottleneck": (1, 256, 8, 8),
        "skip_0": (1, 32, 64, 64),
        "skip_1": (1, 64, 32, 32),
        "skip_2": (1, 128, 16, 16),
    }


@torch.no_grad()
def test_intermediate_feature_selection_and_errors() -> None:
    cfg = load_config("tiny")
    model = build_model(cfg).eval()
    u, cond = torch.randn(2, 2, 16, 16), model.embed(torch.rand(2, 12))
    assert list(model.get_intermediate_features(u, cond, "bottleneck")) == ["bottleneck"]
    skips = model.get_intermediate_features(u, cond, "skips", skip_levels=[1])
    assert {k: tuple(v.shape) for k, v in skips.items()} == {"skip_1": (2, 16, 8, 8)}
    with pytest.raises(ValueError, match="do not exist"):
        model.get_intermediate_features(u, cond, "all", skip_levels=(0, 1, 2))
    with pytest.raises(ValueError, match="extract_from"):
        model.get_intermediate_features(u, cond, "decoder")


def test_heads_have_the_family_sizes_and_default_to_a_horizon_rollout() -> None:
    cfg = load_config("tiny")
    model = build_model(cfg).eval()
    theta, u = torch.rand(2, 12), torch.randn(2, 2, 16, 16)
    with torch.no_grad():
        out = model.heads(u, theta, rollout=model.rollout(theta, u, 4))
        assert {k: tuple(v.shape) for k, v in out.items()} == {
            "initial": (2, 42), "summary": (2, 128), "temporal": (2, 128)}
        assert model.horizon == cfg.dynamics.feature_horizon
        default = model.heads(u, theta)
        again = model.heads(u, theta, rollout=model.rollout(theta, u, model.horizon))
        assert all(torch.equal(default[k], again[k]) for k in out)
        with pytest.raises(ValueError, match="T ≥ 1"):
            model.heads(u, theta, rollout=u[:, None])


@pytest.mark.parametrize(("window", "checkpoint"), [(None, False), (2, True)])
def test_forward_heads_reuse_the_rollout_features(window: int | None, checkpoint: bool) -> None:
    """``forward`` takes the heads' inputs from the steps' own encoder passes: the same heads
    as a second encoder pass over the rollout (``heads``), and the same parameter gradients
    when every step keeps its graph. In float64: the two orders of summation then agree to
    far below any real difference (in float32 single gradient entries with cancellations
    differ by 1e-4)."""
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = build_model(cfg)
    perturb_zero_layers(model, 0.1, torch.Generator().manual_seed(1))
    model = model.double()
    theta, u = torch.rand(3, 12).double(), torch.randn(3, 2, 16, 16).double()
    traj, heads = model(theta, u, 5, grad_window=window, checkpoint=checkpoint)
    assert torch.equal(traj, model.rollout(theta, u, 5))
    again = model.heads(u, theta, rollout=traj)
    for k in heads:
        torch.testing.assert_close(heads[k], again[k], atol=1e-10, rtol=1e-10)
    if window is None:
        grads = torch.autograd.grad(sum(h.square().sum() for h in heads.values()),
                                    model.parameters(), allow_unused=True, retain_graph=True)
        refs = torch.autograd.grad(sum(h.square().sum() for h in again.values()),
                                   model.parameters(), allow_unused=True)
        for g, r in zip(grads, refs, strict=True):
            assert (g is None) == (r is None)
            if g is not None:
                torch.testing.assert_close(g, r, atol=1e-9, rtol=1e-9)
    with pytest.raises(ValueError, match="at least 1 step"):
        model(theta, u, 0)


@pytest.mark.parametrize(("preset", "low", "high"),
                         [("tiny", 0, 300_000), ("small", 700_000, 1_500_000)])
def test_parameter_counts(preset: str, low: int, high: int) -> None:
    assert low <= build_model(load_config(preset)).num_parameters() <= high


def test_model_config_errors_and_registry() -> None:
    assert "u_afno" in MODELS
    with pytest.raises(ValueError, match="must divide the bottleneck"):
        ModelConfig(base_channels=8, levels=2, max_channels=32, afno_num_blocks=3)
    with pytest.raises(ValueError, match="above max_channels"):
        ModelConfig(base_channels=64, max_channels=32)
    with pytest.raises(ConfigError, match="unknown"):
        build_model(ModelConfig(name="resnet"), channels=2, theta_dim=12)
    with pytest.raises(ConfigError, match="needs channels"):
        build_model(ModelConfig())
