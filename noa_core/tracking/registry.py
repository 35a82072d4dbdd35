"""Model registry: register a version as ``challenger``, promote it to ``champion`` or reject it.

- ``register_model`` logs the model into the pipeline's run twice: as ONNX (the registered,
  served flavour: ``mlflow.pyfunc`` runs it in ONNX Runtime) and as PyTorch (``pt2``, a
  pickle-free ``torch.export`` archive), each with a signature and explicit pip requirements. The
  ONNX model becomes a new version with alias ``challenger`` and lineage tags.
- ``promote`` tags the version (decision, reason, pipeline run, previous champion) and then moves
  ``champion`` to it: whoever sees the alias on a version also sees why it is there. A version
  that was rejected is never promoted.
- ``reject`` tags the version with its failed criteria and leaves ``champion`` where it is.

MLflow has no compare-and-set for aliases: two promotions racing end with the alias on the one
that wrote last, and both versions carry their promotion tags.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from noa_core.data.manifest import sha256_file
from noa_core.errors import TrackingError
from noa_core.tracking.client import client_for, error_code, fluent_uri, tracking_errors
from noa_core.tracking.constants import (
    ALIAS_CHALLENGER,
    ALIAS_CHAMPION,
    CONTEXT_ENCODER_ARTIFACT_DIR,
    DECISION_PROMOTED,
    DECISION_REJECTED,
    DEFAULT_PROMOTION_REASON,
    LINEAGE_TAGS,
    LINEAGE_UNKNOWN,
    NO_VERSION,
    ONNX_MODEL_NAME,
    PYTORCH_MODEL_NAME,
    TAG_CONTEXT_ENCODER,
    TAG_CONTEXT_ENCODER_SHA256,
    TAG_DECISION,
    TAG_DECISION_PIPELINE_RUN,
    TAG_DECISION_REASON,
    TAG_FAILED_CRITERIA,
    TAG_GATE_PREFIX,
    TAG_MODEL_VERSION,
    TAG_ONNX_SHA256,
    TAG_PREVIOUS_CHAMPION,
    TAG_PYTORCH_MODEL_URI,
)
from noa_core.tracking.gate import Gate, parse_gate
from noa_core.tracking.safety import check_no_credentials, require_tracking_uri

if TYPE_CHECKING:
    from torch import nn

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
ALIAS_ATTEMPTS = 5  # tries of one alias write against a concurrent writer of the same alias


def set_alias(client: Any, model_name: str, alias: str, version: str) -> None:
    """Point ``alias`` at ``version``. Two writers of one alias at the same moment can make the
    store refuse one with a uniqueness violation (MLflow has no compare-and-set; seen with two
    racing promotions on a sqlite-backed server); the write is idempotent, so it is retried and
    the last writer wins, as documented above."""
    from mlflow.exceptions import MlflowException

    for attempt in range(1, ALIAS_ATTEMPTS + 1):
        try:
            client.set_registered_model_alias(model_name, alias, version)
            return
        except MlflowException as exc:
            if attempt == ALIAS_ATTEMPTS or "constraint" not in str(exc).lower():
                raise
            time.sleep(0.05 * attempt)  # let the other writer's transaction finish


# ------------------------------------------------------------------------------------ register

def register_model(tracking_uri: str | None, model_name: str, run_id: str, onnx_path: Path,
                   torch_model: nn.Module | None, input_example: Mapping[str, np.ndarray],
                   lineage: Mapping[str, str], context_encoder: Path | None = None) -> str:
    """Log the model into run ``run_id``, register the ONNX flavour, alias it ``challenger``.

    ``context_encoder``: the exported context encoder graph, logged into the run beside the
    model (``onnx_context_encoder/``) and named, with its sha256, in the version's tags.

    ``input_example`` maps the ONNX model's input names, in the order of ``torch_model``'s
    positional arguments, to example arrays (a batch of at least 2 keeps the batch dimension
    dynamic in the PyTorch export). ``lineage`` holds exactly the keys of ``LINEAGE_TAGS``.
    ``torch_model`` must be in eval mode. Returns the new version number as a string.
    """
    uri = require_tracking_uri(tracking_uri)
    tags = lineage_tags(lineage)
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise TrackingError(f"{onnx_path}: no such ONNX file to register")
    if torch_model is not None and torch_model.training:
        raise TrackingError(f"{model_name}: put the PyTorch model in eval mode before registering")
    inputs = {k: np.ascontiguousarray(v) for k, v in input_example.items()}
    onnx_outputs = _onnx_predict(onnx_path, inputs)
    with tracking_errors(uri, f"register {model_name} from run {run_id}"):
        extra = {}
        if context_encoder is not None:
            extra = _log_context_encoder(uri, run_id, Path(context_encoder))
        version_id = _log_and_register(uri, model_name, run_id, onnx_path, torch_model, inputs,
                                       onnx_outputs, {**tags, **extra})
        client = client_for(uri)
        set_alias(client, model_name, ALIAS_CHALLENGER, version_id)
        for key, value in {**tags, TAG_MODEL_VERSION: f"{model_name}/{version_id}"}.items():
            client.set_tag(run_id, key, value)
    return version_id


def lineage_tags(lineage: Mapping[str, str]) -> dict[str, str]:
    """Validate ``lineage`` (exactly the keys of ``LINEAGE_TAGS``, none empty; ``*_sha256``
    values 64 lowercase hex digits or ``LINEAGE_UNKNOWN``) and map it to tag keys."""
    missing = [k for k in LINEAGE_TAGS if not lineage.get(k)]
    unknown = [k for k in lineage if k not in LINEAGE_TAGS]
    if missing or unknown:
        raise TrackingError(f"lineage: missing {missing or 'nothing'}, unknown {unknown or 'none'}"
                            f"; expected exactly {list(LINEAGE_TAGS)}")
    for key, value in lineage.items():
        if not isinstance(value, str):
            raise TrackingError(f"lineage {key!r}: expected a string, got {value!r}")
        if key.endswith("_sha256") and not (_HEX64.match(value) or value == LINEAGE_UNKNOWN):
            raise TrackingError(f"lineage {key!r}: expected 64 lowercase hex digits (or "
                                f"{LINEAGE_UNKNOWN!r}), got {value!r}")
    check_no_credentials(dict(lineage), "lineage")
    return {LINEAGE_TAGS[k]: v for k, v in lineage.items()}


def _onnx_predict(onnx_path: Path, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the ONNX model once on the example (CPU), naming the outputs as the graph does."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, dict(inputs)), strict=True))
    except Exception as exc:  # ONNX Runtime raises its own types for a bad graph or feed
        raise TrackingError(f"{onnx_path}: ONNX Runtime cannot run the input example "
                            f"({str(exc).splitlines()[0]})") from None


def _log_context_encoder(uri: str, run_id: str, path: Path) -> dict[str, str]:
    """Log the encoder graph into the run; the version tags that point at it."""
    if not path.is_file():
        raise TrackingError(f"{path}: no such context encoder to register beside the model")
    client_for(uri).log_artifact(run_id, str(path), CONTEXT_ENCODER_ARTIFACT_DIR)
    return {TAG_CONTEXT_ENCODER: f"{CONTEXT_ENCODER_ARTIFACT_DIR}/{path.name}",
            TAG_CONTEXT_ENCODER_SHA256: sha256_file(path)}


def _log_and_register(uri: str, model_name: str, run_id: str, onnx_path: Path,
                      torch_model: nn.Module | None, inputs: Mapping[str, np.ndarray],
                      onnx_outputs: Mapping[str, np.ndarray], tags: Mapping[str, str]) -> str:
    """Log the ONNX and (if given) PyTorch flavours into the run and register the ONNX model
    as a new version carrying ``tags``; return the version number."""
    import mlflow
    import onnx
    from mlflow.models import infer_signature

    version_tags = {**tags, TAG_ONNX_SHA256: sha256_file(onnx_path)}
    with fluent_uri(uri):
        with mlflow.start_run(run_id=run_id):
            onnx_info = mlflow.onnx.log_model(
                onnx.load(str(onnx_path)), name=ONNX_MODEL_NAME,
                signature=infer_signature(dict(inputs), dict(onnx_outputs)),
                input_example=dict(inputs),
                pip_requirements=_pinned("onnx", "onnxruntime", "numpy"),
                save_as_external_data=False)
            if torch_model is not None:
                version_tags[TAG_PYTORCH_MODEL_URI] = _log_pytorch(torch_model, inputs)
        mv = mlflow.register_model(onnx_info.model_uri, model_name, tags=version_tags)
    return str(mv.version)


def _log_pytorch(torch_model: nn.Module, inputs: Mapping[str, np.ndarray]) -> str:
    import mlflow
    import torch
    from mlflow.models import infer_signature

    example = tuple(inputs.values())
    with torch.no_grad():
        out = torch_model(*(torch.from_numpy(a) for a in example))
    outputs = out.numpy() if isinstance(out, torch.Tensor) else {
        f"output_{i}": t.numpy() for i, t in enumerate(out)}
    info = mlflow.pytorch.log_model(
        torch_model, name=PYTORCH_MODEL_NAME, serialization_format="pt2",
        signature=infer_signature(dict(inputs), outputs), input_example=example,
        pip_requirements=_pinned("torch", "numpy"))
    return str(info.model_uri)


def _pinned(*packages: str) -> list[str]:
    """``name==version`` of the installed packages, without local labels (``2.13.0+cpu``)."""
    pins = []
    for name in packages:
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            raise TrackingError(f"cannot pin {name!r}: it is not installed") from None
    return pins


# ------------------------------------------------------------------------- promote / reject

def promote(tracking_uri: str | None, model_name: str, version: str | int,
            reason: str = DEFAULT_PROMOTION_REASON,
            pipeline_run_id: str | None = None) -> str | None:
    """Move ``champion`` to ``version``; return the version that held it before (or None)."""
    uri = require_tracking_uri(tracking_uri)
    v = _version_text(version)
    check_no_credentials({"reason": reason, "pipeline_run_id": pipeline_run_id or ""}, "tag")
    client = client_for(uri)
    with tracking_errors(uri, f"promote {model_name} version {v}"):
        mv = _get_version(client, model_name, v)
        if mv.tags.get(TAG_DECISION) == DECISION_REJECTED:
            raise TrackingError(f"{model_name} version {v} was rejected by its gate (failed: "
                                f"{mv.tags.get(TAG_FAILED_CRITERIA, '?')}); refusing to promote")
        previous = _alias_version(client, model_name, ALIAS_CHAMPION)
        tags = {TAG_DECISION: DECISION_PROMOTED, TAG_DECISION_REASON: reason,
                TAG_PREVIOUS_CHAMPION: previous or NO_VERSION}
        if pipeline_run_id:
            tags[TAG_DECISION_PIPELINE_RUN] = pipeline_run_id
        for key, value in tags.items():  # tags first: the alias never points at an untagged one
            client.set_model_version_tag(model_name, v, key, value)
        set_alias(client, model_name, ALIAS_CHAMPION, v)
        if mv.run_id:
            client.set_tag(mv.run_id, TAG_DECISION, DECISION_PROMOTED)
    return previous


def reject(tracking_uri: str | None, model_name: str, version: str | int,
           gate: Mapping[str, Any] | Gate, pipeline_run_id: str | None = None) -> list[str]:
    """Tag ``version`` with the failed criteria of ``gate``; ``champion`` is not touched.

    Returns the names of the failed criteria. Refused: a gate that passed, and the version that
    is champion now (rejecting it would leave a failed model serving).
    """
    uri = require_tracking_uri(tracking_uri)
    v = _version_text(version)
    decision = gate if isinstance(gate, Gate) else parse_gate(gate)
    if decision.passed:
        raise TrackingError(f"{model_name} version {v}: the gate passed; refusing to reject "
                            f"(promote it instead)")
    failed = decision.failed
    tags = {TAG_DECISION: DECISION_REJECTED,
            TAG_FAILED_CRITERIA: ",".join(c.name for c in failed),
            **{f"{TAG_GATE_PREFIX}{c.name}": c.describe() for c in failed}}
    if pipeline_run_id:
        tags[TAG_DECISION_PIPELINE_RUN] = pipeline_run_id
    check_no_credentials(tags, "tag")
    client = client_for(uri)
    with tracking_errors(uri, f"reject {model_name} version {v}"):
        mv = _get_version(client, model_name, v)
        if _alias_version(client, model_name, ALIAS_CHAMPION) == v:
            raise TrackingError(f"{model_name} version {v} is the champion; promote another "
                                f"version before rejecting it")
        for key, value in tags.items():
            client.set_model_version_tag(model_name, v, key, value)
        if mv.run_id:
            client.set_tag(mv.run_id, TAG_DECISION, DECISION_REJECTED)
    return [c.name for c in failed]


# ---------------------------------------------------------------------------------- queries

def champion_version(tracking_uri: str | None, model_name: str) -> str | None:
    """The version holding ``champion``, or None (no alias yet, or no such model)."""
    uri = require_tracking_uri(tracking_uri)
    with tracking_errors(uri, f"read the champion of {model_name}"):
        return _alias_version(client_for(uri), model_name, ALIAS_CHAMPION)


def champion_metrics(tracking_uri: str | None, model_name: str) -> dict[str, float] | None:
    """The metrics of the run that produced the champion version (for the gate's champion
    rule), or None when there is no champion yet."""
    uri = require_tracking_uri(tracking_uri)
    client = client_for(uri)
    with tracking_errors(uri, f"read the champion metrics of {model_name}"):
        v = _alias_version(client, model_name, ALIAS_CHAMPION)
        if v is None:
            return None
        mv = client.get_model_version(model_name, v)
        if not mv.run_id:
            raise TrackingError(f"{model_name} version {v} (champion) records no run")
        return dict(client.get_run(mv.run_id).data.metrics)


def _version_text(version: str | int) -> str:
    text = str(version).strip()
    if not text.isdigit() or int(text) < 1:
        raise TrackingError(f"model version {version!r}: expected a positive integer")
    return str(int(text))


def _get_version(client: Any, model_name: str, v: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(model_name, v)
    except MlflowException as exc:
        if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            raise TrackingError(f"{model_name} version {v}: no such model version") from None
        raise


def _alias_version(client: Any, model_name: str, alias: str) -> str | None:
    """The version ``alias`` points at; None if the alias or the model does not exist. (Read
    from the registered model: a missing alias is an error with a different code per store.)"""
    from mlflow.exceptions import MlflowException

    try:
        aliases = client.get_registered_model(model_name).aliases
    except MlflowException as exc:
        if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return str(aliases[alias]) if alias in aliases else None
