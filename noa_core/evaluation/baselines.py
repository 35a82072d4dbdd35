"""Baselines scored on the same operators and steps as the NOA.

They say whether the criteria mean anything: θ does not determine the operator (its weights are
a separate draw), so a predictor that knows only θ and the start state already scores well on
small grids. Shapes: u_start [N, C, Hg, Wg]; a window [N, M, T+1, C, Hg, Wg] (state 0 is the
start state); predictions cover the T scored states [N, T, C, Hg, Wg].

- persistence:   û_t = u_start.
- θ-only:        the analytic predictor of each update policy without the operator's output:
                 residual û_t = u_start (dt·O is small), convex û_t = α^t·u_start (O averages
                 out), autoregressive û_t = 0 (the convex rule with α = 0).
- noise floor:   realization 0 against the mean of the other M − 1 (a model that reproduced one
                 realization exactly could not do better on the same scale); M ≥ 2.
- new weights:   the same θ, initial condition and noise seeds, another weight seed: the
                 realization mean of that operator against the ground truth's. The error left
                 to a model that knows θ perfectly but not the weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from noa_core.dynamics.seeding import derive_seed

NEW_WEIGHTS_PURPOSE = "evaluation-new-weights"


def persistence(u_start: np.ndarray, steps: int) -> np.ndarray:
    """û_t = u_start for t = 1 … T: [N, C, Hg, Wg] → [N, T, C, Hg, Wg]."""
    return np.repeat(np.asarray(u_start)[:, None], steps, axis=1)


def theta_only(u_start: np.ndarray, steps: int, policies: Sequence[str], alpha: float
               ) -> np.ndarray:
    """The analytic θ-only prediction [N, T, C, Hg, Wg] (module docstring), per policy."""
    u = np.asarray(u_start, dtype=np.float64)
    t = np.arange(1, steps + 1, dtype=np.float64)
    factors = []
    for p in policies:
        if p == "residual":
            factors.append(np.ones_like(t))
        elif p == "convex":
            factors.append(alpha ** t)
        elif p == "autoregressive":
            factors.append(np.zeros_like(t))
        else:
            raise ValueError(f"no θ-only rule for update policy {p!r}")
    f = np.asarray(factors)  # [N, T]
    return (f[:, :, None, None, None] * u[:, None]).astype(np.float32)


def noise_floor_pair(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(realization 0, mean of realizations 1 … M−1) over the scored states, each
    [N, T, C, Hg, Wg]; needs M ≥ 2."""
    if window.shape[1] < 2:
        raise ValueError(f"the noise floor needs M ≥ 2 realizations, got {window.shape[1]}")
    return window[:, 0, 1:], window[:, 1:, 1:].mean(1)


def new_weight_seed(weight_seed: int) -> int:
    """The other weight seed of an operator: derived from its stored one, never random."""
    return derive_seed(NEW_WEIGHTS_PURPOSE, int(weight_seed))
