"""``record_outcome``: the exit handler; every pipeline execution leaves a record in MLflow."""

from kfp import dsl
from kfp.dsl import PipelineTaskFinalStatus

from components import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def record_outcome(status: PipelineTaskFinalStatus, tracking_uri: str, model_name: str,
                   pipeline_run_id: str) -> str:
    """Write one MLflow run in the ``noa-pipeline-runs`` experiment with KFP's final state
    (FINISHED when it succeeded, FAILED otherwise) and the error message, so a failed scheduled
    retraining is visible. Returns the record's MLflow run id."""
    from noa_core.tracking.pipeline_runs import record_pipeline_outcome

    error = (status.error_message or "") if status.state != "SUCCEEDED" else ""
    record = record_pipeline_outcome(tracking_uri, pipeline_run_id, status.state,
                                     error_message=error, model_name=model_name)
    print(f"pipeline run {pipeline_run_id}: {status.state}; recorded as MLflow run {record}")
    return record
