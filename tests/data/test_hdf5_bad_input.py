"""Bad input: every defect is refused with a message naming the file and the key."""

from __future__ import annotations

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


def _replace(path: Path, key: str, data: np.ndarray, **kw: object) -> None:
    with h5py.File(path, "r+") as f:
        del f[key]
        f.create_dataset(key, data=data, **kw)


def _one_problem_naming(path: Path, *parts: str) -> str:
    problems = validate_dataset(path)
    hits = [p for p in problems if all(x in p for x in parts)]
    assert hits, f"no problem names {parts}: {problems}"
    assert all(p.startswith(f"{path}: ") for p in problems)
    return hits[0]


def test_truncated_file_is_refused_naming_the_file(make_dataset: MakeDataset) -> None:
    path = make_dataset()["path"]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError) as exc:
        DatasetReader(path)
    assert str(path) in str(exc.value) and "HDF5" in str(exc.value)
    problems = validate_dataset(path)
    assert len(problems) == 1 and str(path) in problems[0]
    with pytest.raises(DatasetError, match="truncated"):
        check_dataset(path)


def test_non_hdf5_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.h5"
    path.write_text("not an HDF5 file\n")
    with pytest.raises(DatasetError) as exc:
        DatasetReader(path)
    assert str(path) in str(exc.value)
    assert str(path) in validate_dataset(path)[0]


def test_missing_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.h5"
    with pytest.raises(DatasetError, match="no such file") as exc:
        DatasetReader(path)
    assert str(path) in str(exc.value)
    assert validate_dataset(path) == [f"{path}: no such file"]


def test_missing_inputs_key_is_named(make_dataset: MakeDataset) -> None:
    path = make_dataset()["path"]
    with h5py.File(path, "r+") as f:
        del f[L.INPUTS]
    msg = _one_problem_naming(path, "inputs/fields", "missing")
    assert str(path) in msg
    with pytest.raises(DatasetError, match="inputs/fields") as exc:
        DatasetReader(path)
    assert str(path) in str(exc.value)
    with pytest.raises(DatasetError, match="inputs/fields"):
        check_dataset(path)


def test_missing_params_key_is_named(make_dataset: MakeDataset) -> None:
    path = make_dataset()["path"]
    with h5py.File(path, "r+") as f:
        del f[L.PARAMS]
    _one_problem_naming(path, "parameters/params", "missing")


def test_wrong_inputs_shape_names_key_and_both_shapes(make_dataset: MakeDataset) -> None:
    d = make_dataset()
    _replace(d["path"], L.INPUTS, d["ics"][:11])
    msg = _one_problem_naming(d["path"], "inputs/fields")
    assert "(12, 2, 8, 8)" in msg and "(11, 2, 8, 8)" in msg
    with pytest.raises(DatasetError, match="inputs/fields"):
        DatasetReader(d["path"])


def test_wrong_outputs_shape_names_key_and_both_shapes(make_dataset: MakeDataset) -> None:
    d = make_dataset()
    with h5py.File(d["path"], "r+") as f:
        del f[L.OUTPUTS]
        f.create_dataset(L.OUTPUTS, data=d["trajs"][:, :, :3])  # S+1 = 3 states
        f[L.OUTPUTS].attrs["num_steps"] = 3                      # but claims S = 3
    msg = _one_problem_naming(d["path"], "outputs/fields")
    assert "(12, 2, 4, 2, 8, 8)" in msg and "(12, 2, 3, 2, 8, 8)" in msg


def test_params_not_2d_is_named(make_dataset: MakeDataset) -> None:
    d = make_dataset()
    _replace(d["path"], L.PARAMS, d["theta"].ravel())
    msg = _one_problem_naming(d["path"], "parameters/params", "2-D")
    assert "(144,)" in msg


def test_nan_theta_names_key_and_sample_id(make_dataset: MakeDataset) -> None:
    d = make_dataset(id_offset=100)
    theta = d["theta"].copy()
    theta[3, 5] = np.nan
    _replace(d["path"], L.PARAMS, theta)
    msg = _one_problem_naming(d["path"], "parameters/params", "NaN")
    assert "rows [3]" in msg and "sample ids [103]" in msg
    with pytest.raises(DatasetError, match="sample ids \\[103\\]"):
        check_dataset(d["path"])


def test_theta_outside_unit_box_is_named(make_dataset: MakeDataset) -> None:
    d = make_dataset()
    theta = d["theta"].copy()
    theta[7, 0] = 1.5
    _replace(d["path"], L.PARAMS, theta)
    msg = _one_problem_naming(d["path"], "parameters/params", "[0, 1]")
    assert "rows [7]" in msg and "1.5" in msg


def test_unknown_split_value_is_named(make_dataset: MakeDataset) -> None:
    d = make_dataset()
    split = np.array(d["splits"], dtype=object)
    split[2] = "holdout"
    _replace(d["path"], L.SPLIT, split, dtype=h5py.string_dtype("utf-8"))
    msg = _one_problem_naming(d["path"], "metadata/split", "holdout")
    assert "rows [2]" in msg


def test_duplicate_sample_ids_are_named(make_dataset: MakeDataset) -> None:
    d = make_dataset()
    ids = d["ids"].copy()
    ids[4] = ids[9]
    _replace(d["path"], L.SAMPLE_IDS, ids)
    msg = _one_problem_naming(d["path"], "metadata/sample_ids", "unique")
    assert "[9]" in msg


def test_missing_seeds_in_a_schema_file_are_named(make_dataset: MakeDataset) -> None:
    path = make_dataset()["path"]
    with h5py.File(path, "r+") as f:
        del f[L.SEED_KEYS["noise"]]
    _one_problem_naming(path, "metadata/seeds/noise", "missing")
    with pytest.raises(DatasetError, match="metadata/seeds/noise"):
        DatasetReader(path)


def test_non_finite_inputs_are_named(make_dataset: MakeDataset) -> None:
    d = make_dataset(id_offset=50)
    ics = d["ics"].copy()
    ics[6, 1, 2, 3] = np.inf
    _replace(d["path"], L.INPUTS, ics)
    msg = _one_problem_naming(d["path"], "inputs/fields", "NaN/inf")
    assert "sample ids [56]" in msg


def test_non_finite_trajectories_only_with_deep(make_dataset: MakeDataset) -> None:
    d = make_dataset()
    trajs = d["trajs"].copy()
    trajs[1, 0, 2] = np.nan
    with h5py.File(d["path"], "r+") as f:
        f[L.OUTPUTS][1] = trajs[1]
    assert validate_dataset(d["path"]) == []
    problems = validate_dataset(d["path"], deep=True)
    assert len(problems) == 1 and "outputs/fields" in problems[0] and "rows [1]" in problems[0]


def _writer(tmp_path: Path, **kw: object) -> DatasetWriter:
    args: dict = {"num_samples": 2, "theta_dim": 3, "channels": 1, "grid": 8,
                  "metadata": {"dataset_seed": 1, "theta_names": ["a", "b", "c"], "config": {}}}
    args.update(kw)
    return DatasetWriter(tmp_path / "w.h5", **args)


def _row(**kw: object) -> dict:
    row: dict = {"sample_id": 41, "theta": np.array([0.1, 0.2, 0.3]), "ic": np.zeros((1, 8, 8)),
                 "ic_type": "grf", "policy": "residual", "noise_scale": 0.01, "split": "train",
                 "seeds": {"weights": 1, "ic": 2, "noise": 3}}
    row.update(kw)
    return row


def test_writer_refuses_nan_theta(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as exc, _writer(tmp_path) as w:
        w.write(0, **_row(theta=np.array([0.1, np.nan, 0.3])))
    msg = str(exc.value)
    assert "parameters/params" in msg and "sample id 41" in msg and "w.h5" in msg
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_wrong_theta_shape(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"sample id 41: parameters/params: .*\(2,\)"), \
            _writer(tmp_path) as w:
        w.write(0, **_row(theta=np.array([0.1, 0.2])))


def test_writer_refuses_bad_split_seeds_and_repeated_ids(tmp_path: Path) -> None:
    with _writer(tmp_path) as w:
        with pytest.raises(DatasetError, match="metadata/split"):
            w.write(0, **_row(split="dev"))
        with pytest.raises(DatasetError, match="metadata/seeds"):
            w.write(0, **_row(seeds={"weights": 1, "ic": 2}))
        with pytest.raises(DatasetError, match="inputs/fields"):
            w.write(0, **_row(ic=np.zeros((2, 8, 8))))
        with pytest.raises(DatasetError, match="outputs/fields"):
            w.write(0, **_row(trajectory=np.zeros((1, 2, 1, 8, 8))))
        w.write(0, **_row())
        with pytest.raises(DatasetError, match="already written at row 0"):
            w.write(1, **_row())
        w.write(1, **_row(sample_id=42))
    assert validate_dataset(tmp_path / "w.h5") == []


def test_writer_refuses_float16_overflow(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="float16"), _writer(
            tmp_path, realizations=1, num_steps=1, trajectory_dtype="float16") as w:
        w.write(0, **_row(trajectory=np.full((1, 2, 1, 8, 8), 1e5)))
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_incomplete_metadata(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="theta_names"):
        _writer(tmp_path, metadata={"dataset_seed": 1, "theta_names": ["a"], "config": {}})
    with pytest.raises(DatasetError, match="dataset_seed"):
        _writer(tmp_path, metadata={"theta_names": ["a", "b", "c"], "config": {}})
    with pytest.raises(DatasetError, match="both set"):
        _writer(tmp_path, realizations=2)
    assert list(tmp_path.iterdir()) == []
