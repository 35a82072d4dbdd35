"""Tiny Phase 0 artifacts for the tracking tests that run the real stages (train, evaluate,
export, register): a dataset, a quickly fitted tokenizer and a replay of every split with
ground-truth tokens, plus a criteria file sized for 3 test operators."""

from __future__ import annotations

import contextlib
from pathlib import Path

from fast_artifacts import FAST_CRITERIA
from fast_artifacts import FAST_TRAINING as FAST

from noa_core.dynamics.rollout import fixed_num_threads


def build_phase0(root: Path) -> dict[str, Path]:
    """{"config", "dataset", "tokenizer", "replay", "criteria"} under ``root``: 18 operators
    (12/3/3 train/val/test), replayed with ground-truth features and tokens."""
    from noa_core.config import load_config
    from noa_core.data.generate import generate_dataset
    from noa_core.tokenizer.ground_truth import replay_with_ground_truth
    from noa_core.tokenizer.train import train_tokenizer

    config, criteria = root / "fast.yaml", root / "fast_criteria.yaml"
    config.write_text(FAST)
    criteria.write_text(FAST_CRITERIA)
    data, tok, replay = root / "dataset.h5", root / "tokenizer", root / "replay.h5"
    with one_thread():
        generate_dataset(load_config(config), data, num_samples=18, workers=1, progress=False)
        train_tokenizer(data, tok, progress=False)
        replay_with_ground_truth(data, replay, tok, split="all", workers=1, progress=False)
    return {"config": config, "dataset": data, "tokenizer": tok, "replay": replay,
            "criteria": criteria}


def one_thread() -> contextlib.AbstractContextManager[None]:
    """One intra-op torch thread (2 shared cores: two threads wait on each other)."""
    return fixed_num_threads(1)
