"""``DatasetWriter``: writes a dataset or replay file in the layout of ``noa_core.data.layout``.

The file is written under a temporary name in the destination directory
(``.{name}.tmp-{pid}``) and renamed onto the final path only when every row has been written and
the file is closed; on any error the temporary file is removed. A reader therefore never sees a
half-written file at the final path.

Large arrays (``inputs/fields``, ``outputs/fields``) are written row by row as they arrive; the
small per-sample arrays (θ, ids, split, seeds, strings) are kept in memory and written at close.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import h5py
import numpy as np
from pydantic import BaseModel

from noa_core.config import SPLITS
from noa_core.data import layout as L
from noa_core.dynamics.seeding import PURPOSES
from noa_core.errors import DatasetError

# Upper bound on the bytes of one ``outputs/fields`` chunk (the time axis is cut to fit).
MAX_TRAJECTORY_CHUNK_BYTES = 4 << 20
# Chunk cache of the open file: holds at least one full chunk of every big array.
_CHUNK_CACHE_BYTES = 64 << 20


def _encode_attr(key: str, value: Any) -> Any:
    """A value HDF5 can store: JSON text for mappings, sequences and pydantic models."""
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json"))
    if isinstance(value, Mapping | list | tuple):
        try:
            return json.dumps(value)
        except TypeError as exc:
            raise DatasetError(f"metadata attribute {key!r} is not JSON-serialisable: {exc}") \
                from None
    if isinstance(value, str | bool | int | float | np.integer | np.floating):
        return value
    raise DatasetError(
        f"metadata attribute {key!r} has type {type(value).__name__}; expected a str, number, "
        "mapping, list or pydantic model"
    )


class DatasetWriter:
    """Write N samples into an HDF5 file at ``path``, atomically.

    Shapes: θ [P] float64 in [0, 1]; IC [C, H, W] (stored float32); trajectory
    [M, S+1, C, H, W] (stored as ``trajectory_dtype``), X_0 first. ``realizations`` and
    ``num_steps`` are both ``None`` when trajectories are not stored.

    ``metadata`` holds the ``/metadata`` attributes (names in ``layout.ATTR_*``); it must name
    ``dataset_seed``, ``theta_names`` (P names) and ``config``, and for ``kind = "replay"`` also
    ``split_selected`` and ``source_sha256``. Mappings, lists and pydantic models (e.g. the
    resolved ``NOAConfig`` under ``config``) are stored as JSON. The writer itself sets
    ``schema_version``, ``version``, ``creation_date``, ``grid_size``, ``num_parameter_sets``
    and ``num_realizations``.

    Use as a context manager::

        with DatasetWriter(out, num_samples=N, theta_dim=P, channels=C, grid=G,
                           realizations=M, num_steps=S, metadata=attrs) as w:
            for i in range(N):
                w.write(i, sample_id=..., theta=..., ic=..., ic_type=..., policy=...,
                        noise_scale=..., split=..., seeds=..., trajectory=...)
            w.set_sampling_metrics(quality.as_dict())
    """

    def __init__(
        self,
        path: str | Path,
        *,
        num_samples: int,
        theta_dim: int,
        channels: int,
        grid: int,
        realizations: int | None = None,
        num_steps: int | None = None,
        trajectory_dtype: Literal["float32", "float16"] = "float32",
        chunk_samples: int = 8,
        compression_level: int = 4,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        for name, value, low in (("num_samples", num_samples, 1), ("theta_dim", theta_dim, 1),
                                 ("channels", channels, 1), ("grid", grid, 1),
                                 ("chunk_samples", chunk_samples, 1)):
            if not isinstance(value, int) or value < low:
                raise DatasetError(f"{self.path}: {name} must be an integer ≥ {low}, got {value!r}")
        if (realizations is None) != (num_steps is None):
            raise DatasetError(
                f"{self.path}: realizations and num_steps are both set (trajectories stored) or "
                f"both None, got realizations={realizations!r}, num_steps={num_steps!r}"
            )
        if realizations is not None and (realizations < 1 or num_steps is None or num_steps < 0):
            raise DatasetError(
                f"{self.path}: expected realizations ≥ 1 and num_steps ≥ 0, got "
                f"{realizations}, {num_steps}"
            )
        if trajectory_dtype not in ("float32", "float16"):
            raise DatasetError(
                f"{self.path}: trajectory_dtype must be 'float32' or 'float16', got "
                f"{trajectory_dtype!r}"
            )
        if not 0 <= compression_level <= 9:
            raise DatasetError(f"{self.path}: compression_level must lie in 0..9, "
                               f"got {compression_level}")
        self.num_samples = num_samples
        self.theta_dim = theta_dim
        self.channels = channels
        self.grid = grid
        self.realizations = realizations
        self.num_steps = num_steps
        self.trajectory_dtype = np.dtype(trajectory_dtype)
        self.attrs = self._check_metadata(dict(metadata or {}))
        self.attrs[L.ATTR_CREATION_DATE] = datetime.now(UTC).isoformat()
        self._sampling_metrics: Mapping[str, Any] | None = None

        n = num_samples
        self._theta = np.zeros((n, theta_dim), dtype=np.float64)
        self._ids = np.zeros(n, dtype=np.int64)
        self._seeds = {p: np.zeros(n, dtype=np.int64) for p in PURPOSES}
        self._strings: dict[str, list[str]] = {k: [""] * n for k in L.STRING_DATASETS}
        self._written = np.zeros(n, dtype=bool)
        self._id_rows: dict[int, int] = {}

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_path = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}"
        self._closed = False
        try:
            self._file: h5py.File = h5py.File(self.tmp_path, "w", rdcc_nbytes=_CHUNK_CACHE_BYTES)
        except OSError as exc:
            raise DatasetError(f"{self.path}: cannot create {self.tmp_path.name}: {exc}") from None
        try:
            self._create_big(chunk_samples, compression_level)
        except Exception:
            self.abort()
            raise

    # -- construction ---------------------------------------------------------------------------

    def _check_metadata(self, attrs: dict[str, Any]) -> dict[str, Any]:
        reserved = (L.ATTR_SCHEMA_VERSION, L.ATTR_VERSION, L.ATTR_CREATION_DATE,
                    L.ATTR_NUM_PARAMETER_SETS, L.ATTR_GRID_SIZE)
        for key in reserved:
            if key in attrs:
                raise DatasetError(f"{self.path}: metadata attribute {key!r} is set by the writer")
        for key in (L.ATTR_DATASET_SEED, L.ATTR_THETA_NAMES, L.ATTR_CONFIG):
            if attrs.get(key) is None:
                raise DatasetError(f"{self.path}: metadata attribute {key!r} is required")
        seed = attrs[L.ATTR_DATASET_SEED]
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise DatasetError(f"{self.path}: metadata attribute 'dataset_seed' must be an "
                               f"integer ≥ 0, got {seed!r}")
        names = list(attrs[L.ATTR_THETA_NAMES])
        if len(names) != self.theta_dim or not all(isinstance(x, str) for x in names):
            raise DatasetError(
                f"{self.path}: metadata attribute 'theta_names' must list {self.theta_dim} "
                f"names (θ dim), got {names!r}"
            )
        attrs[L.ATTR_THETA_NAMES] = names
        kind = attrs.setdefault(L.ATTR_KIND, L.KIND_DATASET)
        if kind not in L.KINDS:
            raise DatasetError(f"{self.path}: metadata attribute 'kind' must be one of {L.KINDS}, "
                               f"got {kind!r}")
        if kind == L.KIND_REPLAY:
            if attrs.get(L.ATTR_SPLIT_SELECTED) not in L.REPLAY_SPLITS:
                raise DatasetError(
                    f"{self.path}: a replay file needs metadata attribute 'split_selected' in "
                    f"{L.REPLAY_SPLITS}, got {attrs.get(L.ATTR_SPLIT_SELECTED)!r}"
                )
            sha = attrs.get(L.ATTR_SOURCE_SHA256)
            if not (isinstance(sha, str) and len(sha) == 64
                    and all(c in "0123456789abcdef" for c in sha)):
                raise DatasetError(
                    f"{self.path}: a replay file needs metadata attribute 'source_sha256' "
                    f"(64 lowercase hex digits), got {sha!r}"
                )
        attrs.setdefault(L.ATTR_NUM_REALIZATIONS, self.realizations or 0)
        out: dict[str, Any] = {}
        for key, value in attrs.items():
            if value is not None:
                out[key] = _encode_attr(key, value)
        return out

    def _create_big(self, chunk_samples: int, level: int) -> None:
        f = self._file
        n, c, g = self.num_samples, self.channels, self.grid
        gz: dict[str, Any] = {"compression": "gzip", "compression_opts": level} if level else {}
        rows = min(chunk_samples, n)
        self._inputs = f.create_dataset(L.INPUTS, shape=(n, c, g, g), dtype=np.float32,
                                        chunks=(rows, c, g, g), track_times=False, **gz)
        self._outputs: h5py.Dataset | None = None
        if self.realizations is not None and self.num_steps is not None:
            t = self.num_steps + 1
            frame = c * g * g * self.trajectory_dtype.itemsize
            t_chunk = max(1, min(t, MAX_TRAJECTORY_CHUNK_BYTES // frame))
            self._outputs = f.create_dataset(
                L.OUTPUTS, shape=(n, self.realizations, t, c, g, g), dtype=self.trajectory_dtype,
                chunks=(1, 1, t_chunk, c, g, g), track_times=False, **gz,
            )
            self._outputs.attrs[L.ATTR_NUM_STEPS] = int(self.num_steps)
        self._chunk_rows = rows
        self._gz = gz

    # -- rows -----------------------------------------------------------------------------------

    def write(
        self,
        i: int,
        *,
        sample_id: int,
        theta: np.ndarray,
        ic: np.ndarray,
        ic_type: str,
        policy: str,
        noise_scale: float,
        split: str,
        seeds: Mapping[str, int],
        trajectory: np.ndarray | None = None,
    ) -> None:
        """Write row ``i``: θ [P] float64, IC [C, H, W], trajectory [M, S+1, C, H, W] or None.

        Refuses (``DatasetError`` naming the sample id and the key) a θ with the wrong shape,
        non-finite values or values outside [0, 1]; a non-finite IC or trajectory (also after
        the cast to float16); a split outside ``SPLITS``; seeds that do not name exactly
        ``PURPOSES``; a repeated sample id.
        """
        if self._closed:
            raise DatasetError(f"{self.path}: write after close")
        where = f"{self.path}: sample id {sample_id}"
        if not isinstance(i, int | np.integer) or not 0 <= i < self.num_samples:
            raise DatasetError(f"{where}: row {i!r} outside 0..{self.num_samples - 1}")
        i = int(i)
        if isinstance(sample_id, bool) or not isinstance(sample_id, int | np.integer) \
                or sample_id < 0:
            raise DatasetError(f"{self.path}: {L.SAMPLE_IDS}: row {i}: expected a non-negative "
                               f"integer sample id, got {sample_id!r}")
        sid = int(sample_id)
        other = self._id_rows.get(sid)
        if other is not None and other != i:
            raise DatasetError(f"{where}: {L.SAMPLE_IDS}: id already written at row {other}")

        th = np.asarray(theta)
        if th.shape != (self.theta_dim,):
            raise DatasetError(f"{where}: {L.PARAMS}: θ has shape {th.shape}, expected "
                               f"({self.theta_dim},)")
        th = th.astype(np.float64)
        if not np.all(np.isfinite(th)):
            bad = np.flatnonzero(~np.isfinite(th)).tolist()
            raise DatasetError(f"{where}: {L.PARAMS}: θ has non-finite values at slots {bad}")
        if np.any(th < 0.0) or np.any(th > 1.0):
            bad = np.flatnonzero((th < 0.0) | (th > 1.0)).tolist()
            raise DatasetError(f"{where}: {L.PARAMS}: θ outside [0, 1] at slots {bad}")

        field_shape = (self.channels, self.grid, self.grid)
        x0 = np.asarray(ic)
        if x0.shape != field_shape:
            raise DatasetError(f"{where}: {L.INPUTS}: IC has shape {x0.shape}, expected "
                               f"{field_shape}")
        x0 = x0.astype(np.float32)
        if not np.all(np.isfinite(x0)):
            raise DatasetError(f"{where}: {L.INPUTS}: IC has non-finite values")

        for key, value in ((L.IC_TYPES, ic_type), (L.POLICIES, policy)):
            if not isinstance(value, str) or not value:
                raise DatasetError(f"{where}: {key}: expected a non-empty string, got {value!r}")
        if split not in SPLITS:
            raise DatasetError(f"{where}: {L.SPLIT}: expected one of {SPLITS}, got {split!r}")
        sigma = float(noise_scale)
        if not math.isfinite(sigma) or sigma < 0:
            raise DatasetError(f"{where}: noise_scale must be finite and ≥ 0, got {noise_scale!r}")
        if set(seeds) != set(PURPOSES):
            raise DatasetError(f"{where}: {L.SEEDS_GROUP}: expected seeds {PURPOSES}, got "
                               f"{sorted(seeds)}")
        for p in PURPOSES:
            s = seeds[p]
            if isinstance(s, bool) or not isinstance(s, int | np.integer) \
                    or not 0 <= int(s) < 2**63:
                raise DatasetError(f"{where}: {L.SEED_KEYS[p]}: expected an integer in "
                                   f"[0, 2^63), got {s!r}")

        traj: np.ndarray | None = None
        if self._outputs is not None:
            if trajectory is None:
                raise DatasetError(f"{where}: {L.OUTPUTS}: this file stores trajectories; "
                                   "none given")
            assert self.num_steps is not None  # set together with realizations
            expected = (self.realizations, self.num_steps + 1, *field_shape)
            traj = np.asarray(trajectory)
            if traj.shape != expected:
                raise DatasetError(f"{where}: {L.OUTPUTS}: trajectory has shape {traj.shape}, "
                                   f"expected {expected} (M, S+1, C, H, W)")
            with np.errstate(over="ignore"):
                traj = traj.astype(self.trajectory_dtype)
            if not np.all(np.isfinite(traj)):
                raise DatasetError(
                    f"{where}: {L.OUTPUTS}: trajectory has non-finite values as "
                    f"{self.trajectory_dtype} (|x| > {np.finfo(self.trajectory_dtype).max:g} "
                    "overflows)"
                )
        elif trajectory is not None:
            raise DatasetError(f"{where}: {L.OUTPUTS}: this file stores no trajectories "
                               "(realizations=None); got one")

        self._inputs[i] = x0
        if traj is not None and self._outputs is not None:
            self._outputs[i] = traj
        if self._written[i]:
            self._id_rows.pop(int(self._ids[i]), None)
        self._theta[i] = th
        self._ids[i] = sid
        self._id_rows[sid] = i
        for p in PURPOSES:
            self._seeds[p][i] = int(seeds[p])
        self._strings[L.IC_TYPES][i] = ic_type
        self._strings[L.POLICIES][i] = policy
        self._strings[L.NOISE_REGIMES][i] = L.noise_regime(sigma)
        self._strings[L.SPLIT][i] = split
        self._written[i] = True

    def set_sampling_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Store ``metrics`` (e.g. ``SobolQuality.as_dict()``) as the ``sampling_metrics`` JSON."""
        self._sampling_metrics = dict(metrics)

    # -- finishing ------------------------------------------------------------------------------

    def _write_small(self) -> None:
        f = self._file
        n = self.num_samples
        rows = self._chunk_rows
        f.create_dataset(L.PARAMS, data=self._theta, chunks=(rows, self.theta_dim),
                         track_times=False, **self._gz)
        f.create_dataset(L.SAMPLE_IDS, data=self._ids, chunks=(rows,), track_times=False)
        f.create_dataset(L.GRID_SIZES, data=np.full(n, self.grid, dtype=np.int32),
                         chunks=(rows,), track_times=False)
        for p in PURPOSES:
            f.create_dataset(L.SEED_KEYS[p], data=self._seeds[p], chunks=(rows,),
                             track_times=False)
        str_dt = h5py.string_dtype("utf-8")
        for key, values in self._strings.items():
            f.create_dataset(key, data=np.array(values, dtype=object), dtype=str_dt,
                             chunks=(rows,), track_times=False)
        meta = f.require_group(L.METADATA)
        attrs = dict(self.attrs)
        if self._sampling_metrics is not None:
            attrs[L.ATTR_SAMPLING_METRICS] = _encode_attr(L.ATTR_SAMPLING_METRICS,
                                                          self._sampling_metrics)
        attrs.update({
            L.ATTR_SCHEMA_VERSION: L.SCHEMA_VERSION,
            L.ATTR_VERSION: L.LEGACY_FORMAT_VERSION,
            L.ATTR_GRID_SIZE: self.grid,
            L.ATTR_NUM_PARAMETER_SETS: n,
        })
        for key, value in attrs.items():
            meta.attrs[key] = value

    def close(self) -> None:
        """Write the small arrays and attributes, close, and rename onto ``path``.

        Raises ``DatasetError`` (and removes the temporary file) if some rows were never written.
        """
        if self._closed:
            return
        try:
            missing = np.flatnonzero(~self._written)
            if missing.size:
                raise DatasetError(
                    f"{self.path}: {missing.size} of {self.num_samples} rows never written "
                    f"(first rows {missing[:5].tolist()}); nothing was saved"
                )
            self._write_small()
            self._file.close()
            with open(self.tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(self.tmp_path, self.path)
            self._closed = True
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Close and delete the temporary file; nothing is written at ``path``."""
        self._closed = True
        try:
            if getattr(self, "_file", None) is not None and self._file.id.valid:
                self._file.close()
        finally:
            self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
