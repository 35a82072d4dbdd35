"""Bit-exact determinism of ground truth: across processes, shards, runs and worker counts."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from noa_core.data.generate import generate_dataset
from noa_core.data.hdf5_reader import DatasetReader
from noa_core.data.replay_stage import merge_replays, replay_dataset
from noa_core.dynamics.replay import CNOReplayer, Sample

ARRAYS = ("parameters/params", "inputs/fields", "outputs/fields", "metadata/sample_ids",
          "metadata/seeds/weights", "metadata/seeds/ic", "metadata/seeds/noise")


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in ARRAYS}
        for k in ("metadata/split", "metadata/ic_types", "metadata/evolution_policies"):
            out[k] = f[k].asstr()[()]
    return out


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_replay_in_a_separate_process_is_bit_identical(tiny_dataset: Path) -> None:
    rows = [0, 5, 9]
    code = textwrap.dedent(f"""
        import hashlib, numpy as np
        from noa_core.data.hdf5_reader import DatasetReader
        from noa_core.dynamics.replay import CNOReplayer, Sample
        with DatasetReader({str(tiny_dataset)!r}) as r:
            rep = CNOReplayer.from_dataset({str(tiny_dataset)!r})
            for i in {rows}:
                s = Sample(int(r.sample_ids[i]), r.theta[i], r.seeds(i))
                out = rep.rollout(s, r.ic(i)).numpy()
                print(hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest())
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    with DatasetReader(tiny_dataset) as r:
        stored = [_digest(r.trajectory(i)) for i in rows]
    assert proc.stdout.split() == stored


def test_replay_in_this_process_matches_generation_and_uses_the_cache(tiny_dataset: Path) -> None:
    with DatasetReader(tiny_dataset) as r:
        rep = CNOReplayer.from_dataset(tiny_dataset, cache_size=2)
        for i in (3, 3, 4):
            s = Sample(int(r.sample_ids[i]), r.theta[i], r.seeds(i))
            assert torch.equal(rep.rollout(s, r.ic(i)), torch.from_numpy(r.trajectory(i)))
    assert (rep.hits, rep.misses) == (1, 2)


def test_whole_split_equals_three_shards_merged(tiny_dataset: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole.h5"
    replay_dataset(tiny_dataset, whole, split="train", workers=1, progress=False)
    parts = []
    for i in range(3):
        parts.append(tmp_path / f"part{i}.h5")
        replay_dataset(tiny_dataset, parts[-1], split="train", shard=(i, 3), workers=1,
                       progress=False)
    merged = tmp_path / "merged.h5"
    merge_replays(list(reversed(parts)), merged)  # the order given does not matter
    a, b = _arrays(whole), _arrays(merged)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert set(a["metadata/split"]) == {"train"} and len(a["metadata/split"]) == 8
    # And the replayed states are the generated ones.
    with DatasetReader(tiny_dataset) as r:
        rows = np.searchsorted(r.sample_ids, a["metadata/sample_ids"])
        assert np.array_equal(a["outputs/fields"], r.trajectories(rows))


@pytest.mark.slow
def test_generate_repeats_with_a_seed_and_changes_with_another(tiny_dataset: Path,
                                                               tiny_cfg, tmp_path: Path) -> None:
    """Same seed: identical arrays (also with 2 worker processes). Another seed: different."""
    again = tmp_path / "again.h5"
    generate_dataset(tiny_cfg, again, num_samples=12, workers=2, progress=False)
    a, b = _arrays(tiny_dataset), _arrays(again)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    other = tmp_path / "other.h5"
    generate_dataset(tiny_cfg, other, num_samples=12, seed=1, workers=1, progress=False)
    c = _arrays(other)
    for key in ("parameters/params", "inputs/fields", "outputs/fields",
                "metadata/seeds/weights", "metadata/seeds/noise"):
        assert not np.array_equal(a[key], c[key]), key


def test_generation_never_touches_the_global_rng(tiny_cfg, tmp_path: Path) -> None:
    torch.manual_seed(1234)
    np.random.seed(1234)
    before_t, before_np = torch.get_rng_state(), np.random.get_state()[1].copy()
    generate_dataset(tiny_cfg, tmp_path / "d.h5", num_samples=2, workers=1, progress=False)
    assert torch.equal(torch.get_rng_state(), before_t)
    assert np.array_equal(np.random.get_state()[1], before_np)
