"""Stage ``noa dataset generate``: sample θ, draw ICs, roll out, write ``dataset.h5``.

Per sample: seeds from (dataset seed, sample id, purpose); the IC type and field from the ``ic``
seed; weights from the ``weights`` seed; noise from the ``noise`` seed per (realization, step).
Trajectories hold K_max + H updates (S + 1 states) in the canonical rollout layout, the same one
replay uses, so a replay of any stored sample reproduces it bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from noa_core.config import NOAConfig
from noa_core.data import layout as L
from noa_core.data.hdf5_writer import DatasetWriter
from noa_core.data.parallel import default_workers, map_ordered
from noa_core.data.split import split_array
from noa_core.dynamics.initial_conditions import sample_initial_condition
from noa_core.dynamics.parameters import ThetaSpace
from noa_core.dynamics.replay import CNOReplayer, Sample
from noa_core.dynamics.rollout import fixed_num_threads
from noa_core.dynamics.seeding import sample_seeds


@dataclass
class GeneratedSample:
    """One generated row: IC [C, H, W], trajectory [M, S+1, C, H, W] or None, and its labels."""

    sample_id: int
    ic: np.ndarray
    ic_type: str
    trajectory: np.ndarray | None
    policy: str
    noise_scale: float
    seeds: dict[str, int]


def _setup(cfg_dict: dict[str, Any]) -> CNOReplayer:
    # Cache off: every sample has its own weights, a cache would only hold memory.
    return CNOReplayer(NOAConfig.model_validate(cfg_dict), cache_size=0, device="cpu",
                       isolate=False)


def _generate_one(replayer: CNOReplayer, job: tuple[int, np.ndarray, int, bool]
                  ) -> GeneratedSample:
    sample_id, theta, dataset_seed, with_trajectory = job
    cfg = replayer.cfg
    seeds = sample_seeds(dataset_seed, sample_id)
    with fixed_num_threads(cfg.dynamics.num_threads):
        ic, ic_type = sample_initial_condition(cfg.initial_conditions, cfg.dynamics.grid,
                                               cfg.dynamics.channels, seeds["ic"])
    spec = replayer.spec(theta)
    traj = None
    if with_trajectory:
        traj = replayer.rollout(Sample(sample_id, theta, seeds), ic).numpy()
    return GeneratedSample(sample_id, ic.numpy(), ic_type, traj, spec.update_policy,
                           spec.noise_scale, seeds)


def generate_dataset(cfg: NOAConfig, out: str | Path, *, num_samples: int | None = None,
                     seed: int | None = None, workers: int | None = None,
                     progress: bool = True) -> dict[str, Any]:
    """Generate a dataset file; returns a summary (counts, seconds, sampling quality).

    ``num_samples`` and ``seed`` override the config (the stored config records the values
    used). ``workers`` processes share the samples (default: the available CPUs); the file is
    identical for any worker count.
    """
    ds = cfg.dataset.model_copy(update={
        k: v for k, v in (("num_samples", num_samples), ("seed", seed)) if v is not None})
    cfg = cfg.model_copy(update={"dataset": ds})
    space = ThetaSpace(cfg.parameter_space, cfg.dynamics)
    n = ds.num_samples
    theta, quality = space.sample(n, ds.seed)
    ids = np.arange(n, dtype=np.int64)
    splits = split_array(ids, ds.seed, ds.split)
    store = ds.store_trajectories
    dyn = cfg.dynamics
    attrs = {
        L.ATTR_KIND: L.KIND_DATASET,
        L.ATTR_DATASET_SEED: ds.seed,
        L.ATTR_THETA_NAMES: space.names,
        L.ATTR_CONFIG: cfg.model_dump(mode="json"),
    }
    workers = default_workers(n, workers)
    started = time.perf_counter()
    jobs = [(int(i), theta[i], ds.seed, store) for i in ids]
    with DatasetWriter(out, num_samples=n, theta_dim=space.dim, channels=dyn.channels,
                       grid=dyn.grid, realizations=dyn.realizations if store else None,
                       num_steps=dyn.steps if store else None,
                       trajectory_dtype=ds.trajectory_dtype, chunk_samples=ds.chunk_samples,
                       compression_level=ds.compression_level, metadata=attrs) as writer:
        rows = map_ordered(_generate_one, jobs, setup=_setup,
                           setup_args=(cfg.model_dump(mode="json"),), workers=workers,
                           desc=f"generate {Path(out).name}", unit="op", progress=progress)
        for i, row in enumerate(rows):
            writer.write(i, sample_id=row.sample_id, theta=theta[i], ic=row.ic,
                         ic_type=row.ic_type, policy=row.policy, noise_scale=row.noise_scale,
                         split=str(splits[i]), seeds=row.seeds, trajectory=row.trajectory)
        writer.set_sampling_metrics(quality.as_dict())
    seconds = time.perf_counter() - started
    return {
        "out": str(out), "num_samples": n, "seed": ds.seed, "workers": workers,
        "seconds": round(seconds, 2), "steps": dyn.steps if store else 0,
        "realizations": dyn.realizations if store else 0,
        "split": {s: int((splits == s).sum()) for s in ("train", "val", "test")},
        "sampling": quality.as_dict(),
    }
