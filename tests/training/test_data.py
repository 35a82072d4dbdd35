"""noa_core.training.data: what a replay file must hold, said before any training."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from noa_core.config import NOAConfig
from noa_core.data.generate import generate_dataset
from noa_core.errors import DatasetError
from noa_core.training.data import ReplayWindows


def test_a_dataset_without_trajectories_says_to_replay_it(train_cfg: NOAConfig,
                                                         tmp_path: Path) -> None:
    cfg = train_cfg.model_copy(update={"dataset": train_cfg.dataset.model_copy(
        update={"store_trajectories": False})})
    data = tmp_path / "thetas.h5"
    generate_dataset(cfg, data, num_samples=4, workers=1, progress=False)
    command = re.escape(f"(noa replay --dataset {data} --split all --out REPLAY.h5)")
    with pytest.raises(DatasetError, match=r"thetas\.h5: outputs/fields is missing: a dataset "
                                           r"file without stored trajectories; replay it first "
                                           + command):
        ReplayWindows(data, "train", cfg.dynamics.feature_horizon)


def test_a_window_longer_than_the_stored_steps_is_refused(
        train_data: tuple[Path, Path], train_cfg: NOAConfig) -> None:
    data, _ = train_data
    h, k = train_cfg.dynamics.feature_horizon, train_cfg.dynamics.context_max
    ReplayWindows(data, "train", h, max_context=k)  # K_max + H: what the file holds
    with pytest.raises(DatasetError, match=rf"holds {k + h} steps, the window needs context "
                                           rf"{k + 1} \+ horizon {h}; replay with --steps ≥ "
                                           rf"{k + h + 1}"):
        ReplayWindows(data, "train", h, max_context=k + 1)
