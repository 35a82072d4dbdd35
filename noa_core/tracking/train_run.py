"""The MLflow run a training opens, continues after a retry, feeds and closes.

Rules:

- ``start_train_run`` opens a run in ``TRAIN_EXPERIMENT`` (params: the flattened resolved config
  and the training inputs; artifact: the resolved config; tags: what training knows of its
  lineage) and records its id in ``OUT/mlflow_run.json`` (written atomically). A resumed
  training whose OUT holds that file continues the same run (set back to RUNNING) instead; one
  that names another tracking URI than the recorded one is refused.
- ``record_metrics`` turns one ``metrics.jsonl`` record of the trainer into MLflow metrics at
  that record's step (names in ``constants``: ``train.<term>``, ``val_*``).
- A resumed run logs again the steps between its last checkpoint and the interruption: MLflow
  keeps both values at such a step (its metric history is a list, not a map).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from noa_core.errors import TrackingError
from noa_core.tracking.constants import (
    LINEAGE_TAGS,
    TRAIN_EXPERIMENT,
    TRAIN_METRIC_PREFIX,
    TRAIN_RUN_FILE,
    VAL_POLICY_PREFIX,
)
from noa_core.tracking.runs import log_metrics, open_run, reopen_run
from noa_core.tracking.safety import redact_uri, require_tracking_uri

_VAL_KEY = "val"  # the trainer's validation records: {"step": s, "val": {...}}


def recorded_run(out: str | Path) -> dict[str, str] | None:
    """``{"run_id", "tracking_uri"}`` from ``OUT/mlflow_run.json``, or None when absent."""
    path = Path(out) / TRAIN_RUN_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrackingError(f"{path}: unreadable run record ({exc})") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str)
                                            for k in ("run_id", "tracking_uri")):
        raise TrackingError(f"{path}: expected {{\"run_id\": str, \"tracking_uri\": str}}")
    return {"run_id": doc["run_id"], "tracking_uri": doc["tracking_uri"]}


def start_train_run(tracking_uri: str | None, out: str | Path, *, config: Mapping[str, Any],
                    params: Mapping[str, Any], lineage: Mapping[str, str],
                    resume: bool) -> str:
    """Open (or, resuming, continue) the training run; return its id (module docstring).

    ``lineage`` holds a subset of ``LINEAGE_TAGS``' keys; they become the run's tags.
    """
    uri = require_tracking_uri(tracking_uri)
    previous = recorded_run(out) if resume else None
    if previous is not None:
        if previous["tracking_uri"] != redact_uri(uri):
            raise TrackingError(
                f"{Path(out) / TRAIN_RUN_FILE}: this training logs to run {previous['run_id']} "
                f"of {previous['tracking_uri']}, not to {redact_uri(uri)}: resume with the same "
                f"--tracking-uri, or train into a fresh --out")
        reopen_run(uri, previous["run_id"])
        return previous["run_id"]
    tags = {LINEAGE_TAGS[k]: v for k, v in lineage.items()}
    run_id = open_run(uri, TRAIN_EXPERIMENT, params=params, config=config, tags=tags,
                      run_name="train")
    _write_record(Path(out), run_id, uri)
    return run_id


def _write_record(out: Path, run_id: str, uri: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / TRAIN_RUN_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"run_id": run_id, "tracking_uri": redact_uri(uri)}, indent=2))
    os.replace(tmp, path)


def train_record_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """MLflow metrics of one trainer record: ``{"step", "val": {...}}`` (validation) or
    ``{"step", "lr", <loss terms>, "grad_norm"}`` (a log point). Non-numbers and non-finite
    values (a skipped step's NaN) are left out."""
    if _VAL_KEY in record:
        val = dict(record[_VAL_KEY])
        by_policy = val.pop("by_policy", {}) or {}
        flat = {k: v for k, v in val.items()}
        for policy, figures in by_policy.items():
            flat.update({f"{VAL_POLICY_PREFIX}{policy}.{k}": v for k, v in figures.items()})
    else:
        flat = {f"{TRAIN_METRIC_PREFIX}{k}": v for k, v in record.items() if k != "step"}
    return {k: float(v) for k, v in flat.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def record_metrics(tracking_uri: str, run_id: str, record: Mapping[str, Any]) -> None:
    """Log one trainer record into the run at the record's step."""
    metrics = train_record_metrics(record)
    if metrics:
        log_metrics(tracking_uri, run_id, metrics, step=int(record.get("step", 0)))
