"""``plan_replay_shards`` and ``cno_replay``: the fan-out list and one shard of ground truth."""

from __future__ import annotations

import h5py
import pytest
from component_chain import NUM_OPERATORS, Chain
from kfp import dsl

from components.cno_replay import cno_replay, plan_replay_shards


def test_the_plan_lists_every_shard_once() -> None:
    assert plan_replay_shards.python_func(num_shards=3) == ["0/3", "1/3", "2/3"]
    assert plan_replay_shards.python_func(num_shards=1) == ["0/1"]
    with pytest.raises(ValueError, match="replay_shards = 0: expected at least 1"):
        plan_replay_shards.python_func(num_shards=0)


def test_shards_cover_the_dataset_with_ground_truth_tokens(replayed: Chain) -> None:
    counts = replayed.outputs["replay"]
    assert sum(counts) == NUM_OPERATORS and min(counts) > 0
    for i, part in enumerate(replayed.artifacts["parts"]):  # type: ignore[arg-type]
        assert part.metadata == {"shard": f"{i}/2", "split": "all", "operators": counts[i]}
        with h5py.File(part.path) as f:
            assert f["tokens/ids"].shape[0] == counts[i]
            assert "features" in f


def test_a_shard_outside_the_plan_is_refused(pulled: Chain) -> None:
    import argparse

    out = pulled.new(dsl.Dataset, "replay-bad")
    with pytest.raises(argparse.ArgumentTypeError, match="0 ≤ I < N"):
        cno_replay.python_func(dataset=pulled.artifacts["dataset"],
                               tokenizer=pulled.artifacts["tokenizer"], shard="2/2", replay=out)
