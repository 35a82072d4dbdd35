"""ONNX export of one NOA step and its parity against ONNX Runtime.

The exported graph is ``StepModule``: inputs ``theta`` [B, P], ``context_embedding`` [B, E] and
``u`` [B, C, H, W] (float32), output ``u_next`` [B, C, H, W]. The batch axis is dynamic; H and W
are fixed at the traced grid (the AFNO mode layout depends on them). The dynamo exporter turns
rfft2 / irfft2 into standard ``DFT`` nodes (opset 20), which ONNX Runtime runs on CPU.

``check_parity`` compares one step; ``rollout_parity`` an H-step rollout (ONNX Runtime alone,
``onnx_rollout``, against the model's own ``rollout``). The stage ``noa export`` around them is
``noa_core.export.stage``; ``noa predict`` is ``noa_core.export.predict``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from noa_core.models.backbone import NOABackbone, StepModule

INPUT_NAMES: tuple[str, str, str] = ("theta", "context_embedding", "u")
OUTPUT_NAME = "u_next"
OPSET = 20

StepBatch = Mapping[str, torch.Tensor] | Sequence[torch.Tensor]


def step_inputs(model: NOABackbone, theta: torch.Tensor, u: torch.Tensor,
                context: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The exported graph's inputs for θ [B, P], u [B, C, H, W] and a context [B, K, C, H, W]."""
    with torch.no_grad():
        emb = model.context_embedding(context, theta.shape[0])
    return {"theta": theta.float(), "context_embedding": emb.float(), "u": u.float()}


def _as_args(batch: StepBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(theta, context_embedding, u) as detached float32 CPU tensors."""
    if isinstance(batch, Mapping):
        missing = [n for n in INPUT_NAMES if n not in batch]
        if missing:
            raise ValueError(f"step inputs lack {missing}; expected keys {INPUT_NAMES}")
        tensors = [batch[n] for n in INPUT_NAMES]
    else:
        tensors = list(batch)
    if len(tensors) != len(INPUT_NAMES):
        raise ValueError(f"expected {len(INPUT_NAMES)} step inputs {INPUT_NAMES}, "
                         f"got {len(tensors)}")
    theta, emb, u = (t.detach().float().cpu() for t in tensors)
    return theta, emb, u


def _cpu_step(model: NOABackbone) -> StepModule:
    """An eval-mode CPU copy of the step: the caller's model keeps its device and mode."""
    return StepModule(copy.deepcopy(model)).cpu().eval()


def export_step(model: NOABackbone, path: str | Path, example_batch: StepBatch) -> Path:
    """Export one deterministic step to ``path`` (a single .onnx file); returns the path.

    ``example_batch``: {theta, context_embedding, u} (or that tuple), batch size ≥ 2 so the
    exporter keeps the batch axis symbolic. An eval-mode CPU copy of the model is exported; the
    model itself is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = _as_args(example_batch)
    if args[0].shape[0] < 2:
        raise ValueError("trace with a batch of at least 2: size 1 would be specialised")
    module = _cpu_step(model)
    batch = torch.export.Dim("batch", min=1, max=65536)
    with warnings.catch_warnings():
        # torch-internal noise: a deprecation inside export, and the note that the three
        # inputs share one batch axis (which is what we declare).
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used")
        program = torch.onnx.export(
            module, args, dynamo=True, opset_version=OPSET, input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch}, {0: batch}, {0: batch}),
            external_data=False, verbose=False,
        )
        program.save(str(path), external_data=False)
    return path


def _session(onnx_path: str | Path, threads: int):  # onnxruntime is imported lazily
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # 0: ORT's default (all cores)
    # ORT's buffer re-use inside DFT can fail on symbolic shapes; off, it is always safe.
    opts.enable_mem_reuse = False
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


def run_onnx(onnx_path: str | Path, inputs: StepBatch, threads: int = 1) -> torch.Tensor:
    """Run the exported step in ONNX Runtime (CPU, ``threads`` intra-op threads) → u_next."""
    args = _as_args(inputs)
    feeds = {n: t.numpy() for n, t in zip(INPUT_NAMES, args, strict=True)}
    (out,) = _session(onnx_path, threads).run([OUTPUT_NAME], feeds)
    return torch.from_numpy(out)


def check_parity(model: NOABackbone, onnx_path: str | Path, inputs: StepBatch,
                 threads: int = 1) -> float:
    """Largest per-sample error of ONNX Runtime against torch, relative to the field's spread.

    max over samples b of max|u_ort − u_torch|_b / std(u_torch)_b (the torch step in eval mode).
    """
    args = _as_args(inputs)
    with torch.no_grad():
        ref = _cpu_step(model)(*args)
    got = run_onnx(onnx_path, args, threads)
    err = (got - ref).abs().flatten(1).amax(dim=1)
    scale = ref.flatten(1).std(dim=1, correction=0).clamp_min(1e-12)
    return float((err / scale).max())


def session(onnx_path: str | Path, threads: int = 1):
    """An ONNX Runtime CPU session of the exported step (``threads`` intra-op threads; 0: ORT's
    default), created once and reused across the steps of a rollout."""
    return _session(onnx_path, threads)


def onnx_rollout(sess, theta: np.ndarray, context_embedding: np.ndarray, u_start: np.ndarray,
                 steps: int) -> np.ndarray:
    """Roll the exported step out in ONNX Runtime alone: [B, steps + 1, C, H, W], X_start
    first. theta [B, P], context_embedding [B, E], u_start [B, C, H, W] (float32 arrays)."""
    theta = np.ascontiguousarray(theta, dtype=np.float32)
    emb = np.ascontiguousarray(context_embedding, dtype=np.float32)
    u = np.ascontiguousarray(u_start, dtype=np.float32)
    out = np.empty((u.shape[0], steps + 1, *u.shape[1:]), dtype=np.float32)
    out[:, 0] = u
    for t in range(1, steps + 1):
        (u,) = sess.run([OUTPUT_NAME], {"theta": theta, "context_embedding": emb, "u": u})
        out[:, t] = u
    return out


def rollout_parity(model: NOABackbone, onnx_path: str | Path, theta: torch.Tensor,
                   u_start: torch.Tensor, steps: int, context: torch.Tensor | None = None,
                   threads: int = 1) -> dict[str, Any]:
    """ONNX Runtime against torch over an H-step rollout, per sample relative to its spread.

    err_b = max_{t,c,y,x} |u^ORT_bt − u^torch_bt| / std_{t,c,y,x}(u^torch_b) (torch: the
    model's own deterministic ``rollout`` on an eval-mode CPU copy). Returns the batch size,
    steps, the per-sample errors, their max and whether every rollout stayed finite.
    """
    ref_model = copy.deepcopy(model).cpu().eval()
    theta, u_start = theta.detach().float().cpu(), u_start.detach().float().cpu()
    with torch.no_grad():
        ref = ref_model.rollout(theta, u_start, steps, context)
        emb = ref_model.context_embedding(context, theta.shape[0])
    got = onnx_rollout(session(onnx_path, threads), theta.numpy(), emb.numpy(),
                       u_start.numpy(), steps)
    ref_np = ref.numpy().astype(np.float64)
    err = np.abs(got.astype(np.float64) - ref_np).reshape(len(ref_np), -1).max(1)
    scale = np.maximum(ref_np.reshape(len(ref_np), -1).std(1), 1e-12)
    rel = err / scale
    finite = bool(np.isfinite(got).all() and np.isfinite(ref_np).all())
    return {"batch": int(theta.shape[0]), "steps": int(steps),
            "max_rel_error": float(rel.max()) if finite else None,
            "per_sample_rel_error": [float(x) for x in rel],
            "max_abs_error": float(err.max()) if finite else None, "finite": finite}
