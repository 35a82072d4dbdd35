"""Stable seed derivation: SHA-256 of the parts, never Python's salted ``hash``.

The original seeded weights with ``hash(str(params))``, which changes per process; these seeds
are the same on every machine and in every process, and fit a torch/numpy generator (63 bits).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

SEED_BITS = 63


def derive_seed(*parts: int | str | bytes) -> int:
    """A 63-bit seed from an ordered tuple of ints, strings or bytes.

    Parts are length-prefixed before hashing, so ("ab", "c") and ("a", "bc") differ.
    """
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, int | str | bytes):
            raise TypeError(f"seed parts are int, str or bytes, got {type(part).__name__}")
        if isinstance(part, int):
            raw = b"i" + str(part).encode()
        elif isinstance(part, str):
            raw = b"s" + part.encode()
        else:
            raw = b"b" + part
        h.update(len(raw).to_bytes(8, "little"))
        h.update(raw)
    return int.from_bytes(h.digest()[:8], "little") >> (64 - SEED_BITS)


def torch_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh local torch generator; the global RNG is never touched."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def numpy_generator(seed: int) -> np.random.Generator:
    """A fresh local numpy generator (PCG64)."""
    return np.random.default_rng(seed)


# Purposes of the per-sample seeds; the names are part of the stored ground truth, never change.
PURPOSES: tuple[str, ...] = ("weights", "ic", "noise")


def sample_seeds(dataset_seed: int, sample_id: int) -> dict[str, int]:
    """Seeds {"weights", "ic", "noise"} of one sample from (dataset seed, sample id, purpose)."""
    return {p: derive_seed(dataset_seed, sample_id, p) for p in PURPOSES}


def legacy_sample_seeds(index: int, theta: np.ndarray) -> dict[str, int]:
    """Seeds for a file in the original layout (no stored seeds): from the row index and θ bytes.

    θ is taken as float64 so a float32-stored row and its float64 source give the same seeds.
    """
    raw = np.ascontiguousarray(np.asarray(theta, dtype=np.float64)).tobytes()
    return {p: derive_seed("legacy", index, raw, p) for p in PURPOSES}


def noise_seed(base: int, realization: int, step: int) -> int:
    """Seed of the noise drawn for one (realization, step) of a sample (step counts from 1)."""
    return derive_seed(base, realization, step)
