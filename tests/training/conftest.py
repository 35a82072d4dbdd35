"""A tiny bootstrap (dataset with trajectories + a quickly trained tokenizer) for training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from noa_core.config import NOAConfig, load_config
from noa_core.data.generate import generate_dataset
from noa_core.tokenizer.train import train_tokenizer

# `tiny`, a short tokenizer fit and a short training run: every mechanism, in seconds.
FAST = """\
extends: tiny
tokenizer:
  training: {epochs: 10, patience: 10, batch_size: 16}
  families: {hidden_dim: 32, training: {epochs: 3, patience: 3, batch_size: 16}}
training:
  batch_size: 4
  max_steps: 4
  warmup_steps: 1
  val_every: 2
  checkpoint_every: 2
  log_every: 1
"""


@pytest.fixture(scope="session")
def train_config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("traincfg") / "fast.yaml"
    path.write_text(FAST)
    return path


@pytest.fixture(scope="session")
def train_cfg(train_config_path: Path) -> NOAConfig:
    return load_config(train_config_path)


@pytest.fixture(scope="session")
def train_data(tmp_path_factory: pytest.TempPathFactory, train_cfg: NOAConfig
               ) -> tuple[Path, Path]:
    """(replay-like dataset with trajectories, tokenizer directory)."""
    root = tmp_path_factory.mktemp("trainboot")
    data = root / "dataset.h5"
    generate_dataset(train_cfg, data, num_samples=18, workers=1, progress=False)
    tok = root / "tokenizer"
    train_tokenizer(data, tok, progress=False)
    return data, tok
