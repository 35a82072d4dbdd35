"""``DatasetReader``: read-only access to a dataset or replay file, including the original layout.

A file without the ``schema_version`` attribute is read as the original system's ("legacy")
layout, which stored neither sample ids, seeds nor a split. For such a file:

- sample ids are the row indices 0 … N−1;
- θ may be stored as float32; it is returned as float64;
- the seeds of row i are ``legacy_sample_seeds(i, θ_i)`` (from the row index and the float64 θ
  bytes);
- the dataset seed is ``derive_seed("legacy-split", sha256(θ))``, where sha256 is the 32-byte
  digest of the whole θ array as float64, little-endian, C order [N, P]; the split is
  ``split_of(i, that seed, SplitConfig())`` (default weights 4/1/1).

So a legacy file reads the same way in every process, without writing anything into it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from noa_core.config import SPLITS, THETA_GROUPS, SplitConfig
from noa_core.data import layout as L
from noa_core.data.split import split_array
from noa_core.dynamics.seeding import PURPOSES, derive_seed, legacy_sample_seeds
from noa_core.errors import DatasetError

# Chunk cache of an open file: holds whole trajectory chunks (up to 4 MiB each).
_CHUNK_CACHE_BYTES = 64 << 20


def open_hdf5(path: str | Path) -> h5py.File:
    """Open an HDF5 file read-only; a missing, truncated or non-HDF5 file is a ``DatasetError``."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file")
    if p.is_dir():
        raise DatasetError(f"{p}: is a directory, expected an HDF5 file")
    try:
        return h5py.File(p, "r", rdcc_nbytes=_CHUNK_CACHE_BYTES)
    except OSError as exc:
        raise DatasetError(
            f"{p}: not a readable HDF5 file (truncated, corrupt or another format): {exc}"
        ) from None


def legacy_dataset_seed(theta: np.ndarray) -> int:
    """Dataset seed of a legacy file: ``derive_seed("legacy-split", sha256(θ as <f8 [N, P]))``."""
    raw = np.ascontiguousarray(np.asarray(theta, dtype="<f8")).tobytes()
    return derive_seed("legacy-split", hashlib.sha256(raw).digest())


def _attr_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_index(idx: int | Sequence[int] | np.ndarray | slice, n: int) -> np.ndarray:
    """Row indices as an int64 array, bounds-checked."""
    if isinstance(idx, slice):
        return np.arange(n, dtype=np.int64)[idx]
    arr = np.atleast_1d(np.asarray(idx))
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"row indices must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64).ravel()
    if arr.size and (arr.min() < -n or arr.max() >= n):
        raise IndexError(f"row index out of range for {n} samples: {arr.tolist()[:8]}")
    return np.where(arr < 0, arr + n, arr)


def _read_rows(ds: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``ds[rows]`` for any order and repeats, in the stored dtype.

    Reads each run of consecutive rows as one slice: h5py's fancy indexing is an order of
    magnitude slower on chunked, compressed data.
    """
    if rows.size == 0:
        return np.empty((0, *ds.shape[1:]), dtype=ds.dtype)
    uniq, inverse = np.unique(rows, return_inverse=True)
    breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
    runs = np.split(uniq, breaks)
    data = np.concatenate([ds[int(r[0]):int(r[-1]) + 1] for r in runs], axis=0)
    return data[inverse]


class DatasetReader:
    """Read-only view of a dataset/replay file (see ``noa_core.data.layout``).

    Opening checks that the file is HDF5 and that ``parameters/params`` [N, P] and
    ``inputs/fields`` [N, C, H, W] exist; a file of this schema must also hold sample ids,
    split and seeds. Full checking is ``noa_core.data.validate``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = open_hdf5(self.path)
        try:
            self._check_open()
        except BaseException:
            self._file.close()
            raise

    def _fail(self, key: str, what: str) -> DatasetError:
        return DatasetError(f"{self.path}: {key}: {what}")

    def _dataset(self, key: str) -> h5py.Dataset:
        obj = self._file.get(key)
        if obj is None:
            raise self._fail(key, "missing dataset")
        if not isinstance(obj, h5py.Dataset):
            raise self._fail(key, f"expected a dataset, found a {type(obj).__name__}")
        return obj

    def _check_open(self) -> None:
        params = self._dataset(L.PARAMS)
        inputs = self._dataset(L.INPUTS)
        if params.ndim != 2:
            raise self._fail(L.PARAMS, f"expected shape [N, P], found {params.shape}")
        if inputs.ndim != 4 or inputs.shape[0] != params.shape[0]:
            raise self._fail(L.INPUTS, f"expected shape [N={params.shape[0]}, C, H, W], "
                                       f"found {inputs.shape}")
        meta = self._file.get(L.METADATA)
        self._attrs: dict[str, Any] = dict(meta.attrs) if isinstance(meta, h5py.Group) else {}
        version = self._attrs.get(L.ATTR_SCHEMA_VERSION)
        self.schema_version: int | None = None if version is None else int(version)
        if self.schema_version is not None and self.schema_version > L.SCHEMA_VERSION:
            raise self._fail(
                f"{L.METADATA}@{L.ATTR_SCHEMA_VERSION}",
                f"schema version {self.schema_version} is newer than this reader's "
                f"{L.SCHEMA_VERSION}; upgrade noa-core",
            )
        if not self.is_legacy:
            for key in (L.SAMPLE_IDS, L.SPLIT, *L.SEED_KEYS.values()):
                ds = self._dataset(key)
                if ds.shape != (self.num_samples,):
                    raise self._fail(key, f"expected shape ({self.num_samples},), "
                                          f"found {ds.shape}")

    # -- context manager -----------------------------------------------------------------------

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> DatasetReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- sizes and attributes ------------------------------------------------------------------

    @property
    def is_legacy(self) -> bool:
        """True for the original layout (no ``schema_version``: no stored ids, seeds or split)."""
        return self.schema_version is None

    @property
    def file(self) -> h5py.File:
        """The open h5py file (read-only)."""
        return self._file

    @property
    def attrs(self) -> dict[str, Any]:
        """Raw ``/metadata`` attributes."""
        return dict(self._attrs)

    @property
    def num_samples(self) -> int:
        return int(self._file[L.PARAMS].shape[0])

    @property
    def theta_dim(self) -> int:
        return int(self._file[L.PARAMS].shape[1])

    @property
    def field_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one state."""
        c, h, w = self._file[L.INPUTS].shape[1:]
        return int(c), int(h), int(w)

    def require_inputs(self, theta_dim: int, field_shape: tuple[int, int, int]) -> None:
        """Raise ``DatasetError`` unless θ rows have ``theta_dim`` slots and states are
        ``field_shape`` [C, H, W]: what a model built for another configuration would take."""
        have = (self.theta_dim, self.field_shape)
        if have != (theta_dim, tuple(field_shape)):
            raise DatasetError(
                f"{self.path}: {L.PARAMS} has {have[0]} θ slots and {L.INPUTS} are [C, H, W] = "
                f"{list(have[1])}; the model takes {theta_dim} θ slots and "
                f"{list(field_shape)}: a file of another configuration")

    @property
    def channels(self) -> int:
        return self.field_shape[0]

    @property
    def grid(self) -> int:
        return self.field_shape[1]

    @property
    def kind(self) -> str:
        """'dataset' or 'replay' (a legacy file is a 'dataset')."""
        return _attr_str(self._attrs.get(L.ATTR_KIND, L.KIND_DATASET))

    def _json_attr(self, key: str) -> Any:
        raw = self._attrs.get(key)
        if raw is None:
            return None
        try:
            return json.loads(_attr_str(raw))
        except json.JSONDecodeError as exc:
            raise self._fail(f"{L.METADATA}@{key}", f"invalid JSON: {exc}") from None

    @cached_property
    def config(self) -> dict[str, Any] | None:
        """The resolved configuration stored with the file (parsed JSON), or None."""
        return self._json_attr(L.ATTR_CONFIG)

    @cached_property
    def sampling_metrics(self) -> dict[str, Any] | None:
        """The θ sampling figures (parsed JSON), or None."""
        return self._json_attr(L.ATTR_SAMPLING_METRICS)

    @cached_property
    def theta_names(self) -> list[str]:
        """Names of the P θ slots: stored, else a legacy config's parameter_space, else u{i}."""
        names = self._json_attr(L.ATTR_THETA_NAMES)
        if names is None and isinstance(self.config, dict):
            space = self.config.get("parameter_space")
            if isinstance(space, dict):
                names = [n for g in THETA_GROUPS if isinstance(space.get(g), dict)
                         for n in space[g]]
        if not isinstance(names, list) or len(names) != self.theta_dim:
            names = [f"u{i}" for i in range(self.theta_dim)]
        return [str(n) for n in names]

    @cached_property
    def dataset_seed(self) -> int:
        """Stored dataset seed, or for a legacy file the seed derived from θ (module docstring)."""
        if not self.is_legacy and L.ATTR_DATASET_SEED in self._attrs:
            return int(self._attrs[L.ATTR_DATASET_SEED])
        return legacy_dataset_seed(self.theta)

    # -- per-sample arrays ---------------------------------------------------------------------

    @cached_property
    def theta(self) -> np.ndarray:
        """θ as unit vectors [N, P] float64 (legacy float32 is upcast)."""
        arr = np.asarray(self._file[L.PARAMS][()], dtype=np.float64)
        arr.setflags(write=False)
        return arr

    @cached_property
    def sample_ids(self) -> np.ndarray:
        """Sample ids [N] int64 (legacy: the row indices)."""
        if self.is_legacy:
            arr = np.arange(self.num_samples, dtype=np.int64)
        else:
            arr = np.asarray(self._file[L.SAMPLE_IDS][()], dtype=np.int64)
        arr.setflags(write=False)
        return arr

    @cached_property
    def split(self) -> np.ndarray:
        """Split of each row [N] str ('train' | 'val' | 'test'); legacy: derived (docstring)."""
        if self.is_legacy:
            return split_array(self.sample_ids, self.dataset_seed, SplitConfig())
        return np.asarray(self._file[L.SPLIT].asstr()[()], dtype="<U5")

    def indices_of_split(self, name: str) -> np.ndarray:
        """Row indices [k] int64 of the samples in split ``name`` ('train' | 'val' | 'test')."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return np.flatnonzero(self.split == name).astype(np.int64)

    def _strings(self, key: str) -> np.ndarray | None:
        obj = self._file.get(key)
        if not isinstance(obj, h5py.Dataset):
            return None
        return np.asarray(obj.asstr()[()], dtype=str)

    @cached_property
    def ic_types(self) -> np.ndarray | None:
        """IC family per row [N] str, or None when the (legacy) file lacks it."""
        return self._strings(L.IC_TYPES)

    @cached_property
    def policies(self) -> np.ndarray | None:
        """Update policy per row [N] str, or None when the (legacy) file lacks it."""
        return self._strings(L.POLICIES)

    @cached_property
    def noise_regimes(self) -> np.ndarray | None:
        """Noise regime per row [N] str ('low' | 'medium' | 'high'), or None."""
        return self._strings(L.NOISE_REGIMES)

    @cached_property
    def _seed_arrays(self) -> dict[str, np.ndarray]:
        if self.is_legacy:
            rows = [legacy_sample_seeds(i, self.theta[i]) for i in range(self.num_samples)]
            return {p: np.array([r[p] for r in rows], dtype=np.int64) for p in PURPOSES}
        return {p: np.asarray(self._file[L.SEED_KEYS[p]][()], dtype=np.int64) for p in PURPOSES}

    def seeds(self, i: int) -> dict[str, int]:
        """Seeds of row ``i``: ``{"weights", "ic", "noise"}`` (legacy: ``legacy_sample_seeds``)."""
        row = int(_as_index(i, self.num_samples)[0])
        if self.is_legacy:
            return legacy_sample_seeds(row, self.theta[row])
        return {p: int(self._seed_arrays[p][row]) for p in PURPOSES}

    def all_seeds(self) -> dict[str, np.ndarray]:
        """Seeds of every row: ``{purpose: [N] int64}``."""
        return {p: a.copy() for p, a in self._seed_arrays.items()}

    # -- fields --------------------------------------------------------------------------------

    def ic(self, i: int) -> np.ndarray:
        """Initial condition of row ``i``: [C, H, W] float32."""
        return self.ics([int(i)])[0]

    def ics(self, idx: int | Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """Initial conditions of rows ``idx`` (any order, repeats allowed): [k, C, H, W] float32."""
        rows = _as_index(idx, self.num_samples)
        return _read_rows(self._file[L.INPUTS], rows).astype(np.float32, copy=False)

    @property
    def _outputs(self) -> h5py.Dataset | None:
        obj = self._file.get(L.OUTPUTS)
        if isinstance(obj, h5py.Dataset) and obj.ndim == 6:
            return obj
        return None

    @property
    def has_trajectories(self) -> bool:
        """True when ``outputs/fields`` holds trajectories [N, M, S+1, C, H, W]."""
        return self._outputs is not None

    @property
    def num_steps(self) -> int | None:
        """S (updates per trajectory; S + 1 states are stored), or None without trajectories.

        A legacy file has no ``num_steps`` attribute; its T stored states give S = T − 1.
        """
        out = self._outputs
        if out is None:
            return None
        if L.ATTR_NUM_STEPS in out.attrs:
            return int(out.attrs[L.ATTR_NUM_STEPS])
        return int(out.shape[2]) - 1

    @property
    def num_realizations(self) -> int | None:
        """M of the stored trajectories, or None without trajectories."""
        out = self._outputs
        return None if out is None else int(out.shape[1])

    @property
    def trajectory_dtype(self) -> np.dtype | None:
        """Stored dtype of the trajectories (float32 or float16), or None."""
        out = self._outputs
        return None if out is None else out.dtype

    def trajectories(self, idx: int | Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """Trajectories of rows ``idx``: [k, M, S+1, C, H, W] float32 (float16 upcast exactly)."""
        out = self._outputs
        if out is None:
            raise self._fail(L.OUTPUTS, "this file stores no trajectories")
        rows = _as_index(idx, self.num_samples)
        return _read_rows(out, rows).astype(np.float32, copy=False)

    def trajectory(self, i: int) -> np.ndarray:
        """Trajectories of row ``i``: [M, S+1, C, H, W] float32."""
        return self.trajectories([int(i)])[0]
