"""A tiny evaluation setup: dataset, fast tokenizer, a test-split replay with ground-truth tokens
(``noa replay --tokenizer``), and a NOA checkpoint; plus one evaluation run shared by tests.

The checkpoint is a freshly built `tiny` NOA (conditioning layers perturbed so θ acts, field
statistics from the train split) saved through ``save_model_checkpoint``: the same directory
format training writes, without spending the suite's time on optimiser steps (what the metrics
are on a trained model is the lead's `small` run, not a unit test's business).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fast_artifacts import FAST_CRITERIA
from fast_artifacts import FAST_TOKENIZER as FAST

from noa_core.config import NOAConfig, load_config
from noa_core.data.generate import generate_dataset
from noa_core.dynamics.rollout import fixed_num_threads
from noa_core.features.schema import feature_schema
from noa_core.models import build_model, perturb_zero_layers
from noa_core.tokenizer.ground_truth import replay_with_ground_truth
from noa_core.tokenizer.train import train_tokenizer
from noa_core.training.checkpoint import save_model_checkpoint
from noa_core.training.data import ReplayWindows
from noa_core.training.field_stats import field_stats


def one_thread() -> contextlib.AbstractContextManager[None]:
    """One intra-op thread: on 2 shared, loaded cores torch's 2-thread kernels wait on each
    other (a tiny rollout ran 7× slower); restored afterwards for the rest of the suite."""
    return fixed_num_threads(1)


@pytest.fixture(autouse=True)
def _one_thread_per_test() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="session")
def eval_cfg(tmp_path_factory: pytest.TempPathFactory) -> NOAConfig:
    path = tmp_path_factory.mktemp("evalcfg") / "fast.yaml"
    path.write_text(FAST)
    return load_config(path)


@pytest.fixture(scope="session")
def eval_setup(tmp_path_factory: pytest.TempPathFactory, eval_cfg: NOAConfig
               ) -> dict[str, Path]:
    """{"dataset", "replay", "tokenizer", "checkpoint", "criteria"} on disk."""
    with one_thread():
        return _build_setup(tmp_path_factory.mktemp("evalboot"), eval_cfg)


def _build_setup(root: Path, eval_cfg: NOAConfig) -> dict[str, Path]:
    data = root / "dataset.h5"
    generate_dataset(eval_cfg, data, num_samples=18, workers=1, progress=False)  # 12/3/3
    tok = root / "tokenizer"
    train_tokenizer(data, tok, progress=False)
    replay = root / "replay.h5"
    replay_with_ground_truth(data, replay, tok, split="test", workers=1, progress=False)
    torch.manual_seed(0)
    model = build_model(eval_cfg)
    perturb_zero_layers(model, 0.05, torch.Generator().manual_seed(1))
    train = ReplayWindows(data, "train", eval_cfg.dynamics.feature_horizon)
    stats = field_stats([train.all_windows()])
    model.set_field_stats(stats.mean, stats.std)
    ckpt = root / "run" / "checkpoint"
    save_model_checkpoint(ckpt, model.eval(), eval_cfg,
                          feature_schema(eval_cfg.dynamics.feature_horizon), tok, {"step": 0})
    criteria = root / "fast_criteria.yaml"
    criteria.write_text(FAST_CRITERIA)
    return {"dataset": data, "replay": replay, "tokenizer": tok, "checkpoint": ckpt,
            "criteria": criteria}


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory: pytest.TempPathFactory, eval_setup: dict[str, Path]
              ) -> dict[str, Any]:
    """One ``evaluate`` run with the fast criteria, logging into a run of a real sqlite MLflow
    store (as the pipeline's evaluate logs into the run training opened)."""
    from noa_core.evaluation.evaluate import evaluate
    from noa_core.tracking import open_run

    root = tmp_path_factory.mktemp("evaluated")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    s = eval_setup
    with warnings.catch_warnings(), one_thread():
        # MLflow's own SQLAlchemy deprecation notice, not ours
        warnings.filterwarnings("ignore", "The ``noload`` loader strategy")
        run_id = open_run(uri, "noa-eval", params={"preset": "tiny"}, config={"name": "tiny"})
        result = evaluate(s["checkpoint"], s["replay"], s["tokenizer"], root / "out",
                          criteria=s["criteria"], tracking_uri=uri, run_id=run_id,
                          progress=False)
    return {"result": result, "out": root / "out", "uri": uri, "run_id": run_id}
