"""The CUDA-path watchdog, exercised on the CPU: no GPU here, so the hang is injected.

The worker process is the real one; only the hang is artificial (``before_call`` sleeps in the
worker before the rollout, as a stuck device kernel would block it).
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
import torch

from noa_core.dynamics.replay import CNOReplayer
from noa_core.errors import ReplayError


def _ic() -> torch.Tensor:
    return torch.randn(2, 16, 16, generator=torch.Generator().manual_seed(1))


def test_hung_worker_fails_within_its_timeout(tiny_cfg) -> None:
    hang = functools.partial(time.sleep, 3600)
    with CNOReplayer(tiny_cfg, isolate=True, timeout_s=2.0, before_call=hang) as rep:
        started = time.monotonic()
        with pytest.raises(ReplayError, match=r"did not finish within 2 s.*was killed"):
            rep.rollout(np.full(12, 0.5), _ic(), weight_seed=1, noise_seed=2)
        elapsed = time.monotonic() - started
        assert rep._worker._proc is None  # the hung worker is gone
    # Worker start-up is not counted; the wait itself is bounded by the timeout.
    assert elapsed < 2.0 + 30.0


def test_worker_result_equals_in_process_replay(tiny_cfg) -> None:
    theta = np.full(12, 0.25)
    direct = CNOReplayer(tiny_cfg).rollout(theta, _ic(), weight_seed=3, noise_seed=4)
    with CNOReplayer(tiny_cfg, isolate=True, timeout_s=60) as rep:
        assert torch.equal(rep.rollout(theta, _ic(), weight_seed=3, noise_seed=4), direct)


def test_worker_errors_surface_as_replay_errors(tiny_cfg) -> None:
    with CNOReplayer(tiny_cfg, isolate=True, timeout_s=60) as rep, \
            pytest.raises(ReplayError, match="failed in the worker: ValueError"):
        rep.rollout(np.full(5, 0.5), _ic(), weight_seed=3, noise_seed=4)


def test_bare_theta_without_seeds_is_refused(tiny_cfg) -> None:
    with pytest.raises(ValueError, match="weight_seed and noise_seed are required"):
        CNOReplayer(tiny_cfg).rollout(np.full(12, 0.5), _ic())
