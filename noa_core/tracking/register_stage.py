"""Stage ``noa register``: a trained checkpoint and its exported step become a model version.

``register_checkpoint`` (the CLI and the KFP ``register`` component call it with the CLI's
parameter names) loads the checkpoint (``weights_only``), checks that the ONNX file is this
checkpoint's step (one step on the input example, ONNX Runtime against torch, within export's
parity tolerance), and calls ``register_model``: the ONNX flavour becomes a new version aliased
``challenger``, the PyTorch step (``StepModule``) is logged beside it, both into the training run.

Which run (first that applies):
1. ``run_id`` as given;
2. ``tracking.mlflow_run_id`` in the checkpoint's ``config.yaml`` (``noa train --tracking-uri``
   writes it);
3. ``mlflow_run_id`` in ``metrics.json`` of the checkpoint directory's parent (the train OUT);
otherwise a ``TrackingError`` says how to supply one.

Lineage (each key of ``LINEAGE_TAGS``; later sources win):
1. ``LINEAGE_UNKNOWN`` for every key;
2. what training recorded in the checkpoint (``lineage``: dataset and tokenizer sha256, git
   commit, pipeline run id); the tokenizer sha256 falls back to the checkpoint's
   ``tokenizer.weights_sha256`` (the same quantity: sha256 of the tokenizer's ``weights.pt``);
3. ``criteria_hash``: sha256 of the resolved criteria of the file ``criteria`` names (as
   ``gate.json``'s ``criteria_sha256``), or ``criteria`` itself when it is 64 hex digits; with
   no ``criteria``, ``criteria_sha256`` of the run's ``evaluation/gate.json`` when evaluate
   logged one;
4. ``pipeline_run_id`` and ``image_digest`` when given;
5. ``lineage`` entries (the caller's word wins; an empty value, a pipeline parameter left
   unset, counts as not given).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from noa_core.errors import TrackingError
from noa_core.tracking.constants import (
    ALIAS_CHALLENGER,
    CHECKPOINT_LINEAGE,
    CHECKPOINT_TRACKING,
    LINEAGE_TAGS,
    LINEAGE_UNKNOWN,
    RUN_ID_KEY,
)
from noa_core.tracking.lineage import is_sha256
from noa_core.tracking.safety import require_tracking_uri

EXAMPLE_SEED = 0  # seeds the input example's fields
EVALUATION_GATE = "evaluation/gate.json"  # where ``evaluate`` logs its gate in the run
TRAIN_METRICS_FILE = "metrics.json"  # ``noa train``'s OUT/metrics.json


def register_checkpoint(checkpoint_dir: str | Path, onnx_path: str | Path, model_name: str,
                        tracking_uri: str | None, *, run_id: str | None = None,
                        pipeline_run_id: str | None = None, image_digest: str | None = None,
                        criteria: str | Path | None = None,
                        lineage: dict[str, str] | None = None) -> dict[str, Any]:
    """Register ``onnx_path`` (exported from ``checkpoint_dir``) as a new version of
    ``model_name`` aliased ``challenger`` (module docstring for the run and lineage rules).

    Returns ``{"model_name", "version", "run_id", "alias", "model_uri", "lineage"}``.
    """
    from noa_core.models.backbone import StepModule
    from noa_core.tracking.registry import register_model
    from noa_core.training.checkpoint import load_model_checkpoint

    uri = require_tracking_uri(tracking_uri)
    onnx_path, checkpoint_dir = Path(onnx_path), Path(checkpoint_dir)
    if not onnx_path.is_file():
        raise TrackingError(f"{onnx_path}: no such ONNX file to register (run `noa export` "
                            f"first)")
    model, cfg, meta = load_model_checkpoint(checkpoint_dir)
    run = resolve_run_id(checkpoint_dir, meta, run_id)
    example = input_example(model, cfg.dynamics.grid)
    check_onnx_matches(model, onnx_path, example, checkpoint_dir)
    values = resolve_lineage(meta, uri, run, pipeline_run_id=pipeline_run_id,
                             image_digest=image_digest, criteria=criteria, lineage=lineage)
    encoder = None
    if model.context_encoder is not None:
        from noa_core.export.onnx_export import context_path

        encoder = context_path(onnx_path)
    version = register_model(uri, model_name, run, onnx_path, StepModule(model).eval(), example,
                             values, context_encoder=encoder)
    return {"model_name": model_name, "version": version, "run_id": run,
            "alias": ALIAS_CHALLENGER, "model_uri": f"models:/{model_name}/{version}",
            "lineage": values}


def resolve_run_id(checkpoint_dir: Path, meta: dict[str, Any], run_id: str | None) -> str:
    """The run to register into (module docstring: given, checkpoint, train OUT/metrics.json)."""
    if run_id:
        return run_id
    recorded = (meta.get(CHECKPOINT_TRACKING) or {}).get(RUN_ID_KEY)
    if isinstance(recorded, str) and recorded:
        return recorded
    metrics = checkpoint_dir.resolve().parent / TRAIN_METRICS_FILE
    try:
        found = json.loads(metrics.read_text(encoding="utf-8")).get(RUN_ID_KEY)
    except (OSError, ValueError, AttributeError):
        found = None
    if isinstance(found, str) and found:
        return found
    raise TrackingError(
        f"{checkpoint_dir}: no MLflow run recorded (neither config.yaml "
        f"{CHECKPOINT_TRACKING}.{RUN_ID_KEY} nor {metrics.name} beside it): train with "
        f"--tracking-uri, or pass --run-id")


def input_example(model: Any, grid: int) -> dict[str, np.ndarray]:
    """The exported step's inputs at the traced batch (2): θ [2, P] uniform in [0, 1], zero
    context embedding [2, E], seeded smooth fields u [2, C, grid, grid] at the model's field
    statistics (field units) and, for a model with a context encoder, a zero context field
    [2, 2C, grid, grid]; float32, in the graph's input order."""
    from noa_core.export.onnx_export import step_inputs
    from noa_core.export.stage import TRACE_BATCH, synthetic_inputs

    theta, u = synthetic_inputs(model, grid, TRACE_BATCH, EXAMPLE_SEED)
    return {k: v.numpy() for k, v in step_inputs(model, theta, u).items()}


def check_onnx_matches(model: Any, onnx_path: Path, example: dict[str, np.ndarray],
                       checkpoint_dir: Path) -> float:
    """One step of ``onnx_path`` (ONNX Runtime) against the checkpoint's torch step on the
    example; returns the largest error relative to each sample's field std, refused above
    export's ``PARITY_TOLERANCE``."""
    import torch

    from noa_core.export.onnx_export import check_parity
    from noa_core.export.stage import PARITY_TOLERANCE

    try:
        err = check_parity(model, onnx_path, {k: torch.from_numpy(v) for k, v in example.items()})
    except Exception as exc:  # ONNX Runtime's own error types for a foreign graph
        raise TrackingError(f"{onnx_path}: ONNX Runtime cannot run this checkpoint's step "
                            f"inputs ({str(exc).splitlines()[0]})") from None
    if not err <= PARITY_TOLERANCE:
        raise TrackingError(f"{onnx_path}: not the step of {checkpoint_dir} (one step differs by "
                            f"{err:.3g} of the field std > {PARITY_TOLERANCE}); export it again")
    return err


def resolve_lineage(meta: dict[str, Any], tracking_uri: str, run_id: str, *,
                    pipeline_run_id: str | None, image_digest: str | None,
                    criteria: str | Path | None,
                    lineage: dict[str, str] | None) -> dict[str, str]:
    """Every ``LINEAGE_TAGS`` key with its value (module docstring for the order)."""
    values = {k: LINEAGE_UNKNOWN for k in LINEAGE_TAGS}
    recorded = meta.get(CHECKPOINT_LINEAGE) or {}
    weights = (meta.get("tokenizer") or {}).get("weights_sha256")
    if is_sha256(weights):
        values["tokenizer_sha256"] = weights
    values.update({k: str(v) for k, v in recorded.items()
                   if k in LINEAGE_TAGS and v and v != LINEAGE_UNKNOWN})
    values["criteria_hash"] = criteria_hash(criteria, tracking_uri, run_id)
    values.update({k: v for k, v in (("pipeline_run_id", pipeline_run_id),
                                     ("image_digest", image_digest)) if v})
    values.update({k: v for k, v in (lineage or {}).items() if v or k not in LINEAGE_TAGS})
    return values


def criteria_hash(criteria: str | Path | None, tracking_uri: str, run_id: str) -> str:
    """sha256 of the resolved criteria (module docstring, item 3), or ``LINEAGE_UNKNOWN``."""
    if criteria is None:
        return _gate_criteria_hash(tracking_uri, run_id) or LINEAGE_UNKNOWN
    text = str(criteria).strip()
    if is_sha256(text):
        return text
    from noa_core.evaluation.criteria import load_criteria

    return load_criteria(text).digest()


def _gate_criteria_hash(tracking_uri: str, run_id: str) -> str | None:
    """``criteria_sha256`` of the run's ``evaluation/gate.json``; None when evaluate logged none."""
    from noa_core.tracking.client import client_for, tracking_errors

    client = client_for(tracking_uri)
    with tracking_errors(tracking_uri, f"read {EVALUATION_GATE} of run {run_id}"):
        names = {a.path for a in client.list_artifacts(run_id, Path(EVALUATION_GATE).parent
                                                       .as_posix())}
        if EVALUATION_GATE not in names:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, EVALUATION_GATE, tmp)
            try:
                doc = json.loads(Path(local).read_text(encoding="utf-8"))
            except ValueError as exc:
                raise TrackingError(f"run {run_id}: {EVALUATION_GATE} is not JSON ({exc})"
                                    ) from None
    found = doc.get("criteria_sha256") if isinstance(doc, dict) else None
    return found if is_sha256(found) else None
