"""The record every pipeline execution leaves, whatever happened to it (the exit handler's job).

A scheduled retraining that fails at 3 a.m. must not vanish: the pipeline's exit handler calls
``record_pipeline_outcome`` with the final state KFP reports, which writes one MLflow run per
pipeline execution in the ``PIPELINE_EXPERIMENT`` experiment: status FINISHED or FAILED, tags
for the pipeline run id, the state, the error and the model name. ``pipeline_outcomes`` reads
them back (newest first) for dashboards and tests.
"""

from __future__ import annotations

from typing import Any

from noa_core.tracking.client import client_for, tracking_errors
from noa_core.tracking.constants import (
    LINEAGE_TAGS,
    PIPELINE_EXPERIMENT,
    TAG_PIPELINE_ERROR,
    TAG_PIPELINE_MODEL,
    TAG_PIPELINE_STATE,
)
from noa_core.tracking.safety import redact_uri, require_tracking_uri

SUCCEEDED = "SUCCEEDED"
_MAX_ERROR = 5000  # characters kept of an error message (MLflow's tag limit is 8000)


def record_pipeline_outcome(tracking_uri: str | None, pipeline_run_id: str, state: str,
                            error_message: str = "", model_name: str = "") -> str:
    """Write the outcome of pipeline run ``pipeline_run_id``; returns the record's MLflow run id.

    ``state`` is KFP's final state (``SUCCEEDED``, ``FAILED``, ``CANCELED``, ...): the record's
    status is FINISHED for ``SUCCEEDED`` and FAILED otherwise.
    """
    uri = require_tracking_uri(tracking_uri)
    if not pipeline_run_id:
        raise ValueError("record_pipeline_outcome needs the pipeline run id")
    client = client_for(uri)
    with tracking_errors(uri, f"record the outcome of pipeline run {pipeline_run_id}"):
        experiment = client.get_experiment_by_name(PIPELINE_EXPERIMENT)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else client.create_experiment(PIPELINE_EXPERIMENT))
        tags = {LINEAGE_TAGS["pipeline_run_id"]: pipeline_run_id, TAG_PIPELINE_STATE: state,
                TAG_PIPELINE_ERROR: (error_message or "")[:_MAX_ERROR],
                TAG_PIPELINE_MODEL: model_name or ""}
        run = client.create_run(experiment_id, tags=tags,
                                run_name=f"pipeline {pipeline_run_id}")
        client.set_terminated(run.info.run_id,
                              status="FINISHED" if state == SUCCEEDED else "FAILED")
    return str(run.info.run_id)


def pipeline_outcomes(tracking_uri: str | None, pipeline_run_id: str | None = None
                      ) -> list[dict[str, Any]]:
    """The recorded outcomes, newest first (only ``pipeline_run_id``'s when given)."""
    uri = require_tracking_uri(tracking_uri)
    client = client_for(uri)
    with tracking_errors(uri, "read the pipeline outcomes"):
        experiment = client.get_experiment_by_name(PIPELINE_EXPERIMENT)
        if experiment is None:
            return []
        flt = "" if pipeline_run_id is None else (
            f"tags.`{LINEAGE_TAGS['pipeline_run_id']}` = '{pipeline_run_id}'")
        runs = client.search_runs([experiment.experiment_id], filter_string=flt,
                                  order_by=["attributes.start_time DESC"])
    return [{"mlflow_run_id": r.info.run_id, "status": r.info.status,
             "pipeline_run_id": r.data.tags.get(LINEAGE_TAGS["pipeline_run_id"], ""),
             "state": r.data.tags.get(TAG_PIPELINE_STATE, ""),
             "error": r.data.tags.get(TAG_PIPELINE_ERROR, ""),
             "model_name": r.data.tags.get(TAG_PIPELINE_MODEL, ""),
             "store": redact_uri(uri)} for r in runs]
