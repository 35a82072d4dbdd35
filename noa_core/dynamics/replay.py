"""``CNOReplayer``: rebuild stored operators from θ and seeds and roll them out again.

Replay uses the same mapping, channel count, update policy, seeds, thread count and layout as
generation, so its states are bit-identical to the stored ones on the same machine and
software. Built operators are kept in a small LRU cache. On CUDA every rollout runs in a worker
process with a timeout (``replay_worker``): a hung kernel becomes an error, not a hung pipeline.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from noa_core.config import NOAConfig, config_from_dict, load_config
from noa_core.dynamics.operator import CNOOperator
from noa_core.dynamics.parameters import OperatorSpec, ThetaSpace
from noa_core.dynamics.rollout import rollout
from noa_core.errors import DatasetError


@dataclass(frozen=True)
class Sample:
    """One stored operator sample: its id, θ as a unit vector [P] (float64) and its seeds."""

    sample_id: int
    theta: np.ndarray
    seeds: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"sample {self.sample_id}"


class CNOReplayer:
    """Builds and rolls out the operators of one configuration.

    Args:
        cfg: the dataset's configuration (θ space, dynamics).
        cache_size: how many built operators to keep (0 disables the cache).
        device: where rollouts run; defaults to ``cfg.dynamics.device``.
        isolate: run each rollout in a worker process with a timeout; default: only on CUDA.
        timeout_s: the worker's time limit per rollout; default ``cfg.dynamics.replay_timeout_s``.
        before_call: run in the worker before each rollout (a fault-injection hook for tests).
    """

    def __init__(self, cfg: NOAConfig, cache_size: int = 8, device: str | None = None,
                 isolate: bool | None = None, timeout_s: float | None = None,
                 before_call: Callable[[], object] | None = None) -> None:
        self.cfg = cfg
        self.space = ThetaSpace(cfg.parameter_space, cfg.dynamics)
        self.device = device or cfg.dynamics.device
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[bytes, int], CNOOperator] = OrderedDict()
        self.hits = 0
        self.misses = 0
        isolate = self.device.startswith("cuda") if isolate is None else isolate
        self._worker = None
        if isolate:
            from noa_core.dynamics.replay_worker import ReplayWorker

            self._worker = ReplayWorker(cfg, self.device, cache_size,
                                        timeout_s or cfg.dynamics.replay_timeout_s, before_call)

    @classmethod
    def from_config(cls, source: str | Path | NOAConfig, **kwargs) -> CNOReplayer:
        """From a preset name, a YAML path or a loaded config."""
        cfg = source if isinstance(source, NOAConfig) else load_config(source)
        return cls(cfg, **kwargs)

    @classmethod
    def from_dataset(cls, path: str | Path, **kwargs) -> CNOReplayer:
        """From the configuration stored in a dataset file."""
        from noa_core.data.hdf5_reader import DatasetReader

        with DatasetReader(path) as reader:
            stored = reader.config
        if stored is None:
            raise DatasetError(f"{path}: metadata attribute 'config' is missing (a file in the "
                               "original layout); build the replayer with from_config instead")
        return cls(config_from_dict(stored, f"{path}:/metadata@config"), **kwargs)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()

    def __enter__(self) -> CNOReplayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spec(self, theta: np.ndarray) -> OperatorSpec:
        return self.space.map(theta)

    def operator(self, theta: np.ndarray, weight_seed: int) -> CNOOperator:
        """The operator of θ [P] with weights from ``weight_seed`` (cached, LRU)."""
        theta = np.ascontiguousarray(np.asarray(theta, dtype=np.float64))
        key = (theta.tobytes(), int(weight_seed))
        op = self._cache.get(key)
        if op is not None:
            self.hits += 1
            self._cache.move_to_end(key)
            return op
        self.misses += 1
        op = CNOOperator.build(self.space.map(theta), self.cfg.dynamics.channels, weight_seed,
                               self.device)
        if self.cache_size > 0:
            self._cache[key] = op
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return op

    def rollout(self, sample: Sample | np.ndarray, ic: torch.Tensor | np.ndarray,
                steps: int | None = None, num_realizations: int | None = None,
                return_all_steps: bool = True, *, weight_seed: int | None = None,
                noise_seed: int | None = None) -> torch.Tensor:
        """Roll out a stored sample (or a θ vector with explicit seeds) from ``ic`` [C, H, W].

        Returns [M, S+1, C, H, W] float32 on the CPU (X_0 first), or [M, C, H, W] when
        ``return_all_steps`` is false. Defaults: S = K_max + H and M from the configuration.
        """
        if isinstance(sample, Sample):
            theta, label = sample.theta, sample.label
            weight_seed = sample.seeds["weights"] if weight_seed is None else weight_seed
            noise_seed = sample.seeds["noise"] if noise_seed is None else noise_seed
        else:
            theta, label = sample, "θ rollout"
        if weight_seed is None or noise_seed is None:
            raise ValueError(f"{label}: weight_seed and noise_seed are required with a bare θ "
                             "(a replay never falls back to an unseeded draw)")
        steps = self.cfg.dynamics.steps if steps is None else steps
        m = self.cfg.dynamics.realizations if num_realizations is None else num_realizations
        ic = torch.as_tensor(ic, dtype=torch.float32)
        if self._worker is not None:
            return self._worker.rollout(theta, int(weight_seed), ic, steps, m, return_all_steps,
                                        int(noise_seed), label)
        op = self.operator(theta, int(weight_seed))
        out = rollout(op, ic, steps, m, int(noise_seed), return_all_steps=return_all_steps,
                      num_threads=self.cfg.dynamics.num_threads, label=label)
        return out.cpu()
