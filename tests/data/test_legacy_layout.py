"""Files in the original layout (no schema version, ids, seeds or split) read deterministically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from noa_core.config import SplitConfig
from noa_core.data import layout as L
from noa_core.data.hdf5_reader import DatasetReader, legacy_dataset_seed
from noa_core.data.split import split_array
from noa_core.data.validate import validate_dataset
from noa_core.dynamics.seeding import derive_seed, legacy_sample_seeds

N, P, M, T, C, G = 48, 4, 2, 5, 3, 8


def _write_legacy(path: Path, seed: int = 0) -> np.ndarray:
    """Only the original's keys and attributes; θ stored float32. Returns θ as stored."""
    rng = np.random.default_rng(seed)
    theta = rng.random((N, P)).astype(np.float32)
    config = {"parameter_space": {
        "architecture": {"num_layers": {}, "base_channels": {}},
        "stochastic": {"noise_scale": {}},
        "evolution": {"update_policy": {}},
    }}
    text = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        f.create_dataset("parameters/params", data=theta, chunks=(8, P), compression="gzip")
        f.create_dataset("inputs/fields", data=rng.standard_normal((N, C, G, G), np.float32))
        f.create_dataset("outputs/fields",
                         data=rng.standard_normal((N, M, T, C, G, G), np.float32))
        meta = f.create_group("metadata")
        meta.create_dataset("ic_types", data=["gaussian_random_field"] * N, dtype=text)
        meta.create_dataset("evolution_policies", data=["residual", "convex"] * (N // 2),
                            dtype=text)
        meta.create_dataset("noise_regimes", data=["low"] * N, dtype=text)
        meta.create_dataset("grid_sizes", data=np.full(N, G, np.int32))
        meta.attrs.update({"creation_date": "2025-01-01T00:00:00", "version": "1.0",
                           "grid_size": G, "num_realizations": M, "num_parameter_sets": N,
                           "track_ic_metadata": True, "config": json.dumps(config),
                           "sampling_metrics": json.dumps({"discrepancy": 0.004})})
    return theta


def test_legacy_file_reads_with_derived_ids_seeds_and_split(tmp_path: Path) -> None:
    path = tmp_path / "legacy.h5"
    stored = _write_legacy(path)
    with DatasetReader(path) as r:
        assert r.is_legacy and r.schema_version is None
        assert r.theta.dtype == np.float64
        np.testing.assert_array_equal(r.theta, stored.astype(np.float64))
        np.testing.assert_array_equal(r.sample_ids, np.arange(N))
        assert r.theta_names == ["num_layers", "base_channels", "noise_scale", "update_policy"]
        assert r.num_steps == T - 1 and r.num_realizations == M
        assert r.trajectories([2]).shape == (1, M, T, C, G, G)
        assert r.policies is not None and r.policies[1] == "convex"
        assert r.sampling_metrics == {"discrepancy": 0.004}
        assert r.kind == "dataset"
        first_seeds = [r.seeds(i) for i in range(N)]
        first_split = r.split.copy()
        digest = hashlib.sha256(stored.astype("<f8").tobytes()).digest()
        assert r.dataset_seed == derive_seed("legacy-split", digest) == legacy_dataset_seed(stored)
        all_seeds = r.all_seeds()
    for i in range(N):
        assert first_seeds[i] == legacy_sample_seeds(i, stored[i])
        assert all(int(all_seeds[p][i]) == v for p, v in first_seeds[i].items())
    assert len({s["weights"] for s in first_seeds}) == N
    counts = {s: int(np.sum(first_split == s)) for s in ("train", "val", "test")}
    assert counts == {"train": 32, "val": 8, "test": 8}
    expected = split_array(np.arange(N), legacy_dataset_seed(stored), SplitConfig())
    assert first_split.tolist() == expected.tolist()
    # A second, independent read derives exactly the same seeds and split.
    with DatasetReader(path) as again:
        assert [again.seeds(i) for i in range(N)] == first_seeds
        assert again.split.tolist() == first_split.tolist()
        assert again.indices_of_split("test").size == 8


def test_legacy_file_validates_on_what_the_original_had(tmp_path: Path) -> None:
    path = tmp_path / "legacy.h5"
    _write_legacy(path)
    assert validate_dataset(path) == []
    with h5py.File(path, "r+") as f:
        del f[L.INPUTS]
    problems = validate_dataset(path)
    assert len(problems) == 1 and "inputs/fields" in problems[0]


def test_legacy_split_depends_on_the_theta_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    _write_legacy(a, seed=0)
    _write_legacy(b, seed=1)
    with DatasetReader(a) as ra, DatasetReader(b) as rb:
        assert ra.dataset_seed != rb.dataset_seed
        assert ra.split.tolist() != rb.split.tolist()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "legacy.h5"
    _write_legacy(path)
    with h5py.File(path, "r+") as f:
        f[L.METADATA].attrs[L.ATTR_SCHEMA_VERSION] = L.SCHEMA_VERSION + 1
    with pytest.raises(Exception, match="newer"):
        DatasetReader(path)
