"""Stage ``noa predict``: roll an exported step out in ONNX Runtime alone.

No torch model is in the loop: θ and start states are read from a replay (or dataset) file with
h5py, every step is one ``InferenceSession.run`` on numpy arrays, and the predictions are written
with h5py. The graph's metadata (``noa export``) gives the sizes, the horizon and K.

Start state: K = 0: the initial condition ``inputs/fields``; K > 0: realization 0's state K of
``outputs/fields`` (what training and evaluation roll out from), and its states u_0 … u_K are
the context: the exported context encoder beside the step (``noa.context_encoder``,
``model.context.onnx``) turns them into the context embedding and field once per operator,
and every step reads them. K defaults to the model's ``noa.context``; ``context`` overrides it
(0 … ``noa.context_max``; K = 0 feeds zeros, the context-free step).

Output file (written to a temporary sibling, then renamed into place):

- ``predictions/fields`` [N, S+1, C, H, W] float32, the start state first;
- ``parameters/params`` [N, P] float64 and ``metadata/sample_ids`` [N] int64 of the rows used;
- attributes on ``/metadata``: ``kind = "predictions"``, ``num_steps`` S, ``split``,
  ``start_state``, ``context`` K, ``onnx_sha256`` (and ``context_encoder_sha256``),
  ``source`` (the replay file's name), ``nonfinite`` (operators whose rollout left the finite
  range).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from noa_core.errors import EvaluationError
from noa_core.export.metadata import (
    CONTEXT_INPUT,
    CONTEXT_OUTPUTS,
    FIELD_INPUT,
    OUTPUT_NAME,
    read_metadata,
)

PREDICTIONS = "predictions/fields"
PARAMS = "parameters/params"
SAMPLE_IDS = "metadata/sample_ids"
KIND = "predictions"


def ort_session(onnx_path: str | Path, threads: int = 0) -> Any:
    """An ONNX Runtime CPU session (``threads`` intra-op threads; 0: ORT's default), created
    once and reused across the steps of a rollout."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_mem_reuse = False  # DFT buffer re-use can fail on symbolic shapes
    # Idle pool threads sleep instead of spinning: a batch job on shared cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


def context_feeds(sess: Any, encoder: Any | None, context: np.ndarray | None, batch: int,
                  embed_dim: int, field_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The step's context inputs: the encoder's outputs for u_0 … u_K [B, K + 1, C, H, W], or
    zeros (K = 0); ``context_field`` only where the step graph takes it."""
    takes_field = FIELD_INPUT in {i.name for i in sess.get_inputs()}
    if context is not None and context.shape[1] >= 2:
        emb, field = encode_context(encoder, context)
        return {"context_embedding": emb} | ({FIELD_INPUT: field} if takes_field else {})
    feeds = {"context_embedding": np.zeros((batch, embed_dim), dtype=np.float32)}
    if takes_field:
        feeds[FIELD_INPUT] = np.zeros((batch, *field_shape), dtype=np.float32)
    return feeds


def encode_context(encoder: Any, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exported context encoder's session: u_0 … u_K [B, K + 1, C, H, W] →
    (context_embedding [B, E], context_field [B, 2C, H, W])."""
    emb, field = encoder.run(list(CONTEXT_OUTPUTS),
                             {CONTEXT_INPUT: np.ascontiguousarray(context, dtype=np.float32)})
    return emb, field


def rollout(sess: Any, theta: np.ndarray, u_start: np.ndarray, steps: int,
            context: dict[str, np.ndarray]) -> np.ndarray:
    """[B, steps + 1, C, H, W] from θ [B, P], u_start [B, C, H, W] and the context inputs
    (``context_feeds``)."""
    feeds = {"theta": np.ascontiguousarray(theta, dtype=np.float32), **context}
    u = np.ascontiguousarray(u_start, dtype=np.float32)
    out = np.empty((len(u), steps + 1, *u.shape[1:]), dtype=np.float32)
    out[:, 0] = u
    for t in range(1, steps + 1):
        (u,) = sess.run([OUTPUT_NAME], {**feeds, "u": u})
        out[:, t] = u
    return out


def _inputs(replay: Path, split: str, meta: dict[str, Any], k: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, str]:
    """(sample ids [N], θ [N, P], start states [N, C, H, W], contexts [N, K + 1, C, H, W] or
    None, what the start state is)."""
    from noa_core.data.hdf5_reader import DatasetReader

    with DatasetReader(replay) as r:
        rows = (np.arange(r.num_samples) if split == "all" else r.indices_of_split(split))
        if rows.size == 0:
            raise EvaluationError(f"{replay}: metadata/split has no '{split}' rows")
        r.require_inputs(meta["theta_dim"], (meta["channels"], meta["grid"], meta["grid"]))
        ctx = None
        if k == 0:
            start, what = r.ics(rows), "inputs/fields (X_0)"
        else:
            if not r.has_trajectories or (r.num_steps or 0) < k:
                raise EvaluationError(f"{replay}: outputs/fields must hold state K = {k} to "
                                      "start from it")
            ctx = np.stack([r.trajectory(int(i))[0, :k + 1] for i in rows])
            start = ctx[:, -1]
            what = f"outputs/fields realization 0, state K = {k}"
        ids = np.asarray(r.sample_ids[rows], dtype=np.int64)
        return ids, r.theta[rows], start, ctx, what


def _context_k(onnx_path: Path, meta: dict[str, Any], context: int | None) -> int:
    k = int(meta["context"]) if context is None else int(context)
    k_max = int(meta.get("context_max") or 0)
    if k < 0 or (k > 0 and (k > k_max or not meta.get("context_encoder"))):
        raise EvaluationError(
            f"--context {k}: {onnx_path} takes K = 0 … "
            f"{k_max if meta.get('context_encoder') else 0} (noa.context_max, "
            f"noa.context_encoder = {meta.get('context_encoder')})")
    return k


def _encoder(onnx_path: Path, meta: dict[str, Any], k: int, threads: int) -> tuple[Any, Path]:
    path = onnx_path.with_name(str(meta["context_encoder"]))
    if not path.is_file():
        raise EvaluationError(f"{path}: the context encoder of {onnx_path.name} "
                              f"(noa.context_encoder) is missing; `noa export` writes both "
                              f"files, and K = {k} needs it")
    return ort_session(path, threads), path


def predict(onnx_path: str | Path, replay: str | Path, out: str | Path, *, split: str = "test",
            steps: int | None = None, batch_size: int = 32, threads: int = 0,
            context: int | None = None) -> dict[str, Any]:
    """Predictions of the exported step for the ``split`` rows of ``replay`` (module
    docstring); ``steps`` defaults to the model's horizon H, ``context`` to its K. Returns a
    summary."""
    from noa_core.data.manifest import sha256_file

    onnx_path, replay, out = Path(onnx_path), Path(replay), Path(out)
    meta = read_metadata(onnx_path)
    steps = int(meta["horizon"]) if steps is None else int(steps)
    if steps < 1:
        raise EvaluationError(f"--steps {steps}: expected at least 1")
    k = _context_k(onnx_path, meta, context)
    ids, theta, start, ctx, what = _inputs(replay, split, meta, k)
    sess = ort_session(onnx_path, threads)
    encoder, encoder_path = _encoder(onnx_path, meta, k, threads) if k else (None, None)
    field_shape = (2 * start.shape[1], *start.shape[2:])
    n = len(ids)
    tmp = out.with_name(f".{out.name}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    nonfinite = 0
    try:
        with h5py.File(tmp, "w") as f:
            ds = f.create_dataset(PREDICTIONS, shape=(n, steps + 1, *start.shape[1:]),
                                  dtype="float32", chunks=(1, steps + 1, *start.shape[1:]))
            for lo in range(0, n, batch_size):
                hi = min(n, lo + batch_size)
                feeds = context_feeds(sess, encoder, None if ctx is None else ctx[lo:hi],
                                      hi - lo, int(meta["embed_dim"]), field_shape)
                pred = rollout(sess, theta[lo:hi], start[lo:hi], steps, feeds)
                nonfinite += int((~np.isfinite(pred.reshape(hi - lo, -1)).all(1)).sum())
                ds[lo:hi] = pred
            f.create_dataset(PARAMS, data=np.asarray(theta, dtype=np.float64))
            f.create_dataset(SAMPLE_IDS, data=ids)
            attrs = f["metadata"].attrs
            attrs.update({"kind": KIND, "num_steps": steps, "split": split, "start_state": what,
                          "context": k, "onnx_sha256": sha256_file(onnx_path),
                          "source": replay.name, "nonfinite": nonfinite})
            if encoder_path is not None:
                attrs["context_encoder_sha256"] = sha256_file(encoder_path)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"out": str(out), "operators": n, "steps": steps, "split": split,
            "start_state": what, "context": k, "nonfinite": nonfinite}
