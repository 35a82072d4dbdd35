"""Small synthetic dataset files, written with ``DatasetWriter`` itself (local generators only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from noa_core.config import SplitConfig, load_config
from noa_core.data.hdf5_writer import DatasetWriter
from noa_core.data.split import split_of
from noa_core.dynamics.parameters import ThetaSpace
from noa_core.dynamics.seeding import sample_seeds

MakeDataset = Callable[..., dict[str, Any]]


def write_synthetic(
    path: Path,
    *,
    n: int = 12,
    grid: int = 8,
    realizations: int | None = 2,
    num_steps: int | None = 3,
    dtype: str = "float32",
    seed: int = 7,
    id_offset: int = 0,
) -> dict[str, Any]:
    """Write n random samples at ``path``; return everything written, for comparison."""
    cfg = load_config("tiny")
    space = ThetaSpace(cfg.parameter_space, cfg.dynamics)
    channels = cfg.dynamics.channels
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64) + id_offset
    theta = rng.random((n, space.dim))
    ics = rng.standard_normal((n, channels, grid, grid)).astype(np.float32)
    trajs = None
    if realizations is not None and num_steps is not None:
        trajs = rng.standard_normal(
            (n, realizations, num_steps + 1, channels, grid, grid)).astype(np.float32)
        trajs[:, :, 0] = ics[:, None]
    sigmas = 10.0 ** rng.uniform(-5, 0, size=n)
    ic_types = [("grf", "localized", "structured")[i % 3] for i in range(n)]
    policies = [("residual", "convex")[i % 2] for i in range(n)]
    splits = [split_of(int(s), seed, SplitConfig()) for s in ids]
    seeds = [sample_seeds(seed, int(s)) for s in ids]
    metrics = {"centred_discrepancy": 0.5, "num_points": n}
    meta = {"dataset_seed": seed, "config": cfg, "theta_names": space.names}
    with DatasetWriter(path, num_samples=n, theta_dim=space.dim, channels=channels, grid=grid,
                       realizations=realizations, num_steps=num_steps, trajectory_dtype=dtype,
                       chunk_samples=4, compression_level=1, metadata=meta) as w:
        for i in range(n):
            w.write(i, sample_id=int(ids[i]), theta=theta[i], ic=ics[i], ic_type=ic_types[i],
                    policy=policies[i], noise_scale=float(sigmas[i]), split=splits[i],
                    seeds=seeds[i], trajectory=None if trajs is None else trajs[i])
        w.set_sampling_metrics(metrics)
    return {"path": path, "cfg": cfg, "names": space.names, "ids": ids, "theta": theta,
            "ics": ics, "trajs": trajs, "sigmas": sigmas, "ic_types": ic_types,
            "policies": policies, "splits": splits, "seeds": seeds, "metrics": metrics,
            "seed": seed, "grid": grid}


@pytest.fixture
def make_dataset(tmp_path: Path) -> MakeDataset:
    """``make_dataset(name="d.h5", **kw)`` writes a synthetic file under tmp_path."""

    def make(name: str = "d.h5", **kw: Any) -> dict[str, Any]:
        return write_synthetic(tmp_path / name, **kw)

    return make
