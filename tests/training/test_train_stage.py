"""The training stage as the pipeline runs it: granted GPUs torch cannot see are an error (a CPU
image on a GPU node must not train on the CPU silently); run-scoped directories stay inside the
work directory. What torch sees is stood in for, so the test runs the same with or without GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from noa_core.errors import ConfigError, TrainingError
from noa_core.training.stage import require_gpus, run_scoped_dir


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
