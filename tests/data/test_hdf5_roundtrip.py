"""DatasetWriter → DatasetReader round trip, attributes, float16 storage and atomic writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from noa_core.data import layout as L
from noa_core.data.hdf5_reader import DatasetReader
from noa_core.data.hdf5_writer import DatasetWriter
from noa_core.data.validate import check_dataset, validate_dataset
from noa_core.errors import DatasetError

# The ``make_dataset`` fixture of tests/data/conftest.py.
MakeDataset = Callable[..., dict[str, Any]]


def test_every_field_round_trips(make_dataset: MakeDataset) -> None:
    d = make_dataset()
    assert validate_dataset(d["path"]) == []
    with DatasetReader(d["path"]) as r:
        assert not r.is_legacy
        assert r.schema_version == L.SCHEMA_VERSION
        assert r.num_samples == 12 and r.theta_dim == 12
        assert r.field_shape == (2, 8, 8)
        assert r.theta.dtype == np.float64
        np.testing.assert_array_equal(r.theta, d["theta"])
        assert r.theta_names == d["names"]
        np.testing.assert_array_equal(r.sample_ids, d["ids"])
        assert r.split.tolist() == d["splits"]
        np.testing.assert_array_equal(r.ic(3), d["ics"][3])
        np.testing.assert_array_equal(r.ics([5, 1, 5]), d["ics"][[5, 1, 5]])
        np.testing.assert_array_equal(r.ics(slice(2, 6)), d["ics"][2:6])
        assert r.ic_types is not None and r.ic_types.tolist() == d["ic_types"]
        assert r.policies is not None and r.policies.tolist() == d["policies"]
        assert r.noise_regimes is not None
        assert r.noise_regimes.tolist() == [L.noise_regime(s) for s in d["sigmas"]]
        for i in range(r.num_samples):
            assert r.seeds(i) == d["seeds"][i]
        assert r.has_trajectories and r.num_steps == 3 and r.num_realizations == 2
        assert r.trajectory_dtype == np.float32
        np.testing.assert_array_equal(r.trajectories([0, 7]), d["trajs"][[0, 7]])
        np.testing.assert_array_equal(r.trajectory(4)[:, 0], np.stack([d["ics"][4]] * 2))
        assert r.config == d["cfg"].model_dump(mode="json")
        assert r.sampling_metrics == d["metrics"]
        assert r.dataset_seed == d["seed"]
        assert r.kind == "dataset"
        for name in ("train", "val", "test"):
            idx = r.indices_of_split(name)
            assert all(d["splits"][i] == name for i in idx)
        with pytest.raises(ValueError, match="unknown split"):
            r.indices_of_split("dev")


def test_file_attributes_and_layout(make_dataset: MakeDataset) -> None:
    d = make_dataset()
    with h5py.File(d["path"], "r") as f:
        a = f[L.METADATA].attrs
        assert int(a["schema_version"]) == 1
        assert a["version"] == "1.0"
        assert int(a["grid_size"]) == 8
        assert int(a["num_realizations"]) == 2
        assert int(a["num_parameter_sets"]) == 12
        assert int(a["dataset_seed"]) == d["seed"]
        assert a["kind"] == "dataset"
        assert json.loads(a["theta_names"]) == d["names"]
        assert json.loads(a["config"])["name"] == "tiny"
        assert "T" in a["creation_date"]
        assert f[L.PARAMS].dtype == np.float64
        assert f[L.INPUTS].dtype == np.float32
        assert f[L.INPUTS].compression == "gzip"
        assert f[L.OUTPUTS].shape == (12, 2, 4, 2, 8, 8)
        assert f[L.OUTPUTS].chunks == (1, 1, 4, 2, 8, 8)
        assert int(f[L.OUTPUTS].attrs["num_steps"]) == 3
        assert f[L.GRID_SIZES].dtype == np.int32
        assert f[L.SAMPLE_IDS].dtype == np.int64
        for key in L.SEED_KEYS.values():
            assert f[key].dtype == np.int64
        assert h5py.check_string_dtype(f[L.SPLIT].dtype).encoding == "utf-8"


def test_float16_trajectories(make_dataset: MakeDataset) -> None:
    d = make_dataset(dtype="float16")
    with DatasetReader(d["path"]) as r:
        assert r.trajectory_dtype == np.float16
        got = r.trajectories(np.arange(r.num_samples))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, d["trajs"].astype(np.float16).astype(np.float32))


def test_without_trajectories(make_dataset: MakeDataset) -> None:
    d = make_dataset(realizations=None, num_steps=None)
    assert validate_dataset(d["path"]) == []
    with DatasetReader(d["path"]) as r:
        assert not r.has_trajectories
        assert r.num_steps is None and r.num_realizations is None
        assert int(r.attrs["num_realizations"]) == 0
        with pytest.raises(DatasetError, match="outputs/fields"):
            r.trajectories([0])


def test_replay_kind_needs_its_attributes(tmp_path: Path, make_dataset: MakeDataset) -> None:
    src = make_dataset()
    meta = {"dataset_seed": 7, "theta_names": src["names"], "config": src["cfg"],
            "kind": "replay", "split_selected": "test"}
    with pytest.raises(DatasetError, match="source_sha256"):
        DatasetWriter(tmp_path / "r.h5", num_samples=1, theta_dim=12, channels=2, grid=8,
                      metadata=meta)
    meta["source_sha256"] = L.sha256_file(src["path"])
    with DatasetWriter(tmp_path / "r.h5", num_samples=1, theta_dim=12, channels=2, grid=8,
                       metadata=meta) as w:
        w.write(0, sample_id=5, theta=src["theta"][5], ic=src["ics"][5], ic_type="grf",
                policy="convex", noise_scale=0.2, split="test", seeds=src["seeds"][5])
    assert validate_dataset(tmp_path / "r.h5") == []
    with h5py.File(tmp_path / "r.h5", "r+") as f:
        f[L.METADATA].attrs[L.ATTR_SHARD] = "0/2"
    assert validate_dataset(tmp_path / "r.h5") == []
    with DatasetReader(tmp_path / "r.h5") as r:
        assert r.kind == "replay"
        assert r.attrs["split_selected"] == "test"
        assert r.attrs["source_sha256"] == meta["source_sha256"]
        assert r.sample_ids.tolist() == [5]


def test_exception_inside_the_writer_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "d.h5"
    meta = {"dataset_seed": 0, "theta_names": ["a", "b"], "config": {}}
    with pytest.raises(RuntimeError, match="boom"), \
            DatasetWriter(out, num_samples=2, theta_dim=2, channels=1, grid=8,
                          metadata=meta) as w:
        w.write(0, sample_id=0, theta=np.array([0.1, 0.2]), ic=np.zeros((1, 8, 8)),
                ic_type="grf", policy="residual", noise_scale=0.0, split="train",
                seeds={"weights": 1, "ic": 2, "noise": 3})
        assert any(p.name.startswith(".d.h5.tmp-") for p in tmp_path.iterdir())
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_unwritten_rows_leave_no_file(tmp_path: Path) -> None:
    out = tmp_path / "d.h5"
    meta = {"dataset_seed": 0, "theta_names": ["a"], "config": {}}
    with pytest.raises(DatasetError, match="1 of 2 rows never written"), \
            DatasetWriter(out, num_samples=2, theta_dim=1, channels=1, grid=8,
                          metadata=meta) as w:
        w.write(1, sample_id=1, theta=np.array([0.5]), ic=np.zeros((1, 8, 8)), ic_type="grf",
                policy="convex", noise_scale=0.5, split="val",
                seeds={"weights": 1, "ic": 2, "noise": 3})
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_replaced_only_on_success(tmp_path: Path,
                                                      make_dataset: MakeDataset) -> None:
    d = make_dataset()
    before = d["path"].read_bytes()
    with pytest.raises(RuntimeError), DatasetWriter(
            d["path"], num_samples=1, theta_dim=1, channels=1, grid=8,
            metadata={"dataset_seed": 0, "theta_names": ["a"], "config": {}}):
        raise RuntimeError("interrupted")
    assert d["path"].read_bytes() == before
    check_dataset(d["path"])


def test_replay_file_defects_are_named(tmp_path: Path, make_dataset: MakeDataset) -> None:
    src = make_dataset()
    out = tmp_path / "r.h5"
    meta = {"dataset_seed": 7, "theta_names": src["names"], "config": src["cfg"],
            "kind": "replay", "split_selected": "test", "shard": "5/2",
            "source_sha256": L.sha256_file(src["path"])}
    with DatasetWriter(out, num_samples=1, theta_dim=12, channels=2, grid=8,
                       metadata=meta) as w:
        w.write(0, sample_id=5, theta=src["theta"][5], ic=src["ics"][5], ic_type="grf",
                policy="convex", noise_scale=0.2, split="train", seeds=src["seeds"][5])
    problems = validate_dataset(out)
    assert len(problems) == 2
    assert "metadata@shard" in problems[0] and "'5/2'" in problems[0]
    assert "metadata/split" in problems[1] and "'test'" in problems[1]
