"""Stage ``noa export``: the checkpoint's single step as ONNX, with metadata and a parity report.

1. The step (θ [B, P], context_embedding [B, E], u [B, C, H, W][, context_field]) → u_next is
   exported at a traced batch of ``TRACE_BATCH`` with a dynamic batch axis (``export_step``,
   opset 20 ≥ 18); a model with a context encoder also gets ``<out stem>.context.onnx``
   (context u_0 … u_K → context_embedding, context_field; ``export_context_encoder``).
2. ``metadata_props`` receive the feature schema, the field normalisation, θ names, sizes and
   package versions (``noa_core.export.metadata``).
3. ONNX Runtime rolls the graph out for H steps at another batch size (``PARITY_BATCH``) beside
   the torch model's own rollout; the largest error per sample, relative to that sample's field
   standard deviation, must stay within ``PARITY_TOLERANCE``. The figures go to
   ``<out stem>.parity.json`` beside the model; a failed check writes the report and raises.

Parity inputs are the first test operators of a replay file when one is given (start state:
realization 0's state K, context: its states u_0 … u_K, K = ``training.context``), else seeded
smooth random fields at the model's field statistics (for a context model, a context of K such
fields ending at the start state). The context encoder is part of the parity rollout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from noa_core.atomic import write_atomic
from noa_core.config import NOAConfig
from noa_core.errors import EvaluationError
from noa_core.export.metadata import FORMAT, FORMAT_VERSION, package_versions, write_metadata
from noa_core.export.onnx_export import (
    CONTEXT_INPUT,
    CONTEXT_OUTPUTS,
    FIELD_INPUT,
    OPSET,
    OUTPUT_NAME,
    context_path,
    export_context_encoder,
    export_step,
    input_names,
    rollout_parity,
    step_inputs,
)
from noa_core.models.backbone import NOABackbone
from noa_core.models.registry import model_inputs
from noa_core.tracking.reachability import reachable_tracking_uri

ONNX_FILE = "model.onnx"  # the file name inside an exported-model directory (pipeline artifact)
TRACE_BATCH = 2
PARITY_BATCH = 3  # ≠ TRACE_BATCH: the dynamic batch axis is exercised
PARITY_TOLERANCE = 1e-4  # of each sample's field standard deviation


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the exporter's registry notes (e.g. torchvision ops it skips): not our graph's."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def parity_path(onnx_path: str | Path) -> Path:
    """``model.onnx`` → ``model.parity.json`` (beside it)."""
    p = Path(onnx_path)
    return p.with_name(f"{p.stem}.parity.json")


def synthetic_inputs(model: NOABackbone, grid: int, batch: int, seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """θ uniform in [0, 1]^P and smooth random fields at the model's field mean and std.

    Fields are white noise on a grid 4× coarser, upsampled bicubically: smooth like the
    operators' states, so an H-step rollout of a trained model stays in range.
    """
    g = torch.Generator().manual_seed(seed)
    c = model.channels
    theta = torch.rand(batch, model.theta_dim, generator=g)
    coarse = torch.randn(batch, c, max(2, grid // 4), max(2, grid // 4), generator=g)
    z = F.interpolate(coarse, size=(grid, grid), mode="bicubic", align_corners=False)
    u = model.field_mean[:, None, None] + model.field_std[:, None, None] * z
    return theta, u.float()


def synthetic_context(model: NOABackbone, u: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """A context u_0 … u_K [B, K + 1, C, H, W] ending at u: u plus smooth perturbations that
    shrink towards the start state (a trace or parity example, not physics)."""
    b, _, grid, _ = u.shape
    steps = [u + (k - i) * 0.05 * (synthetic_inputs(model, grid, b, seed + i)[1]
                                   - model.field_mean[:, None, None]) for i in range(k)]
    return torch.stack([*steps, u], dim=1)


def replay_inputs(replay: str | Path, batch: int, context: int,
                  shapes: tuple[int, tuple[int, int, int]]
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """θ, the start state (realization 0's state K) and the context u_0 … u_K (None for
    K = 0) of the first test operators of a replay file, repeated cyclically up to ``batch``
    rows; the file must hold the ``shapes`` (θ slots, [C, H, W]) the model takes."""
    from noa_core.data.hdf5_reader import DatasetReader

    with DatasetReader(replay) as r:
        r.require_inputs(*shapes)
        rows = r.indices_of_split("test")
        if rows.size == 0:
            raise EvaluationError(f"{replay}: metadata/split has no 'test' rows for the parity "
                                  "check")
        rows = np.resize(rows, batch)
        theta = r.theta[rows].astype(np.float32)
        ctx = None
        if context == 0:
            u = r.ics(rows)
        else:
            if not r.has_trajectories or (r.num_steps or 0) < context:
                raise EvaluationError(f"{replay}: outputs/fields must hold state K = {context} "
                                      "for the parity check")
            ctx = np.ascontiguousarray(r.trajectories(rows)[:, 0, :context + 1])
            u = ctx[:, -1]
    return (torch.from_numpy(theta), torch.from_numpy(np.ascontiguousarray(u)),
            None if ctx is None else torch.from_numpy(ctx))


def export_metadata(cfg: NOAConfig, meta: dict[str, Any], model: NOABackbone,
                    out_name: str = "model.onnx") -> dict[str, Any]:
    """The ``noa.*`` metadata_props of this checkpoint's step."""
    names = [n for n, _ in cfg.parameter_space.slots()]
    emb = cfg.model.theta_embed_dim
    c, g = cfg.dynamics.channels, cfg.dynamics.grid
    shapes = {"theta": ["B", len(names)], "context_embedding": ["B", emb],
              "u": ["B", c, g, g], FIELD_INPUT: ["B", 2 * c, g, g]}
    encoder = model.context_encoder is not None
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "opset": OPSET,
        "inputs": {n: {"shape": shapes[n], "dtype": "float32"} for n in input_names(model)} | {
            "note": "theta: the stored unit θ row (constant slots at 0.5); context_embedding"
                    + (" and context_field: the context encoder's outputs for the observed "
                       "states u_0 … u_K, zeros for no context (K = 0)" if encoder else
                       ": zeros (this model has no context encoder)")
                    + "; u: the state in field units"},
        "outputs": {OUTPUT_NAME: {"shape": shapes["u"], "dtype": "float32"}},
        "context_encoder": context_path(out_name).name if encoder else None,
        "context_encoder_io": {
            "inputs": {CONTEXT_INPUT: {"shape": ["B", "K+1", c, g, g], "dtype": "float32",
                                       "note": f"u_0 … u_K in field units, 1 ≤ K ≤ "
                                               f"{cfg.model.context_max}"}},
            "outputs": {n: {"shape": shapes[n], "dtype": "float32"}
                        for n in CONTEXT_OUTPUTS}} if encoder else None,
        "theta_names": names, "theta_dim": len(names), "channels": cfg.dynamics.channels,
        "grid": cfg.dynamics.grid, "horizon": cfg.dynamics.feature_horizon,
        "context": cfg.training.context, "context_max": cfg.model.context_max,
        "embed_dim": emb,
        "normalisation": {
            "field_mean": [float(x) for x in model.field_mean],
            "field_std": [float(x) for x in model.field_std],
            "rule": "u_next = u + σ_f·Δ((u − μ_f)/σ_f, cond), applied inside the graph; inputs "
                    "and outputs are in field units"},
        "feature_schema": meta.get("feature_schema"),
        "versions": package_versions(),
        "checkpoint": {"step": (meta.get("info") or {}).get("step"),
                       "tokenizer_weights_sha256": (meta.get("tokenizer") or {})
                       .get("weights_sha256")},
    }


def export_model(checkpoint_dir: str | Path, out: str | Path, *, replay: str | Path | None = None,
                 steps: int | None = None, parity_batch: int = PARITY_BATCH,
                 tolerance: float = PARITY_TOLERANCE, seed: int = 0,
                 tracking_uri: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """Export, annotate and parity-check a checkpoint's step (module docstring); returns the
    parity report (also written to ``parity_path(out)``)."""
    from noa_core.training.checkpoint import load_model_checkpoint

    if (tracking_uri is None) != (run_id is None):
        raise EvaluationError("--tracking-uri and --run-id go together: export logs into the "
                              "run that training opened")
    if tracking_uri is not None:
        tracking_uri = reachable_tracking_uri(tracking_uri)  # before the export's minute
    if parity_batch == TRACE_BATCH or parity_batch < 1:
        raise EvaluationError(f"parity batch {parity_batch}: expected ≥ 1 and ≠ the traced "
                              f"batch {TRACE_BATCH}")
    out = Path(out)
    if out.suffix != ".onnx":
        raise EvaluationError(f"{out}: the output file must end in .onnx")
    torch.manual_seed(seed)
    model, cfg, meta = load_model_checkpoint(checkpoint_dir)
    horizon = cfg.dynamics.feature_horizon if steps is None else int(steps)
    theta, u = synthetic_inputs(model, cfg.dynamics.grid, TRACE_BATCH, seed)
    k = cfg.training.context
    # The parity inputs are read first: a replay that cannot serve leaves no ONNX file behind.
    if replay is not None:
        p_theta, p_u, p_ctx = replay_inputs(replay, parity_batch, k, model_inputs(cfg))
        source = f"first test operators of {Path(replay).name}"
    else:
        p_theta, p_u = synthetic_inputs(model, cfg.dynamics.grid, parity_batch, seed + 1)
        p_ctx = synthetic_context(model, p_u, k, seed + 200) if k > 0 else None
        source = "seeded smooth random fields at the field statistics"
    started = time.perf_counter()
    props = export_metadata(cfg, meta, model, out.name)
    if model.context_encoder is not None:
        trace_ctx = synthetic_context(model, u, cfg.model.context_max, seed + 100)
        enc, enc_tmp = context_path(out), context_path(out).with_name(
            f".{context_path(out).name}.tmp")
        with _quiet_exporter():
            export_context_encoder(model, enc_tmp, trace_ctx)
        write_metadata(enc_tmp, props | {"graph": "context_encoder"})
        os.replace(enc_tmp, enc)
    tmp = out.with_name(f".{out.name}.tmp")
    with _quiet_exporter():
        export_step(model, tmp, step_inputs(model, theta, u))
    write_metadata(tmp, props | {"graph": "step"})
    os.replace(tmp, out)
    export_s = time.perf_counter() - started
    parity = rollout_parity(model, out, p_theta, p_u, horizon, p_ctx)
    report = {"onnx": out.name, "opset": OPSET, "traced_batch": TRACE_BATCH,
              "inputs": source, "tolerance": tolerance, **parity,
              "passed": parity["finite"] and parity["max_rel_error"] is not None
              and parity["max_rel_error"] <= tolerance,
              "export_seconds": round(export_s, 2), "versions": package_versions()}
    report_path = parity_path(out)
    write_atomic(report_path, json.dumps(report, indent=2))
    if tracking_uri is not None and run_id is not None:
        from noa_core.tracking import log_artifact, log_metrics

        if report["max_rel_error"] is not None:
            log_metrics(tracking_uri, run_id,
                        {"export.parity_max_rel_error": report["max_rel_error"]})
        log_artifact(tracking_uri, run_id, out, "export")
        if model.context_encoder is not None:
            log_artifact(tracking_uri, run_id, context_path(out), "export")
        log_artifact(tracking_uri, run_id, report_path, "export")
    if not report["passed"]:
        raise EvaluationError(
            f"{out}: ONNX Runtime differs from torch over {horizon} steps at batch "
            f"{parity_batch}: max error {report['max_rel_error']} of the field std > "
            f"{tolerance} (see {report_path})")
    return report
