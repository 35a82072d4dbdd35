"""``merge_replay``: the fanned-out shards as one file; an incomplete set is refused."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from component_chain import NUM_OPERATORS, Chain
from kfp import dsl

from components.merge_replay import merge_replay
from noa_core.errors import DatasetError


def test_merge_orders_every_operator_once(merged: Chain) -> None:
    assert merged.outputs["merge"] == NUM_OPERATORS
    assert merged.artifacts["replay"].metadata == {"operators": NUM_OPERATORS, "shards": 2}
    with h5py.File(merged.artifacts["replay"].path) as f:
        ids = f["metadata/sample_ids"][:]
    assert np.array_equal(ids, np.sort(ids)) and len(np.unique(ids)) == NUM_OPERATORS


def test_a_missing_shard_is_refused(replayed: Chain, tmp_path: Path) -> None:
    out = dsl.Dataset(name="r", uri=str(tmp_path / "replay"), metadata={})
    with pytest.raises(DatasetError, match="shard"):
        merge_replay.python_func(parts=replayed.artifacts["parts"][:1], replay=out)
    assert not Path(out.path).exists()
