"""``train_noa``: trains into a run-scoped directory, opens the MLflow run, and a second attempt
of the same pipeline run resumes (the retried pod) while another pipeline run starts afresh."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from component_chain import JOB, Chain, run_train

from noa_core.errors import ConfigError
from noa_core.tracking.client import client_for


def test_training_outputs_and_its_run(trained: Chain) -> None:
    out = trained.outputs["train"]
    assert (out.steps, out.resumed_from_step) == (4, 0)
    checkpoint = Path(trained.artifacts["checkpoint"].path)
    meta = yaml.safe_load((checkpoint / "config.yaml").read_text())
    assert meta["tracking"]["mlflow_run_id"] == out.mlflow_run_id
    run = client_for(trained.tracking_uri).get_run(out.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["val_traj_mse"] == pytest.approx(
        trained.artifacts["train_metrics"].metadata["val_traj_mse"])
    assert (trained.root / "work" / "runs" / JOB / "train" / "state.pt").is_file()
    page = Path(trained.artifacts["train_curves"].path).read_text()
    png = base64.b64decode(page.split("data:image/png;base64,", 1)[1].split('"', 1)[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    logged = client_for(trained.tracking_uri).list_artifacts(out.mlflow_run_id, "training")
    assert [Path(a.path).name for a in logged] == ["curves.png"]


def test_a_retry_of_the_same_pipeline_run_resumes_its_checkpoint(trained: Chain) -> None:
    again, *_ = run_train(trained, JOB, "checkpoint-retry")
    first = trained.outputs["train"]
    assert again.resumed_from_step == first.steps == again.steps
    assert again.mlflow_run_id == first.mlflow_run_id


def test_another_pipeline_run_starts_afresh(trained: Chain) -> None:
    other, *_ = run_train(trained, "job-components-2", "checkpoint-other")
    assert (other.resumed_from_step, other.steps) == (0, 4)
    assert other.mlflow_run_id != trained.outputs["train"].mlflow_run_id


def test_a_run_id_that_would_leave_the_work_dir_is_refused(trained: Chain) -> None:
    with pytest.raises(ConfigError, match="names a directory"):
        run_train(trained, "../escape", "checkpoint-escape")
    assert not (trained.root / "escape").exists()
