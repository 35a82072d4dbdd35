"""A tiny dataset and a quickly trained tokenizer, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from noa_core.config import load_config
from noa_core.data.generate import generate_dataset
from noa_core.tokenizer.train import train_tokenizer

# `tiny` with short tokenizer training: enough to exercise every part, fast on 2 cores.
FAST_TOKENIZER = """\
extends: tiny
tokenizer:
  training: {epochs: 12, patience: 12, batch_size: 16}
  families: {hidden_dim: 32, training: {epochs: 3, patience: 3, batch_size: 16}}
"""


@pytest.fixture(scope="session")
def fast_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "fast.yaml"
    path.write_text(FAST_TOKENIZER)
    return path


@pytest.fixture(scope="session")
def tok_dataset(tmp_path_factory: pytest.TempPathFactory, fast_config: Path) -> Path:
    out = tmp_path_factory.mktemp("tokdata") / "dataset.h5"
    generate_dataset(load_config(fast_config), out, num_samples=24, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def trained_tokenizer(tmp_path_factory: pytest.TempPathFactory, tok_dataset: Path) -> Path:
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_tokenizer(tok_dataset, out, progress=False)
    return out
