"""``metadata_props`` of the exported step: what a consumer of ``model.onnx`` needs without torch.

Keys (all strings; JSON where structured):

- ``noa.format`` = ``noa-step-onnx``, ``noa.format_version``;
- ``noa.inputs`` / ``noa.outputs``: names, shapes and meaning of the graph's tensors;
- ``noa.theta_names`` (P slot names, vector order), ``noa.theta_dim``, ``noa.channels``,
  ``noa.grid``, ``noa.horizon`` (H), ``noa.context`` (K the model was trained with: the start
  state of a rollout is state K), ``noa.context_max``, ``noa.embed_dim`` (E);
- ``noa.context_encoder``: the file name of the exported context encoder beside the step
  (``model.context.onnx``), or null for a model without one; the encoder file carries the
  same keys with ``noa.graph`` = ``context_encoder`` (the step's is ``step``);
- ``noa.normalisation``: the dataset-level field mean and std [C] the graph applies inside;
- ``noa.feature_schema``: the feature schema JSON of the tokenizer the model was trained against;
- ``noa.versions``: noa-core, torch, onnx, onnxruntime, onnxscript; ``noa.opset``;
- ``noa.checkpoint``: the training step and tokenizer weights sha256.

This module imports no torch: ``noa predict`` reads the metadata with onnx alone.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from noa_core.errors import EvaluationError

# The graphs' tensor names: one source for the exporter and for `noa predict` (which loads no
# torch, so they live here and not in onnx_export).
INPUT_NAMES: tuple[str, str, str] = ("theta", "context_embedding", "u")
FIELD_INPUT = "context_field"  # the fourth step input of a model with a context encoder
CONTEXT_INPUT = "context"
CONTEXT_OUTPUTS: tuple[str, str] = ("context_embedding", FIELD_INPUT)
OUTPUT_NAME = "u_next"

FORMAT = "noa-step-onnx"
FORMAT_VERSION = 1
PREFIX = "noa."
REQUIRED = ("format", "format_version", "theta_dim", "channels", "grid", "horizon", "context",
            "embed_dim", "normalisation")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that made (and run) the graph."""
    out = {}
    for name in ("noa-core", "torch", "onnx", "onnxruntime", "onnxscript"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def encode(props: dict[str, Any]) -> dict[str, str]:
    """``{"noa.key": str}``: strings stay, everything else becomes JSON."""
    return {f"{PREFIX}{k}": v if isinstance(v, str) else json.dumps(v, sort_keys=True)
            for k, v in props.items()}


def write_metadata(onnx_path: str | Path, props: dict[str, Any]) -> None:
    """Add ``props`` to the model's ``metadata_props`` (rewriting the file in place)."""
    import onnx

    path = Path(onnx_path)
    model = onnx.load(str(path))
    existing = {p.key: p.value for p in model.metadata_props}
    existing.update(encode(props))
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, existing)
    tmp = path.with_name(f".{path.name}.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)


def read_metadata(onnx_path: str | Path) -> dict[str, Any]:
    """The ``noa.*`` metadata of an exported step (JSON values decoded); a graph that lacks the
    keys ``noa predict`` needs is an ``EvaluationError`` naming them."""
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise EvaluationError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for a non-ONNX file
        raise EvaluationError(f"{path}: not a readable ONNX model ({exc})") from None
    out: dict[str, Any] = {}
    for p in model.metadata_props:
        if not p.key.startswith(PREFIX):
            continue
        try:
            out[p.key[len(PREFIX):]] = json.loads(p.value)
        except ValueError:
            out[p.key[len(PREFIX):]] = p.value
    missing = [k for k in REQUIRED if k not in out]
    if missing or out.get("format") != FORMAT:
        raise EvaluationError(
            f"{path}: metadata_props lack {', '.join(PREFIX + k for k in missing) or 'nothing'}"
            f"{'' if out.get('format') == FORMAT else f' and noa.format is not {FORMAT!r}'}: "
            "not a step exported by `noa export`")
    return out
