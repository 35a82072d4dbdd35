"""split_of / split_array: exact per-block counts, determinism, independence from other ids."""

from __future__ import annotations

import numpy as np
import pytest

from noa_core.config import SPLITS, SplitConfig
from noa_core.data.split import split_array, split_ids_hash, split_of


def _counts(labels: np.ndarray) -> dict[str, int]:
    return {s: int(np.sum(labels == s)) for s in SPLITS}


def test_48_ids_at_4_1_1_split_exactly_32_8_8() -> None:
    labels = split_array(np.arange(48), seed=0, split=SplitConfig(train=4, val=1, test=1))
    assert _counts(labels) == {"train": 32, "val": 8, "test": 8}


def test_512_ids_at_6_1_1_split_exactly_384_64_64() -> None:
    labels = split_array(np.arange(512), seed=3, split=SplitConfig(train=6, val=1, test=1))
    assert _counts(labels) == {"train": 384, "val": 64, "test": 64}


def test_every_complete_block_is_split_exactly() -> None:
    cfg = SplitConfig(train=4, val=1, test=1)
    labels = split_array(np.arange(60), seed=11, split=cfg).reshape(10, cfg.block)
    for row in labels:
        assert _counts(row) == {"train": 4, "val": 1, "test": 1}


def test_split_of_agrees_with_split_array() -> None:
    cfg = SplitConfig(train=6, val=1, test=1)
    ids = np.arange(100)
    vec = split_array(ids, seed=5, split=cfg)
    assert [split_of(int(i), 5, cfg) for i in ids] == vec.tolist()


def test_different_seed_gives_a_different_assignment() -> None:
    cfg = SplitConfig()
    a = split_array(np.arange(48), seed=0, split=cfg)
    b = split_array(np.arange(48), seed=1, split=cfg)
    assert not np.array_equal(a, b)
    assert _counts(a) == _counts(b)


def test_assignment_is_independent_of_the_other_ids_and_their_order() -> None:
    cfg = SplitConfig()
    full = split_array(np.arange(200), seed=9, split=cfg)
    some = np.random.default_rng(0).choice(200, size=37, replace=False)  # unsorted subset
    assert split_array(some, seed=9, split=cfg).tolist() == full[some].tolist()
    assert split_of(150, 9, cfg) == full[150]


def test_split_of_does_not_touch_the_global_rng() -> None:
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    split_array(np.arange(96), seed=42, split=SplitConfig())
    assert np.random.random() == before


def test_bad_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        split_of(-1, 0, SplitConfig())
    with pytest.raises(ValueError, match="non-negative"):
        split_array(np.array([3, -2]), 0, SplitConfig())
    with pytest.raises(TypeError):
        split_array(np.array([0.5]), 0, SplitConfig())
    assert split_array(np.array([], dtype=np.int64), 0, SplitConfig()).shape == (0,)


def test_split_ids_hash_is_order_independent_and_content_sensitive() -> None:
    h = split_ids_hash(np.array([5, 1, 3]))
    assert h == split_ids_hash([3, 5, 1])
    assert h != split_ids_hash([1, 3, 4])
    assert len(h) == 64
