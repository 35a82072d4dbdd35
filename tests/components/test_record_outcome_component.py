"""``record_outcome``: the exit handler leaves one MLflow record per pipeline execution."""

from __future__ import annotations

from pathlib import Path

from kfp.dsl import PipelineTaskFinalStatus

from components.record_outcome import record_outcome
from noa_core.tracking.pipeline_runs import pipeline_outcomes


def _status(state: str, error: str | None) -> PipelineTaskFinalStatus:
    return PipelineTaskFinalStatus(state=state, pipeline_job_resource_name="run-x",
                                   pipeline_task_name="exit-handler-1", error_code=None,
                                   error_message=error)


def test_success_and_failure_are_both_recorded(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ok = record_outcome.python_func(status=_status("SUCCEEDED", None), tracking_uri=uri,
                                    model_name="m", pipeline_run_id="job-a")
    bad = record_outcome.python_func(status=_status("FAILED", "train-noa: exit 137"),
                                     tracking_uri=uri, model_name="m", pipeline_run_id="job-b")
    records = {r["pipeline_run_id"]: r for r in pipeline_outcomes(uri)}
    assert records["job-a"]["mlflow_run_id"] == ok and records["job-b"]["mlflow_run_id"] == bad
    assert (records["job-a"]["status"], records["job-a"]["state"]) == ("FINISHED", "SUCCEEDED")
    assert records["job-a"]["error"] == ""
    assert (records["job-b"]["status"], records["job-b"]["state"]) == ("FAILED", "FAILED")
    assert records["job-b"]["error"] == "train-noa: exit 137"
    assert [r["pipeline_run_id"] for r in pipeline_outcomes(uri, "job-b")] == ["job-b"]
