"""The tokenizer reuses the features ``noa bootstrap`` has just stored (same window and schema)
instead of extracting them a second time, and gets the same numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from noa_core.config import NOAConfig
from noa_core.features.io import extract_file
from noa_core.tokenizer import train as tok_train


def test_stored_features_are_read_not_recomputed(tiny_dataset: Path, tiny_cfg: NOAConfig,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    computed = tok_train.load_training_data(tiny_dataset, tiny_cfg, progress=False)
    with_features = tmp_path / "with-features.h5"
    extract_file(tiny_dataset, with_features, progress=False)

    class NoExtraction:
        def __init__(self, *args: object) -> None:
            raise AssertionError("features were extracted again")

    monkeypatch.setattr(tok_train, "FeatureExtractor", NoExtraction)
    stored = tok_train.load_training_data(with_features, tiny_cfg, progress=False)
    for name in ("initial", "temporal", "summary_per_realization", "summary"):
        a, b = getattr(computed.features, name), getattr(stored.features, name)
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name
    assert torch.equal(computed.x0, stored.x0)
    assert (computed.split == stored.split).all()
    with pytest.raises(AssertionError, match="extracted again"):  # the plain file computes
        tok_train.load_training_data(tiny_dataset, tiny_cfg, progress=False)
