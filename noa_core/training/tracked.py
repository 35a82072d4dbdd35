"""A training run that logs into MLflow (rank 0 only; see ``noa_core.tracking.train_run``).

``fit_tracked`` opens the run (or continues the one recorded in OUT when resuming), logs each
``metrics.jsonl`` record at its step while ``Trainer.fit`` runs, then the final summary and
``curves.png`` (artifact path ``training``), and ends the run FINISHED; FAILED when training
raises, KILLED on an interrupt (the original error is re-raised either way). The run id goes into
the returned metrics, OUT/metrics.json and the checkpoint (``tracking.mlflow_run_id``), where
``noa register`` finds it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from noa_core.errors import TrackingError
from noa_core.tracking.constants import CHECKPOINT_TRACKING, RUN_ID_KEY
from noa_core.tracking.runs import RunStatus, end_run, log_artifact, log_metrics
from noa_core.tracking.train_run import record_metrics, start_train_run
from noa_core.training.curves import CURVES_FILE

if TYPE_CHECKING:
    from noa_core.training.trainer import Trainer

#: Artifact path of the training run's own files (``curves.png``).
TRAINING_ARTIFACTS = "training"

# Final figures of metrics.json logged at the last step (the val figures were logged as such).
SUMMARY_METRICS: tuple[str, ...] = ("steps", "skipped_nonfinite", "best_val_traj_mse",
                                    "train_seconds", "parameters")


def train_params(trainer: Trainer) -> dict[str, Any]:
    """Run parameters: the resolved config (flattened by ``open_run``) and the inputs' names."""
    return {**trainer.cfg.model_dump(mode="json"),
            "input": {"replay": trainer.replay.name, "tokenizer": trainer.tokenizer_dir.name,
                      "world_size": trainer.ctx.world}}


def fit_tracked(trainer: Trainer, tracking_uri: str, lineage: Mapping[str, str], *,
                resume: bool) -> dict[str, Any]:
    """``trainer.fit()`` inside an MLflow run (module docstring); returns fit's metrics plus
    ``mlflow_run_id``."""
    run_id = start_train_run(tracking_uri, trainer.out, config=trainer.cfg.model_dump(mode="json"),
                             params=train_params(trainer), lineage=lineage, resume=resume)
    trainer.checkpoint_extra[CHECKPOINT_TRACKING] = {RUN_ID_KEY: run_id}
    trainer.metrics_extra[RUN_ID_KEY] = run_id
    trainer.on_record = lambda record: record_metrics(tracking_uri, run_id, record)
    try:
        metrics = trainer.fit()
        summary = {k: float(metrics[k]) for k in SUMMARY_METRICS
                   if isinstance(metrics.get(k), (int, float))}
        log_metrics(tracking_uri, run_id, summary, step=int(metrics["steps"]))
        log_artifact(tracking_uri, run_id, trainer.out / CURVES_FILE, TRAINING_ARTIFACTS)
    except KeyboardInterrupt:
        _close_after_error(tracking_uri, run_id, "KILLED")
        raise
    except BaseException:
        _close_after_error(tracking_uri, run_id, "FAILED")
        raise
    finally:
        trainer.on_record = None
    end_run(tracking_uri, run_id, "FINISHED")
    return metrics


def _close_after_error(tracking_uri: str, run_id: str, status: RunStatus) -> None:
    """Mark the run; a tracking failure here is a warning, so the training error surfaces."""
    try:
        end_run(tracking_uri, run_id, status)
    except TrackingError as exc:
        warnings.warn(f"could not mark run {run_id} {status}: {exc}", stacklevel=2)
