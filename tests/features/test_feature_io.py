"""Feature groups in HDF5 and ``noa features extract``."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from noa_core.cli import main
from noa_core.config import load_config
from noa_core.data import layout as L
from noa_core.data.generate import generate_dataset
from noa_core.data.hdf5_reader import DatasetReader
from noa_core.errors import DatasetError
from noa_core.features import io as fio
from noa_core.features.extract import FeatureExtractor, Features, feature_window
from noa_core.features.schema import feature_schema


@pytest.fixture(scope="module")
def tiny6(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated `tiny` dataset of 6 operators with trajectories."""
    out = tmp_path_factory.mktemp("feat") / "tiny6.h5"
    generate_dataset(load_config("tiny"), out, num_samples=6, workers=1, progress=False)
    return out


def _random_features(n: int, m: int, horizon: int, seed: int = 0) -> Features:
    s = feature_schema(horizon)
    g = torch.Generator().manual_seed(seed)
    return Features(torch.randn(n, 14, generator=g),
                    torch.randn(n, horizon + 1, s.temporal_dim, generator=g),
                    torch.randn(n, m, s.summary_dim, generator=g),
                    torch.randn(n, 3 * s.summary_dim, generator=g))


def _file_with_rows(path: Path, n: int) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset(L.PARAMS, data=np.zeros((n, 3)))
    return path


def test_write_read_round_trip(tmp_path: Path) -> None:
    path = _file_with_rows(tmp_path / "f.h5", 5)
    schema = feature_schema(4)
    feats = _random_features(5, 2, 4)
    fio.write_feature_groups(path, feats, schema, context=3)
    back, schema_back = fio.read_features(path)
    assert schema_back == schema and schema_back.digest() == schema.digest()
    for name in ("initial", "temporal", "summary_per_realization", "summary"):
        assert torch.equal(getattr(back, name), getattr(feats, name))
    with h5py.File(path) as f:
        g = f[fio.FEATURES_GROUP]
        assert g.attrs[fio.ATTR_WINDOW_START] == 3 and g.attrs[fio.ATTR_HORIZON] == 4
        assert json.loads(g.attrs[fio.ATTR_REGISTRY])["initial"][schema.initial[2]] == 2
        assert json.loads(f[fio.SUMMARY_KEY].attrs[fio.ATTR_NAMES]) == list(
            schema.summary_aggregated)
    # Writing again replaces the groups.
    fio.write_feature_groups(path, _random_features(5, 2, 4, seed=1), schema, context=3)
    assert not torch.equal(fio.read_features(path)[0].initial, feats.initial)


def test_bad_feature_files_name_file_and_key(tmp_path: Path) -> None:
    path = _file_with_rows(tmp_path / "f.h5", 5)
    with pytest.raises(DatasetError, match=r"f\.h5: features: missing group"):
        fio.read_features(path)
    schema = feature_schema(4)
    with pytest.raises(DatasetError, match=r"3 feature rows for 5 samples"):
        fio.write_feature_groups(path, _random_features(3, 2, 4), schema, context=0)
    with pytest.raises(DatasetError, match=r"features/temporal/features: expected shape"):
        fio.write_feature_groups(path, _random_features(5, 2, 5), schema, context=0)
    bad = _random_features(5, 2, 4)
    bad.summary[2, 0] = float("nan")
    with pytest.raises(DatasetError, match=r"summary/aggregated/features: non-finite .* \[2\]"):
        fio.write_feature_groups(path, bad, schema, context=0)
    fio.write_feature_groups(path, _random_features(5, 2, 4), schema)  # window from X_0
    with h5py.File(path, "r+") as f:
        del f[fio.FEATURES_GROUP].attrs[fio.ATTR_SCHEMA]
    with pytest.raises(DatasetError, match=r"features@feature_schema: missing"):
        fio.read_features(path)


def test_extract_cli_writes_a_new_file_and_leaves_the_input(
        tiny6: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = L.sha256_file(tiny6)
    out = tmp_path / "sub" / "with_features.h5"
    assert main(["features", "extract", str(tiny6), "--out", str(out), "--no-progress",
                 "--batch-size", "4"]) == 0
    assert "features of 6 operators, states 0…16" in capsys.readouterr().out
    assert L.sha256_file(tiny6) == before
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]   # no temporary left
    feats, schema = fio.read_features(out)
    assert schema == feature_schema(16) and len(feats) == 6
    assert feats.summary_per_realization.shape == (6, 2, schema.summary_dim)
    for name in ("initial", "temporal", "summary_per_realization", "summary"):
        assert torch.isfinite(getattr(feats, name)).all()
    with DatasetReader(out) as r, DatasetReader(tiny6) as src:
        assert np.array_equal(r.trajectories([0, 5]), src.trajectories([0, 5]))
        window = feature_window(torch.from_numpy(src.trajectories([1, 2])), 0, 16)
    direct = FeatureExtractor(schema)(window)
    torch.testing.assert_close(feats.summary[1:3], direct.summary)


def test_extract_refuses_its_input_and_files_without_trajectories(
        tiny6: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = L.sha256_file(tiny6)
    same = tiny6.parent / "." / tiny6.name
    assert main(["features", "extract", str(tiny6), "--out", str(same), "--no-progress"]) == 1
    assert "never writes into its input" in capsys.readouterr().err
    assert L.sha256_file(tiny6) == before
    cfg = load_config("tiny")
    cfg = cfg.model_copy(update={"dataset": cfg.dataset.model_copy(
        update={"store_trajectories": False})})
    bare = tmp_path / "bare.h5"
    generate_dataset(cfg, bare, num_samples=2, workers=1, progress=False)
    out = tmp_path / "never.h5"
    assert main(["features", "extract", str(bare), "--out", str(out), "--no-progress"]) == 1
    assert "outputs/fields: missing" in capsys.readouterr().err
    assert not out.exists()


def test_add_feature_groups_writes_into_a_fresh_file(tiny6: Path, tmp_path: Path) -> None:
    path = tmp_path / "copy.h5"
    path.write_bytes(tiny6.read_bytes())
    summary = fio.add_feature_groups(path, progress=False)
    assert summary["num_samples"] == 6 and summary["window"] == [0, 16]
    assert fio.read_feature_schema(path).digest() == summary["schema_digest"]
