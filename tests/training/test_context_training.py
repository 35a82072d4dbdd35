"""Training with operator context: K drawn per step, windows and contexts cut from one array,
the context branch trained only when a context is fed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from noa_core.config import NOAConfig, config_from_dict, load_config
from noa_core.data.hdf5_reader import DatasetReader
from noa_core.dynamics.rollout import fixed_num_threads
from noa_core.errors import ConfigError
from noa_core.training import data as training_data
from noa_core.training.data import ReplayWindows
from noa_core.training.field_stats import field_stats
from noa_core.training.losses import window_targets
from noa_core.training.trainer import Trainer, batch_indices, context_of_step, window_offset


def _with_training(cfg: NOAConfig, **training: object) -> NOAConfig:
    doc = cfg.model_dump(mode="json")
    doc["training"].update(training)
    return config_from_dict(doc, "test")


def test_each_step_draws_its_k_from_the_range_reproducibly(train_cfg: NOAConfig) -> None:
    cfg = _with_training(train_cfg, context=2, context_range=[0, 2])
    ks = [context_of_step(cfg.training, s) for s in range(60)]
    assert ks == [context_of_step(cfg.training, s) for s in range(60)]  # a function of the step
    assert set(ks) == {0, 1, 2}
    other = _with_training(train_cfg, context=2, context_range=[0, 2], seed=1)
    assert ks != [context_of_step(other.training, s) for s in range(60)]
    fixed = _with_training(train_cfg, context=1, context_range=None)
    assert {context_of_step(fixed.training, s) for s in range(20)} == {1}


def test_the_tbptt_window_sits_at_the_end_or_where_the_step_draws_it(
        train_cfg: NOAConfig) -> None:
    h = train_cfg.dynamics.feature_horizon
    end = _with_training(train_cfg, tbptt_window=4)
    assert {window_offset(end.training, h, s) for s in range(10)} == {None}
    rand = _with_training(train_cfg, tbptt_window=4, tbptt_position="random")
    offsets = [window_offset(rand.training, h, s) for s in range(80)]
    assert offsets == [window_offset(rand.training, h, s) for s in range(80)]
    assert set(offsets) == set(range(h - 4 + 1))  # every warm-up 0 … H − W is drawn
    whole = _with_training(train_cfg, tbptt_window=None, tbptt_position="random")
    assert window_offset(whole.training, h, 3) is None


@pytest.mark.parametrize(("training", "message"), [
    ({"context": 3, "context_range": None}, "needs model.context_max ≥ 3"),
    ({"context": 1, "context_range": [0, 3]}, "up to 3 needs model.context_max ≥ 3"),
    ({"context": 1, "context_range": [2, 1]}, "0 ≤ lo ≤ hi"),
])
def test_a_context_the_model_cannot_read_is_refused(train_cfg: NOAConfig, training: dict,
                                                   message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _with_training(train_cfg, **training)


def test_windows_and_contexts_come_from_the_stored_trajectories(
        train_data: tuple[Path, Path], train_cfg: NOAConfig) -> None:
    data, _ = train_data
    h = train_cfg.dynamics.feature_horizon
    ds = ReplayWindows(data, "train", h, context=1, max_context=2)
    with DatasetReader(data) as r:
        traj = torch.from_numpy(r.trajectory(int(ds.rows[3])))  # [M, S+1, C, H, W]
    for k in (0, 1, 2):
        assert torch.equal(ds.window(3, k), traj[:, k:k + h + 1])
        ctx = ds.context_states(3, k)
        assert ctx.shape[0] == k + 1 and torch.equal(ctx, traj[0, :k + 1])
        assert torch.equal(ctx[-1], ds.window(3, k)[0, 0])  # the rollout starts at u_K
        assert torch.equal(ds.all_windows(k)[3], ds.window(3, k))
    assert torch.equal(ds.window(3), ds.window(3, 1))  # default K = context
    with pytest.raises(ValueError, match="outside the 0 … 2"):
        ds.window(0, 3)
    plain = ReplayWindows(data, "train", h, context=1)  # one K: its window and context
    assert torch.equal(plain.window(3), ds.window(3, 1))
    assert torch.equal(plain.context_states(3), ds.context_states(3, 1))
    with pytest.raises(ValueError, match="outside the 0 … 1"):
        plain.window(3, 2)


def test_the_context_branch_learns_only_from_steps_that_feed_a_context(
        train_data: tuple[Path, Path], train_cfg: NOAConfig, tmp_path: Path) -> None:
    data, tok = train_data
    cfg = _with_training(train_cfg, context=2, context_range=[0, 2])
    with fixed_num_threads(1):
        trainer = Trainer(cfg, data, tok, tmp_path, progress=False)
        assert sorted(trainer.targets) == [0, 1, 2]
        inc = trainer.model.increment_std
        assert inc.shape == (cfg.dynamics.channels,) and bool((inc > 0).all())
        assert not torch.equal(inc, torch.ones_like(inc))  # set from the train split
        rows = batch_indices(len(trainer.train_ds), cfg.training.batch_size, 0, 0)
        encoder = trainer.model.context_encoder
        for k in (0, 2):
            terms = trainer.losses(rows, k)
            trainer.opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            branch = [*encoder.parameters(), trainer.model.drift_gate.weight,
                      trainer.model.net.context_stem.weight]
            if k == 0:
                assert all(p.grad is None for p in branch)
            else:  # the encoder's CNN waits behind its zero output layer; the rest moves now
                assert all(p.grad is not None for p in branch)
                for p in (encoder.mlp[-1].weight, trainer.model.drift_gate.weight,
                          trainer.model.net.context_stem.weight):
                    assert float(p.grad.abs().sum()) > 0
        assert trainer.train_step(rows, 2) is not None
        val = trainer.validate()  # K = training.context, context fed
    assert val["val_traj_mse"] > 0 and val["val_persistence_mse"] > 0


def test_presets_train_with_context() -> None:
    for name in ("tiny", "small", "paper"):
        t = load_config(name).training
        assert t.context >= 1 and t.context_range is not None
        assert t.context_range[0] <= t.context <= t.context_range[1]


@pytest.mark.parametrize("preload", [True, False])
def test_one_read_of_the_split_gives_every_k_its_targets_and_the_field_statistics(
        train_data: tuple[Path, Path], train_cfg: NOAConfig, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, preload: bool) -> None:
    data, tok = train_data
    cfg = _with_training(train_cfg, context=2, context_range=[0, 2])
    if not preload:  # as a split over PRELOAD_BYTES (paper's) is read: batch by batch
        monkeypatch.setattr(training_data, "PRELOAD_BYTES", 0)
    reads = []
    real_read = ReplayWindows._read
    monkeypatch.setattr(ReplayWindows, "_read",
                        lambda self, i: reads.append((self.split, i)) or real_read(self, i))
    with fixed_num_threads(1):
        trainer = Trainer(cfg, data, tok, tmp_path, progress=False)
    ds = trainer.train_ds
    assert sorted(i for split, i in reads if split == "train") == list(range(len(ds)))
    states = ds.all_states()
    for k in (0, 1, 2):  # each K's targets from its own windows, all at once
        want = window_targets(trainer.tok, trainer.extractor, ds.all_windows(k))
        got = trainer.targets[k]
        assert torch.equal(got.x_norm, want.x_norm)
        assert all(torch.equal(a, b) for a, b in zip(got.latents, want.latents, strict=True))
        assert all(torch.equal(got.embeddings[f], want.embeddings[f]) for f in want.embeddings)
    stats = field_stats([states])
    model = trainer.model
    for name, want in (("field_mean", stats.mean), ("field_std", stats.std),
                       ("increment_std", stats.increment_std)):
        torch.testing.assert_close(getattr(model, name), want, rtol=1e-6, atol=0)
