"""Physical properties of the CNO family, with bounds taken from the reference measurements.

Reference (spinlock_dynamics.md §1, §4, §11): O(aX) ≈ O(X) to 6e-6–3e-5; residual rollouts
drift by ~0.9–1.7 rms over 255 steps (≈0.2–0.45 over 64); convex rollouts contract to an
attractor of std ≈ 0.3–0.65 within ~10 steps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noa_core.config import load_config
from noa_core.dynamics.initial_conditions import sample_initial_condition
from noa_core.dynamics.operator import (
    CNOOperator,
    correlation_filter,
    hidden_widths,
    step_noise,
)
from noa_core.dynamics.parameters import OperatorSpec, ThetaSpace
from noa_core.dynamics.rollout import rollout


def _spec(**kw) -> OperatorSpec:
    base = dict(num_layers=3, base_channels=12, kernel_size=3, activation="gelu",
                noise_scale=1e-3, spatial_correlation=0.0, update_policy="residual",
                dt=0.01, alpha=0.5)
    return OperatorSpec(**{**base, **kw})


def _field(seed: int, channels: int = 3, grid: int = 32, std: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return std * torch.randn(channels, grid, grid, generator=g)


@pytest.mark.parametrize("layers", [2, 3, 4, 5])
@pytest.mark.parametrize(("scale", "bound"), [(0.1, 2e-3), (0.5, 1e-4), (3.0, 1e-4),
                                              (10.0, 1e-4)])
def test_operator_is_nearly_scale_invariant(layers: int, scale: float, bound: float) -> None:
    """|O(aX) − O(X)|∞ / |O(X)|∞ is small for a > 0 (bias-free first conv + instance norm).

    The only departure is the instance-norm eps (1e-5) against the first conv's variance, which
    scales with a²: hence a looser bound for a = 0.1 (variance 100× smaller).
    """
    op = CNOOperator.build(_spec(num_layers=layers, base_channels=8), 3, weight_seed=11)
    x = _field(1)[None]
    out = op(x)
    rel = float((op(scale * x) - out).abs().max() / out.abs().max())
    assert rel < bound


def test_architecture_follows_the_original() -> None:
    """Widths c·2^min(i,2); residual blocks (with 1×1 skips where widths change) when L > 3."""
    spec = _spec(num_layers=5, base_channels=4, kernel_size=5)
    assert hidden_widths(spec) == [4, 8, 16, 16, 16]
    op = CNOOperator.build(spec, 3, weight_seed=3)
    skips = [blk.skip is not None for blk in op.hidden]
    assert skips == [False, True, True, False, False]
    assert op.hidden_channels == 16
    assert op.stem.weight.shape == (4, 3, 5, 5)
    shallow = CNOOperator.build(_spec(num_layers=3, base_channels=4), 3, weight_seed=3)
    assert all(not hasattr(b, "skip") for b in shallow.hidden)
    # PyTorch's default init bound 1/√fan_in holds for every conv.
    w = op.stem.weight
    assert float(w.abs().max()) <= 1 / np.sqrt(3 * 25) + 1e-7


def test_residual_rollouts_drift_slowly_and_convex_ones_contract() -> None:
    cfg = load_config("small")
    space = ThetaSpace(cfg.parameter_space, cfg.dynamics)
    u, _ = space.sample(16, seed=3)
    drift = {"residual": [], "convex": []}
    final_std = {"residual": [], "convex": []}
    for i in range(16):
        for policy in ("residual", "convex"):
            spec = space.map(u[i])
            spec = OperatorSpec(**{**spec.as_dict(), "update_policy": policy})
            op = CNOOperator.build(spec, 3, weight_seed=100 + i)
            ic, _ = sample_initial_condition(cfg.initial_conditions, 32, 3, seed=7 + i)
            ic = ic / ic.std() * 1.2  # the reference's IC std
            traj = rollout(op, ic, 64, 1, noise_base=5 + i)[0]
            drift[policy].append(float((traj[-1] - traj[0]).pow(2).mean().sqrt()))
            final_std[policy].append(float(traj[-1].std()))
    # Residual: X moves by dt·O per step (|O| ≲ 1), so ≤ 0.64 rms over 64 steps, and does move.
    assert min(drift["residual"]) > 0.05 and max(drift["residual"]) < 0.6
    assert all(abs(s - 1.2) < 0.6 for s in final_std["residual"])
    # Convex: from std 1.2 to the operator's attractor, std 0.15–0.8 (reference 0.3–0.65).
    assert min(final_std["convex"]) > 0.15 and max(final_std["convex"]) < 0.8
    assert np.median(drift["convex"]) > 2 * np.median(drift["residual"])


def test_convex_contracts_from_a_large_initial_condition() -> None:
    op = CNOOperator.build(_spec(update_policy="convex", noise_scale=0.0), 3, weight_seed=5)
    traj = rollout(op, _field(2, std=5.0), 32, 1, noise_base=1)[0]
    stds = traj.flatten(1).std(dim=1)
    assert float(stds[0]) > 4.5 and float(stds[-1]) < 0.8
    # Contraction by (1 − α) per step towards O(X): after 10 steps the IC is < 0.1 % of X.
    assert float(stds[10]) < 1.0


def test_zero_noise_gives_identical_realizations_and_noise_different_ones() -> None:
    ic = _field(3)
    quiet = CNOOperator.build(_spec(noise_scale=0.0), 3, weight_seed=8)
    traj = rollout(quiet, ic, 16, 3, noise_base=9)
    assert torch.equal(traj[0], traj[1]) and torch.equal(traj[0], traj[2])
    noisy = CNOOperator.build(_spec(noise_scale=0.1), 3, weight_seed=8)
    traj = rollout(noisy, ic, 16, 3, noise_base=9)
    # σ = 0.1 before a 1×1 output with |w| ≈ 1/√c: ~0.1/√3 per step, times dt over 16 steps.
    spread = float((traj[0, -1] - traj[1, -1]).abs().max())
    assert spread > 1e-3


def test_realization_does_not_depend_on_how_many_are_batched() -> None:
    """Realization m draws the same noise whatever M is; its states then agree to float rounding.

    Only to rounding: a conv over a batch of 3 may sum in another order than over a batch of 1,
    which is why stored ground truth fixes the layout (one operator, all its M at once).
    """
    op = CNOOperator.build(_spec(noise_scale=0.3, spatial_correlation=0.2), 3, weight_seed=4)
    filt = correlation_filter(32, 0.2)
    for step in (1, 5):
        assert torch.equal(step_noise(op, 77, step, 3, 32, filt)[0],
                           step_noise(op, 77, step, 1, 32, filt)[0])
    assert not torch.equal(step_noise(op, 77, 1, 2, 32, filt)[0],
                           step_noise(op, 77, 1, 2, 32, filt)[1])
    ic = _field(5)
    three = rollout(op, ic, 8, 3, noise_base=77)
    one = rollout(op, ic, 8, 1, noise_base=77)
    assert float((three[0] - one[0]).abs().max()) < 1e-5


def test_spatial_correlation_filter_keeps_unit_variance_and_smooths() -> None:
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(64, 32, 32, generator=g)
    filt = correlation_filter(32, 0.3)
    smooth = torch.fft.irfft2(torch.fft.rfft2(eps) * filt, s=(32, 32))
    assert abs(float(smooth.var()) - 1.0) < 0.1
    lag1 = lambda f: float((f * f.roll(1, -1)).mean() / (f * f).mean())  # noqa: E731
    assert lag1(eps) < 0.05 and lag1(smooth) > 0.5
    assert correlation_filter(32, 0.0) is None


def _motion_for(space: ThetaSpace, u: np.ndarray) -> torch.Tensor:
    """X_t − X_0 over 8 steps [M, 9, C, H, W]: what the operator did (X_0 is shared)."""
    op = CNOOperator.build(space.map(u), 3, weight_seed=42)
    traj = rollout(op, _field(9), 8, 2, noise_base=13)
    return traj - traj[:, :1]


def test_every_sampled_slot_changes_the_rollout() -> None:
    """Moving one sampled slot across its range changes the 8-step motion X_t − X_0 by > 5 % rms.

    The motion, not the state: under the residual policy X_t stays within dt·t of X_0.
    """
    cfg = load_config("small")
    space = ThetaSpace(cfg.parameter_space, cfg.dynamics)
    base = np.full(space.dim, 0.5)
    base[space.names.index("noise_scale")] = 1.0  # σ = 1, so the noise slots can act
    ref = _motion_for(space, base)
    assert space.sampled, "the small preset samples slots"
    for j in space.sampled:
        name = space.names[j]
        candidates = []
        for end in (0.0, 1.0):
            other = base.copy()
            other[j] = end
            if space.values(other)[name] != space.values(base)[name]:
                candidates.append(other)
        assert candidates, f"slot {name} maps 0, 0.5 and 1 to one value: it is not sampled"
        other = candidates[0]
        changed = _motion_for(space, other)
        rel = float((changed - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())
        assert rel > 0.05, f"slot {name} changed the rollout by only {rel:.2e}"


def test_output_space_noise_has_the_law_of_hidden_noise() -> None:
    """σ·S η after the 1×1 output has the covariance of σ·W ε added on the hidden features."""
    op = CNOOperator.build(_spec(base_channels=6, noise_scale=1.0), 3, weight_seed=21)
    noise = torch.cat([step_noise(op, 5, t, 4, 32, None) for t in range(1, 9)])  # [32, 3, H, W]
    flat = noise.permute(1, 0, 2, 3).reshape(3, -1).double()
    empirical = flat @ flat.T / flat.shape[1]
    w = op.out_weight.flatten(1).double()
    hidden = w @ w.T  # Cov(W ε) for ε ~ N(0, I) on the hidden channels
    assert torch.allclose(empirical, hidden, atol=0.03 * float(hidden.diag().max()))
    # And the operator adds exactly σ times that noise to its deterministic output.
    x = _field(4)[None]
    n = step_noise(op, 5, 1, 1, 32, None)
    assert torch.allclose(op(x, n) - op(x), n, atol=1e-5)
