"""ONNX export of one NOA step and its parity against ONNX Runtime.

The exported graph is ``StepModule``: inputs ``theta`` [B, P], ``context_embedding`` [B, E],
``u`` [B, C, H, W] and, for a model with a context encoder, ``context_field`` [B, 2C, H, W]
(float32); output ``u_next`` [B, C, H, W]. The batch axis is dynamic; H and W are fixed at the
traced grid (the AFNO mode layout depends on them). The AFNO filters are exported in their
rfft2 / irfft2 form (``fft_transforms``; in torch they use DFT matrices, the same map), which the
dynamo exporter turns into standard ``DFT`` nodes (opset 20) that ONNX Runtime runs on CPU.

A model with a context encoder also exports ``ContextModule`` beside it (``context_path``):
input ``context`` [B, K + 1, C, H, W] (the observed states u_0 … u_K, K dynamic in
1 … context_max), outputs ``context_embedding`` and ``context_field``, computed once per rollout
and fed to every step. For K = 0 both are zeros, which gives exactly the context-free step.

``check_parity`` compares one step; ``rollout_parity`` an H-step rollout (ONNX Runtime alone,
``noa_core.export.predict.rollout``, against the model's own ``rollout``). The stage
``noa export`` around them is ``noa_core.export.stage``; ``noa predict`` is
``noa_core.export.predict`` (torch-free: the session, the ONNX rollout loop and the encoder call
live there and serve this module too).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from noa_core.export.metadata import (
    CONTEXT_INPUT,
    CONTEXT_OUTPUTS,
    FIELD_INPUT,
    INPUT_NAMES,
    OUTPUT_NAME,
)
from noa_core.export.predict import encode_context, ort_session
from noa_core.export.predict import rollout as ort_rollout
from noa_core.models.afno import fft_transforms
from noa_core.models.backbone import ContextModule, NOABackbone, StepModule

__all__ = ["CONTEXT_INPUT", "CONTEXT_OUTPUTS", "FIELD_INPUT", "INPUT_NAMES", "OPSET",
           "OUTPUT_NAME", "check_parity", "context_path", "export_context_encoder", "export_step",
           "input_names", "rollout_parity", "run_onnx", "session",
           "step_inputs"]

OPSET = 20

StepBatch = Mapping[str, torch.Tensor] | Sequence[torch.Tensor]


def input_names(model: NOABackbone) -> tuple[str, ...]:
    """The exported step's input names: a context encoder adds ``context_field``."""
    return INPUT_NAMES + ((FIELD_INPUT,) if model.context_encoder is not None else ())


def context_path(onnx_path: str | Path) -> Path:
    """``model.onnx`` → ``model.context.onnx`` (the exported context encoder, beside it)."""
    p = Path(onnx_path)
    return p.with_name(f"{p.stem}.context.onnx")


def step_inputs(model: NOABackbone, theta: torch.Tensor, u: torch.Tensor,
                context: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The exported step's inputs for θ [B, P], u [B, C, H, W] and a context u_0 … u_K
    [B, K + 1, C, H, W] (None: K = 0, zero embedding and field)."""
    b = theta.shape[0]
    with torch.no_grad():
        emb, field = model.encode_context(context, b)
    feeds = {"theta": theta.float(), "context_embedding": emb.float(), "u": u.float()}
    if model.context_encoder is not None:
        zeros = u.new_zeros(b, model.context_encoder.field_channels, *u.shape[-2:])
        feeds[FIELD_INPUT] = (zeros if field is None else field).float()
    return feeds


def _as_args(batch: StepBatch, names: Sequence[str] = INPUT_NAMES) -> tuple[torch.Tensor, ...]:
    """The step inputs ``names`` as detached float32 CPU tensors."""
    if isinstance(batch, Mapping):
        missing = [n for n in names if n not in batch]
        if missing:
            raise ValueError(f"step inputs lack {missing}; expected keys {tuple(names)}")
        tensors = [batch[n] for n in names]
    else:
        tensors = list(batch)
    if len(tensors) != len(names):
        raise ValueError(f"expected {len(names)} step inputs {tuple(names)}, "
                         f"got {len(tensors)}")
    return tuple(t.detach().float().cpu() for t in tensors)


def _cpu_step(model: NOABackbone) -> StepModule:
    """An eval-mode CPU copy of the step: the caller's model keeps its device and mode."""
    return StepModule(copy.deepcopy(model)).cpu().eval()


def export_step(model: NOABackbone, path: str | Path, example_batch: StepBatch) -> Path:
    """Export one deterministic step to ``path`` (a single .onnx file); returns the path.

    ``example_batch``: ``step_inputs`` (or that tuple, in ``input_names`` order), batch size
    ≥ 2 so the exporter keeps the batch axis symbolic. An eval-mode CPU copy of the model is
    exported; the model itself is left as it was.
    """
    names = input_names(model)
    args = _as_args(example_batch, names)
    if args[0].shape[0] < 2:
        raise ValueError("trace with a batch of at least 2: size 1 would be specialised")
    batch = torch.export.Dim("batch", min=1, max=65536)
    step = _cpu_step(model)
    with fft_transforms(step):
        return _export(step, args, names, [OUTPUT_NAME], tuple({0: batch} for _ in names), path)


def export_context_encoder(model: NOABackbone, path: str | Path, context: torch.Tensor) -> Path:
    """Export the context encoder (``ContextModule``) to ``path``; ``context`` [B ≥ 2,
    K + 1, C, H, W] is the trace example (any K: the states axis is declared dynamic)."""
    k_max = model.cfg.context_max
    if context.ndim != 5 or context.shape[0] < 2 or not 2 <= context.shape[1] <= k_max + 1:
        raise ValueError(f"trace context has shape {tuple(context.shape)}: expected [B ≥ 2, "
                         f"K + 1, C, H, W] with 1 ≤ K ≤ {k_max}")
    module = ContextModule(copy.deepcopy(model)).cpu().eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    states = torch.export.Dim("states", min=2, max=k_max + 1)
    return _export(module, (context.detach().float().cpu(),), [CONTEXT_INPUT],
                   list(CONTEXT_OUTPUTS), ({0: batch, 1: states},), path)


def _export(module: torch.nn.Module, args: tuple[torch.Tensor, ...], inputs: Sequence[str],
            outputs: Sequence[str], dynamic: tuple[dict[int, Any], ...], path: str | Path
            ) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # torch-internal noise: a deprecation inside export, and the note that the inputs
        # share one batch axis (which is what we declare).
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used")
        program = torch.onnx.export(
            module, args, dynamo=True, opset_version=OPSET, input_names=list(inputs),
            output_names=list(outputs), dynamic_shapes=dynamic, external_data=False,
            verbose=False,
        )
        program.save(str(path), external_data=False)
    return path


def _graph_inputs(sess: Any) -> tuple[str, ...]:
    return tuple(i.name for i in sess.get_inputs())


def run_onnx(onnx_path: str | Path, inputs: StepBatch, threads: int = 1) -> torch.Tensor:
    """Run the exported step in ONNX Runtime (CPU, ``threads`` intra-op threads) → u_next."""
    sess = session(onnx_path, threads)
    names = _graph_inputs(sess)
    args = _as_args(inputs, names)
    feeds = {n: t.numpy() for n, t in zip(names, args, strict=True)}
    (out,) = sess.run([OUTPUT_NAME], feeds)
    return torch.from_numpy(out)


def check_parity(model: NOABackbone, onnx_path: str | Path, inputs: StepBatch,
                 threads: int = 1) -> float:
    """Largest per-sample error of ONNX Runtime against torch, relative to the field's spread.

    max over samples b of max|u_ort − u_torch|_b / std(u_torch)_b (the torch step in eval mode).
    """
    args = _as_args(inputs, input_names(model))
    with torch.no_grad():
        ref = _cpu_step(model)(*args)
    got = run_onnx(onnx_path, args, threads)
    err = (got - ref).abs().flatten(1).amax(dim=1)
    scale = ref.flatten(1).std(dim=1, correction=0).clamp_min(1e-12)
    return float((err / scale).max())


def session(onnx_path: str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session of an exported graph (``threads`` intra-op threads)."""
    return ort_session(onnx_path, threads)


def rollout_parity(model: NOABackbone, onnx_path: str | Path, theta: torch.Tensor,
                   u_start: torch.Tensor, steps: int, context: torch.Tensor | None = None,
                   threads: int = 1) -> dict[str, Any]:
    """ONNX Runtime against torch over an H-step rollout, per sample relative to its spread.

    err_b = max_{t,c,y,x} |u^ORT_bt − u^torch_bt| / std_{t,c,y,x}(u^torch_b) (torch: the
    model's own deterministic ``rollout`` on an eval-mode CPU copy, given ``context`` u_0 … u_K
    [B, K + 1, C, H, W]; ONNX Runtime: the exported encoder beside the step, then the step).
    Returns the batch size, steps, the per-sample errors, their max and whether every rollout
    stayed finite.
    """
    ref_model = copy.deepcopy(model).cpu().eval()
    theta, u_start = theta.detach().float().cpu(), u_start.detach().float().cpu()
    with torch.no_grad():
        ref = ref_model.rollout(theta, u_start, steps, context)
        # The context inputs of a K = 0 step (zero embedding and field); K > 0 replaces them.
        feeds = {k: v.numpy() for k, v in step_inputs(ref_model, theta, u_start).items()
                 if k not in ("theta", "u")}
    if context is not None and context.shape[1] >= 2:
        feeds["context_embedding"], feeds[FIELD_INPUT] = encode_context(
            session(context_path(onnx_path), threads), context.detach().float().cpu().numpy())
    got = ort_rollout(session(onnx_path, threads), theta.numpy(), u_start.numpy(), steps, feeds)
    ref_np = ref.numpy().astype(np.float64)
    err = np.abs(got.astype(np.float64) - ref_np).reshape(len(ref_np), -1).max(1)
    scale = np.maximum(ref_np.reshape(len(ref_np), -1).std(1), 1e-12)
    rel = err / scale
    finite = bool(np.isfinite(got).all() and np.isfinite(ref_np).all())
    return {"batch": int(theta.shape[0]), "steps": int(steps),
            "context": 0 if context is None else max(0, int(context.shape[1]) - 1),
            "max_rel_error": float(rel.max()) if finite else None,
            "per_sample_rel_error": [float(x) for x in rel],
            "max_abs_error": float(err.max()) if finite else None, "finite": finite}
