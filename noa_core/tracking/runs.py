"""The run a pipeline execution logs into: opened by train, continued by evaluate and export.

Every function takes the tracking URI explicitly (``require_tracking_uri``) and the run id
returned by ``open_run``; none touches MLflow's global "active run", so stages in separate
processes or pods log into the same run by id.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from noa_core.errors import TrackingError
from noa_core.tracking.client import client_for, error_code, quiet_urls, tracking_errors
from noa_core.tracking.constants import ARTIFACT_CONFIG
from noa_core.tracking.safety import check_no_credentials, flatten, require_tracking_uri

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]
_BATCH = 100  # MLflow's limit of params or tags per log_batch call
_MAX_PARAM_VALUE = 6000  # characters (MLflow's limit)


def open_run(tracking_uri: str | None, experiment: str, params: Mapping[str, Any],
             config: Mapping[str, Any], tags: Mapping[str, str] | None = None,
             run_name: str | None = None) -> str:
    """Create a run (status RUNNING) in ``experiment`` (created if absent); return its id.

    ``params`` (nested mappings flattened to dotted keys) become run parameters; ``config``,
    the resolved configuration, is stored as ``config/resolved.yaml``; ``tags`` are set on the
    run. All three are checked for credentials first: nothing is created if one is refused.
    """
    uri = require_tracking_uri(tracking_uri)
    flat = {k: _param_text(k, v) for k, v in flatten(params)}
    check_no_credentials(flat, "param")
    check_no_credentials(config, "config key")
    check_no_credentials(dict(tags or {}), "tag")
    client = client_for(uri)
    with tracking_errors(uri, f"open a run in experiment {experiment!r}"):
        experiment_id = _experiment_id(client, uri, experiment)
        run = client.create_run(experiment_id, tags={k: str(v) for k, v in (tags or {}).items()},
                                run_name=run_name)
        run_id: str = run.info.run_id
        _log_params(client, run_id, flat)
        client.log_text(run_id, yaml.safe_dump(dict(config), sort_keys=False), ARTIFACT_CONFIG)
    return run_id


def log_metrics(tracking_uri: str | None, run_id: str, metrics: Mapping[str, float],
                step: int | None = None) -> None:
    """Log scalar metrics into the run, at ``step`` (default 0); values must be real numbers."""
    from mlflow.entities import Metric

    uri = require_tracking_uri(tracking_uri)
    now = int(time.time() * 1000)
    entries = []
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TrackingError(f"metric {key!r}: expected a number, got {value!r}")
        entries.append(Metric(key, float(value), now, int(step or 0)))
    check_no_credentials({m.key: "" for m in entries}, "metric")
    with tracking_errors(uri, f"log metrics into run {run_id}"):
        client = client_for(uri)
        for i in range(0, len(entries), 1000):
            client.log_batch(run_id, metrics=entries[i:i + 1000])


def log_artifact(tracking_uri: str | None, run_id: str, path: str | Path,
                 artifact_path: str | None = None) -> None:
    """Upload a file or a directory (recursively) into the run under ``artifact_path``."""
    uri = require_tracking_uri(tracking_uri)
    local = Path(path)
    if not local.exists():
        raise TrackingError(f"{local}: no such file or directory to log into run {run_id}")
    with tracking_errors(uri, f"log {local.name} into run {run_id}"):
        client = client_for(uri)
        if local.is_dir():
            client.log_artifacts(run_id, str(local), artifact_path)
        else:
            client.log_artifact(run_id, str(local), artifact_path)


def set_run_tags(tracking_uri: str | None, run_id: str, tags: Mapping[str, str]) -> None:
    """Set string tags on the run (checked for credentials first)."""
    from mlflow.entities import RunTag

    uri = require_tracking_uri(tracking_uri)
    check_no_credentials(dict(tags), "tag")
    entries = [RunTag(k, str(v)) for k, v in tags.items()]
    with tracking_errors(uri, f"tag run {run_id}"):
        client = client_for(uri)
        for i in range(0, len(entries), _BATCH):
            client.log_batch(run_id, tags=entries[i:i + _BATCH])


def end_run(tracking_uri: str | None, run_id: str, status: RunStatus = "FINISHED") -> None:
    """Mark the run finished, failed or killed (a failed pipeline leaves this record)."""
    uri = require_tracking_uri(tracking_uri)
    with tracking_errors(uri, f"end run {run_id}"), quiet_urls():
        client_for(uri).set_terminated(run_id, status=status)


def reopen_run(tracking_uri: str | None, run_id: str) -> None:
    """Set an existing run back to RUNNING (a retried training continues it); a run that does
    not exist in this store is a ``TrackingError`` naming it."""
    uri = require_tracking_uri(tracking_uri)
    with tracking_errors(uri, f"continue run {run_id}"):
        client_for(uri).update_run(run_id, status="RUNNING")


def run_metrics(tracking_uri: str | None, run_id: str) -> dict[str, float]:
    """The latest value of every metric of the run."""
    uri = require_tracking_uri(tracking_uri)
    with tracking_errors(uri, f"read run {run_id}"):
        return dict(client_for(uri).get_run(run_id).data.metrics)


def _experiment_id(client: Any, uri: str, name: str) -> str:
    """Get or create the experiment; two pods creating it at once both end up with its id."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=_artifact_root(uri)))
    except MlflowException as exc:
        if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
            raise
    return str(client.get_experiment_by_name(name).experiment_id)


def _artifact_root(uri: str) -> str | None:
    """For a sqlite store, artifacts beside the database (``mlartifacts/``), not under whatever
    the working directory happens to be; a server chooses its own root."""
    if not uri.startswith("sqlite:"):
        return None
    db = urlsplit(uri).path[1:]  # sqlite:///rel.db → "rel.db"; sqlite:////abs.db → "/abs.db"
    if not db or db == ":memory:":
        return None
    return (Path(db).resolve().parent / "mlartifacts").as_uri()


def _param_text(key: str, value: Any) -> str:
    text = str(value)
    if len(text) > _MAX_PARAM_VALUE:
        raise TrackingError(f"param {key!r}: {len(text)} characters, MLflow keeps at most "
                            f"{_MAX_PARAM_VALUE}; log it as an artifact instead")
    return text


def _log_params(client: Any, run_id: str, flat: Mapping[str, str]) -> None:
    from mlflow.entities import Param

    entries = [Param(k, v) for k, v in flat.items()]
    for i in range(0, len(entries), _BATCH):
        client.log_batch(run_id, params=entries[i:i + _BATCH])
