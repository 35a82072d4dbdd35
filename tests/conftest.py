"""Fixtures shared across the suite: a generated `tiny` dataset, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from noa_core.config import NOAConfig, load_config
from noa_core.data.generate import generate_dataset

TINY_N = 12  # two split blocks of 6 (4/1/1): 8 train, 2 val, 2 test


@pytest.fixture(scope="session")
def tiny_cfg() -> NOAConfig:
    return load_config("tiny")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory, tiny_cfg: NOAConfig) -> Path:
    """A generated `tiny` dataset of 12 operators with trajectories (seed 0, one worker)."""
    out = tmp_path_factory.mktemp("tiny") / "dataset.h5"
    generate_dataset(tiny_cfg, out, num_samples=TINY_N, workers=1, progress=False)
    return out
