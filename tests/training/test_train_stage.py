"""The training stage as the pipeline runs it: granted GPUs torch cannot see are an error (a CPU
image on a GPU node must not train on the CPU silently); run-scoped directories stay inside the
work directory. This machine has no GPU, which is what the first test needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from noa_core.errors import ConfigError, TrainingError
from noa_core.training.stage import require_gpus, run_scoped_dir


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_granted_gpus_that_torch_cannot_see_are_an_error() -> None:
    require_gpus(0)  # the CPU is always there
    with pytest.raises(TrainingError, match=r"granted 1 GPU\(s\) but torch sees 0 .*train_gpus=0"):
        require_gpus(1)
    with pytest.raises(TrainingError, match="expected 0"):
        require_gpus(-1)


def test_run_scoped_directory(tmp_path: Path) -> None:
    assert run_scoped_dir(tmp_path, "run-7") == tmp_path / "runs" / "run-7" / "train"
    for bad in ("../x", "a/b", "", "..", ".hidden"):
        with pytest.raises(ConfigError, match="names a directory"):
            run_scoped_dir(tmp_path, bad)
