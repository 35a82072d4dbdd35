"""The train / val / test assignment: a pure function of (sample id, dataset seed, split weights).

Sample ids are grouped in consecutive blocks of ``split.block = train + val + test`` ids (block b
holds ids ``b·block … b·block + block − 1``). Inside a block a permutation drawn from a local
numpy generator seeded with ``derive_seed(seed, "split", b)`` gives its first ``train``
positions to 'train', the next ``val`` to 'val' and the last ``test`` to 'test'. So every complete
block is split exactly (48 ids at 4/1/1 → 32/8/8), and an id's split never depends on which
other ids exist, on the order they are visited, or on any global RNG.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from noa_core.config import SPLITS, SplitConfig
from noa_core.dynamics.seeding import derive_seed


@lru_cache(maxsize=4096)
def _block_labels(seed: int, train: int, val: int, test: int, block_index: int) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of each position in one block: [train+val+test] int8."""
    size = train + val + test
    perm = np.random.default_rng(derive_seed(seed, "split", block_index)).permutation(size)
    labels = np.empty(size, dtype=np.int8)
    labels[perm[:train]] = 0
    labels[perm[train:train + val]] = 1
    labels[perm[train + val:]] = 2
    labels.setflags(write=False)
    return labels


def _check_id(sample_id: int) -> int:
    if isinstance(sample_id, bool) or not isinstance(sample_id, int | np.integer):
        raise TypeError(f"sample id must be an integer, got {type(sample_id).__name__}")
    if sample_id < 0:
        raise ValueError(f"sample id must be non-negative, got {sample_id}")
    return int(sample_id)


def split_of(sample_id: int, seed: int, split: SplitConfig) -> str:
    """'train', 'val' or 'test' for one sample id (see the module docstring for the rule)."""
    sid = _check_id(sample_id)
    block_index, pos = divmod(sid, split.block)
    labels = _block_labels(int(seed), split.train, split.val, split.test, block_index)
    return SPLITS[int(labels[pos])]


def split_array(ids: np.ndarray | Iterable[int], seed: int, split: SplitConfig) -> np.ndarray:
    """``split_of`` for many ids: [n] int ids → [n] str ('<U5'), one permutation per block."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        return np.empty(0, dtype="<U5")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"ids must be integers, got dtype {arr.dtype}")
    if arr.min() < 0:
        raise ValueError(f"sample ids must be non-negative, got {int(arr.min())}")
    arr = arr.astype(np.int64)
    blocks, pos = np.divmod(arr, split.block)
    codes = np.empty(arr.shape, dtype=np.int8)
    for b in np.unique(blocks):
        sel = blocks == b
        labels = _block_labels(int(seed), split.train, split.val, split.test, int(b))
        codes[sel] = labels[pos[sel]]
    return np.asarray(SPLITS, dtype="<U5")[codes]


def split_ids_hash(ids: np.ndarray | Iterable[int]) -> str:
    """SHA-256 hex of the sorted ids as little-endian int64 (order-independent; for gate.json)."""
    arr = np.sort(np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids,
                             dtype=np.int64).ravel())
    return hashlib.sha256(arr.astype("<i8").tobytes()).hexdigest()
