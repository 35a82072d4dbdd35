"""The training stage as the pipeline runs it: granted GPUs torch cannot see are an error (a CPU
image on a GPU node must not train on the CPU silently); run-scoped directories stay inside the
work directory. What torch sees is stood in for, so the test runs the same with or without GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from noa_core.config import load_config
from noa_core.errors import ConfigError, TrainingError
from noa_core.training.stage import require_gpus, run_scoped_dir, with_budget


def _torch_sees(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_granted_gpus_that_torch_cannot_see_are_an_error(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    _torch_sees(monkeypatch, 0)
    require_gpus(0)  # the CPU is always there
    with pytest.raises(TrainingError, match=r"granted 1 GPU\(s\) but torch sees 0 .*train_gpus=0"):
        require_gpus(1)
    with pytest.raises(TrainingError, match="expected 0"):
        require_gpus(-1)
    _torch_sees(monkeypatch, 1)
    require_gpus(1)
    with pytest.raises(TrainingError, match=r"granted 2 GPU\(s\) but torch sees 1"):
        require_gpus(2)


def test_run_scoped_directory(tmp_path: Path) -> None:
    assert run_scoped_dir(tmp_path, "run-7") == tmp_path / "runs" / "run-7" / "train"
    for bad in ("../x", "a/b", "", "..", ".hidden"):
        with pytest.raises(ConfigError, match="names a directory"):
            run_scoped_dir(tmp_path, bad)


def test_a_budget_override_is_validated_like_the_config() -> None:
    cfg = load_config("small")
    assert with_budget(cfg, None, None) is cfg
    assert with_budget(cfg, cfg.training.max_steps, None) == cfg  # the round trip is exact
    got = with_budget(cfg, 7, 0.5).training
    assert (got.max_steps, got.max_minutes) == (7, 0.5)
    # 0 steps or minutes would train nothing and still write a checkpoint
    with pytest.raises(ConfigError, match=r"training\.max_minutes: Input should be greater "
                                          r"than 0 \(got -2\.0\)"):
        with_budget(cfg, None, -2.0)
    with pytest.raises(ConfigError, match=r"training\.max_steps: .* \(got 0\)"):
        with_budget(cfg, 0, None)
