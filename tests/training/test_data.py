"""noa_core.training.data: what a replay file must hold, said before any training."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from noa_core.config import NOAConfig
from noa_core.data.generate import generate_dataset
from noa_core.data.hdf5_reader import DatasetReader
from noa_core.errors import DatasetError
from noa_core.models.registry import model_inputs
from noa_core.training.data import ReplayWindows
from noa_core.training.trainer import Trainer


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


def test_a_replay_of_another_configuration_is_named_before_training(
        train_data: tuple[Path, Path], train_cfg: NOAConfig, tmp_path: Path) -> None:
    data, tok = train_data
    h = train_cfg.dynamics.feature_horizon
    slots, (c, g, _) = model_inputs(train_cfg)
    ReplayWindows(data, "train", h, model_inputs=(slots, (c, g, g)))
    # A grid the U-Net also accepts: before this check it trained on 16² and saved "32"
    wider = train_cfg.model_copy(update={"dynamics": train_cfg.dynamics.model_copy(
        update={"grid": 2 * g})})
    with pytest.raises(DatasetError, match=rf"dataset\.h5: parameters/params has {slots} θ "
                                           rf"slots and inputs/fields are \[C, H, W\] = "
                                           rf"\[{c}, {g}, {g}\]; the model takes {slots} θ "
                                           rf"slots and \[{c}, {2 * g}, {2 * g}\]"):
        Trainer(wider, data, tok, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("preload", [True, False])
def test_a_split_streams_in_batches_of_whole_operators_in_row_order(
        train_data: tuple[Path, Path], train_cfg: NOAConfig, preload: bool) -> None:
    data, _ = train_data
    h, k = train_cfg.dynamics.feature_horizon, train_cfg.dynamics.context_max
    ds = ReplayWindows(data, "train", h, max_context=k, preload=preload)
    with DatasetReader(data) as r:
        every = torch.stack([torch.from_numpy(r.trajectory(int(i))[:, :k + h + 1])
                             for i in ds.rows])  # [N, M, K_max + H + 1, C, H, W]
    batches = list(ds.state_batches(batch=3))
    assert [len(b) for b in batches] == [3] * (len(ds) // 3) + ([len(ds) % 3] if len(ds) % 3
                                                                 else [])
    assert torch.equal(torch.cat(batches), every)
    assert torch.equal(ds.all_states(), every)
    for j in (0, k):
        windows = list(ds.window_batches(j, batch=3))
        assert torch.equal(torch.cat(windows), every[:, :, j:j + h + 1])
        assert torch.equal(ds.all_windows(j), every[:, :, j:j + h + 1])
