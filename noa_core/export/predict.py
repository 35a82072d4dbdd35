"""Stage ``noa predict``: roll an exported step out in ONNX Runtime alone.

No torch model is in the loop: θ and start states are read from a replay (or dataset) file with
h5py, every step is one ``InferenceSession.run`` on numpy arrays, and the predictions are written
with h5py. The graph's metadata (``noa export``) gives the sizes, the horizon and K.

Start state: K = 0 (``noa.context``): the initial condition ``inputs/fields``; K > 0: realization
0's state K of ``outputs/fields`` (what training and evaluation roll out from). The context
embedding is zero: the exported step carries no context encoder (K = 0 conditioning, as in
training).

Output file (written to a temporary sibling, then renamed into place):

- ``predictions/fields`` [N, S+1, C, H, W] float32, the start state first;
- ``parameters/params`` [N, P] float64 and ``metadata/sample_ids`` [N] int64 of the rows used;
- attributes on ``/metadata``: ``kind = "predictions"``, ``num_steps`` S, ``split``,
  ``start_state``, ``onnx_sha256``, ``source`` (the replay file's name), ``nonfinite``
  (operators whose rollout left the finite range).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from noa_core.errors import EvaluationError
from noa_core.export.metadata import read_metadata

PREDICTIONS = "predictions/fields"
PARAMS = "parameters/params"
SAMPLE_IDS = "metadata/sample_ids"
KIND = "predictions"
OUTPUT_NAME = "u_next"


def _session(onnx_path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_mem_reuse = False  # DFT buffer re-use can fail on symbolic shapes
    # Idle pool threads sleep instead of spinning: a batch job on shared cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


def rollout(sess: Any, theta: np.ndarray, u_start: np.ndarray, steps: int, embed_dim: int
            ) -> np.ndarray:
    """[B, steps + 1, C, H, W] from θ [B, P] and u_start [B, C, H, W] (zero context)."""
    theta = np.ascontiguousarray(theta, dtype=np.float32)
    u = np.ascontiguousarray(u_start, dtype=np.float32)
    emb = np.zeros((len(theta), embed_dim), dtype=np.float32)
    out = np.empty((len(u), steps + 1, *u.shape[1:]), dtype=np.float32)
    out[:, 0] = u
    for t in range(1, steps + 1):
        (u,) = sess.run([OUTPUT_NAME], {"theta": theta, "context_embedding": emb, "u": u})
        out[:, t] = u
    return out


def _inputs(replay: Path, split: str, meta: dict[str, Any]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(sample ids [N], θ [N, P], start states [N, C, H, W], what the start state is)."""
    from noa_core.data.hdf5_reader import DatasetReader

    with DatasetReader(replay) as r:
        rows = (np.arange(r.num_samples) if split == "all" else r.indices_of_split(split))
        if rows.size == 0:
            raise EvaluationError(f"{replay}: metadata/split has no '{split}' rows")
        if r.theta_dim != meta["theta_dim"]:
            raise EvaluationError(f"{replay}: parameters/params has {r.theta_dim} θ slots, the "
                                  f"model takes noa.theta_dim = {meta['theta_dim']}")
        c, h, w = r.field_shape
        want = (meta["channels"], meta["grid"], meta["grid"])
        if (c, h, w) != want:
            raise EvaluationError(f"{replay}: inputs/fields are [C, H, W] = {[c, h, w]}, the "
                                  f"model takes {list(want)}")
        k = int(meta["context"])
        if k == 0:
            start, what = r.ics(rows), "inputs/fields (X_0)"
        else:
            if not r.has_trajectories or (r.num_steps or 0) < k:
                raise EvaluationError(f"{replay}: outputs/fields must hold state K = {k} (the "
                                      "model's noa.context) to start from it")
            start = np.stack([r.trajectory(int(i))[0, k] for i in rows])
            what = f"outputs/fields realization 0, state K = {k}"
        return np.asarray(r.sample_ids[rows], dtype=np.int64), r.theta[rows], start, what


def predict(onnx_path: str | Path, replay: str | Path, out: str | Path, *, split: str = "test",
            steps: int | None = None, batch_size: int = 32, threads: int = 0) -> dict[str, Any]:
    """Predictions of the exported step for the ``split`` rows of ``replay`` (module
    docstring); ``steps`` defaults to the model's horizon H. Returns a summary."""
    from noa_core.data.manifest import sha256_file

    onnx_path, replay, out = Path(onnx_path), Path(replay), Path(out)
    meta = read_metadata(onnx_path)
    steps = int(meta["horizon"]) if steps is None else int(steps)
    if steps < 1:
        raise EvaluationError(f"--steps {steps}: expected at least 1")
    ids, theta, start, what = _inputs(replay, split, meta)
    sess = _session(onnx_path, threads)
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
                pred = rollout(sess, theta[lo:hi], start[lo:hi], steps, int(meta["embed_dim"]))
                nonfinite += int((~np.isfinite(pred.reshape(hi - lo, -1)).all(1)).sum())
                ds[lo:hi] = pred
            f.create_dataset(PARAMS, data=np.asarray(theta, dtype=np.float64))
            f.create_dataset(SAMPLE_IDS, data=ids)
            attrs = f["metadata"].attrs
            attrs.update({"kind": KIND, "num_steps": steps, "split": split, "start_state": what,
                          "onnx_sha256": sha256_file(onnx_path), "source": replay.name,
                          "nonfinite": nonfinite})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"out": str(out), "operators": n, "steps": steps, "split": split,
            "start_state": what, "nonfinite": nonfinite}
