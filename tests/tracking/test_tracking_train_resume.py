"""Training's MLflow run across a retried pod, against a real ``mlflow server`` on loopback: a
training that dies leaves its run FAILED; resumed from OUT it continues that same run (no new
one) to FINISHED; a fresh training into the same OUT opens a new run; a resume against another
store is refused. And without a tracking URI nothing touches MLflow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient
from pipeline_test_support import one_thread

from noa_core.config import NOAConfig, load_config
from noa_core.errors import TrackingError
from noa_core.tracking.constants import TRAIN_EXPERIMENT, TRAIN_METRIC_PREFIX, TRAIN_RUN_FILE
from noa_core.training.trainer import STATE_FILE, Trainer, train

pytestmark = pytest.mark.slow  # three 4-step trainings on `tiny`

DIE_AT_STEP = 2  # a checkpoint (state.pt) is written at step 2: the retry resumes from there


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="module")
def cfg(phase0: dict[str, Path]) -> NOAConfig:
    return load_config(phase0["config"])


def _train_runs(client: MlflowClient) -> set[str]:
    exp = client.get_experiment_by_name(TRAIN_EXPERIMENT)
    return {r.info.run_id for r in client.search_runs([exp.experiment_id])} if exp else set()


def _die_after(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the optimiser step after ``step`` raise, as an evicted pod would stop."""
    real = Trainer.train_step

    def dying(self: Trainer, rows: torch.Tensor, *args: int | None) -> dict[str, float] | None:
        if self.step == step:
            raise RuntimeError("pod evicted")
        return real(self, rows, *args)

    monkeypatch.setattr(Trainer, "train_step", dying)


def test_a_retried_training_continues_its_run(
        cfg: NOAConfig, phase0: dict[str, Path], tracking_uri: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    out, inputs = tmp_path / "train", (cfg, phase0["replay"], phase0["tokenizer"])
    with monkeypatch.context() as m:
        _die_after(DIE_AT_STEP, m)
        with pytest.raises(RuntimeError, match="pod evicted"):
            train(*inputs, out, progress=False, tracking_uri=tracking_uri)
    run_id = json.loads((out / TRAIN_RUN_FILE).read_text())["run_id"]
    assert client.get_run(run_id).info.status == "FAILED"
    assert (out / STATE_FILE).is_file() and not (out / "metrics.json").exists()
    runs_before = _train_runs(client)

    resumed = train(*inputs, out, resume=True, progress=False, tracking_uri=tracking_uri)

    assert resumed["mlflow_run_id"] == run_id and resumed["steps"] == 4
    assert _train_runs(client) == runs_before  # no new run
    assert client.get_run(run_id).info.status == "FINISHED"
    assert "View run" not in capsys.readouterr().out  # stdout stays the stage's own
    # steps 1-2 from the first attempt, 3-4 from the retry: each once
    history = client.get_metric_history(run_id, f"{TRAIN_METRIC_PREFIX}total")
    assert [h.step for h in history] == [1, 2, 3, 4]
    assert [h.step for h in client.get_metric_history(run_id, "val_traj_mse")] == [2, 4]
    meta = yaml.safe_load((out / "checkpoint" / "config.yaml").read_text())
    assert meta["tracking"]["mlflow_run_id"] == run_id

    with pytest.raises(TrackingError, match="resume with the same --tracking-uri"):
        train(*inputs, out, resume=True, progress=False,
              tracking_uri=f"sqlite:///{tmp_path / 'other.db'}")

    fresh = train(*inputs, out, progress=False, tracking_uri=tracking_uri)
    assert fresh["mlflow_run_id"] not in (run_id, None)
    assert json.loads((out / TRAIN_RUN_FILE).read_text())["run_id"] == fresh["mlflow_run_id"]
    assert _train_runs(client) == runs_before | {fresh["mlflow_run_id"]}


def test_without_a_tracking_uri_nothing_touches_mlflow(
        cfg: NOAConfig, phase0: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("MLflow was used by a training without a tracking URI")

    monkeypatch.setattr(mlflow.MlflowClient, "__init__", refuse)
    metrics = train(cfg, phase0["replay"], phase0["tokenizer"], tmp_path, progress=False)
    assert "mlflow_run_id" not in metrics
    assert "mlflow_run_id" not in json.loads((tmp_path / "metrics.json").read_text())
    assert not (tmp_path / TRAIN_RUN_FILE).exists()
    meta = yaml.safe_load((tmp_path / "checkpoint" / "config.yaml").read_text())
    assert "tracking" not in meta
    assert set(meta["lineage"]) == {"dataset_sha256", "tokenizer_sha256", "git_commit"}
