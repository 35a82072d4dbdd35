"""Rollouts in the canonical layout: one operator, all M realizations in one batch.

``X_t = policy(X_{t−1}, O_θ(X_{t−1}) + noise)`` for t = 1 … S; the trajectory holds S + 1 states,
X_0 first. Noise is seeded per (sample, realization, step), the thread count is fixed for the
call, and the computation is float32, so a sample replays bit-identically in any process or shard
on the same machine and software.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from noa_core.dynamics.operator import CNOOperator, correlation_filter, step_noise
from noa_core.errors import ReplayError


def apply_policy(policy: str, x: torch.Tensor, o: torch.Tensor, dt: float, alpha: float
                 ) -> torch.Tensor:
    """One update: residual x + dt·O, convex α·x + (1 − α)·O, autoregressive O."""
    if policy == "residual":
        return x + dt * o
    if policy == "convex":
        return alpha * x + (1.0 - alpha) * o
    if policy == "autoregressive":
        return o
    raise ValueError(f"unknown update policy {policy!r}")


@contextlib.contextmanager
def fixed_num_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, then restore the previous count.

    CPU kernels may split reductions by thread, so the stored ground truth fixes the count.
    """
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def rollout(op: CNOOperator, x0: torch.Tensor, steps: int, realizations: int, noise_base: int,
            *, return_all_steps: bool = True, num_threads: int | None = 1, label: str = "rollout"
            ) -> torch.Tensor:
    """Roll one operator out from one initial condition.

    Args:
        op: the built operator.
        x0: initial condition [C, H, W] (shared by every realization).
        steps: S, the number of updates.
        realizations: M, the noise realizations batched together.
        noise_base: the sample's noise seed; step t of realization m uses seed (base, m, t).
        return_all_steps: return [M, S+1, C, H, W] (X_0 first), else the last state [M, C, H, W].
        num_threads: the fixed intra-op thread count (``None`` leaves the current one).
        label: names the sample in errors.

    Raises:
        ReplayError: a state became non-finite (checked without a per-step device sync).
    """
    if x0.dim() != 3:
        raise ValueError(f"{label}: initial condition must be [C, H, W], got {list(x0.shape)}")
    if steps < 0 or realizations < 1:
        raise ValueError(f"{label}: need steps ≥ 0 and realizations ≥ 1, got {steps}, "
                         f"{realizations}")
    spec = op.spec
    device = op.out_weight.device
    grid = x0.shape[-1]
    ctx = fixed_num_threads(num_threads) if num_threads else contextlib.nullcontext()
    with ctx, torch.inference_mode():
        x = x0.to(device=device, dtype=torch.float32).unsqueeze(0).repeat(realizations, 1, 1, 1)
        out = None
        if return_all_steps:
            out = torch.empty((realizations, steps + 1, *x.shape[1:]), device=device)
            out[:, 0] = x
        filt = correlation_filter(grid, spec.spatial_correlation, device)
        # Accumulated on the device and read once at the end: no host sync per step.
        finite = torch.ones((), dtype=torch.bool, device=device)
        for t in range(1, steps + 1):
            noise = None
            if spec.noise_scale > 0:
                noise = step_noise(op, noise_base, t, realizations, grid, filt, device)
            x = apply_policy(spec.update_policy, x, op(x, noise), spec.dt, spec.alpha)
            finite &= torch.isfinite(x).all()
            if out is not None:
                out[:, t] = x
        if not bool(finite):
            raise ReplayError(_divergence_message(label, out, steps))
        return out if out is not None else x


def _divergence_message(label: str, out: torch.Tensor | None, steps: int) -> str:
    if out is None:
        return f"{label}: the rollout became non-finite (NaN/Inf) within {steps} steps"
    bad = (~torch.isfinite(out)).flatten(2).any(-1).any(0)  # [S+1]
    first = int(torch.nonzero(bad)[0])
    return f"{label}: the rollout became non-finite (NaN/Inf) at step {first} of {steps}"
