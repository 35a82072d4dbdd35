"""Check a dataset or replay file against the layout; every defect is one precise line.

Each message reads ``FILE: KEY: what was expected, what was found``. ``validate_dataset`` returns
all defects (an empty list means the file is valid); ``check_dataset`` raises ``DatasetError``
with the first ones. A legacy file (no ``schema_version``) is held only to what the original
layout had: θ and the initial conditions, and the shapes of whatever else it stores.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from noa_core.config import SPLITS, UPDATE_POLICIES
from noa_core.data import layout as L
from noa_core.data.hdf5_reader import open_hdf5
from noa_core.errors import DatasetError

# Rows read at once when scanning big arrays for non-finite values.
_SCAN_BYTES = 64 << 20
# How many offending rows a message lists.
_SHOW = 5


def _rows_text(rows: np.ndarray, ids: np.ndarray | None) -> str:
    shown = rows[:_SHOW].tolist()
    text = f"rows {shown}"
    if ids is not None:
        text += f" (sample ids {ids[rows[:_SHOW]].tolist()})"
    if rows.size > _SHOW:
        text += f" and {rows.size - _SHOW} more"
    return text


def _valid_shard(value: Any) -> bool:
    parts = str(value).split("/")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return False
    i, n = int(parts[0]), int(parts[1])
    return 0 <= i < n


class _Checker:
    def __init__(self, path: Path, f: h5py.File, deep: bool) -> None:
        self.path = path
        self.f = f
        self.deep = deep
        self.problems: list[str] = []
        self.n: int | None = None
        self.ids: np.ndarray | None = None

    def add(self, key: str, what: str) -> None:
        self.problems.append(f"{self.path}: {key}: {what}")

    def guard(self, key: str, fn: Callable[[], None]) -> None:
        """Run one check; an unreadable object is a defect, not a crash."""
        try:
            fn()
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            self.add(key, f"cannot be read: {exc}")

    def dataset(self, key: str, required: bool, why: str = "") -> h5py.Dataset | None:
        obj = self.f.get(key)
        if obj is None:
            if required:
                self.add(key, f"missing required dataset{why}")
            return None
        if not isinstance(obj, h5py.Dataset):
            self.add(key, f"expected a dataset, found a {type(obj).__name__}")
            return None
        return obj

    # -- checks ---------------------------------------------------------------------------------

    def run(self) -> None:
        meta = self.f.get(L.METADATA)
        attrs: dict[str, Any] = dict(meta.attrs) if isinstance(meta, h5py.Group) else {}
        self.legacy = L.ATTR_SCHEMA_VERSION not in attrs
        self.selected = attrs.get(L.ATTR_SPLIT_SELECTED) \
            if attrs.get(L.ATTR_KIND) == L.KIND_REPLAY else None
        params = self.f.get(L.PARAMS)
        if isinstance(params, h5py.Dataset) and params.ndim == 2:
            self.n = int(params.shape[0])
        if not self.legacy:
            self.guard(L.METADATA, lambda: self.check_attrs(attrs))
            self.guard(L.SAMPLE_IDS, self.check_ids)
        self.guard(L.PARAMS, self.check_params)
        self.guard(L.INPUTS, self.check_inputs)
        self.guard(L.OUTPUTS, self.check_outputs)
        self.guard(L.METADATA, self.check_per_sample)

    def check_attrs(self, attrs: dict[str, Any]) -> None:
        where = L.METADATA + "@"
        version = attrs[L.ATTR_SCHEMA_VERSION]
        if not isinstance(version, int | np.integer) or int(version) != L.SCHEMA_VERSION:
            self.add(where + L.ATTR_SCHEMA_VERSION,
                     f"expected {L.SCHEMA_VERSION}, found {version!r}")
        seed = attrs.get(L.ATTR_DATASET_SEED)
        if not isinstance(seed, int | np.integer):
            self.add(where + L.ATTR_DATASET_SEED, f"expected an integer attribute, found {seed!r}")
        for key in L.JSON_ATTRS:
            if key not in attrs:
                if key != L.ATTR_SAMPLING_METRICS:
                    self.add(where + key, "missing attribute (expected JSON)")
                continue
            raw = attrs[key]
            try:
                value = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
            except json.JSONDecodeError as exc:
                self.add(where + key, f"expected JSON, found invalid text ({exc})")
                continue
            if key == L.ATTR_THETA_NAMES:
                params = self.f.get(L.PARAMS)
                p = params.shape[1] if isinstance(params, h5py.Dataset) and params.ndim == 2 \
                    else None
                if not isinstance(value, list) or (p is not None and len(value) != p):
                    self.add(where + key, f"expected a list of {p} slot names (θ dim), "
                                          f"found {value!r}")
        kind = attrs.get(L.ATTR_KIND)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind not in L.KINDS:
            self.add(where + L.ATTR_KIND, f"expected one of {L.KINDS}, found {kind!r}")
        if kind == L.KIND_REPLAY:
            sel = attrs.get(L.ATTR_SPLIT_SELECTED)
            if sel not in L.REPLAY_SPLITS:
                self.add(where + L.ATTR_SPLIT_SELECTED,
                         f"expected one of {L.REPLAY_SPLITS}, found {sel!r}")
            sha = attrs.get(L.ATTR_SOURCE_SHA256)
            if not (isinstance(sha, str) and len(sha) == 64):
                self.add(where + L.ATTR_SOURCE_SHA256,
                         f"expected a sha256 hex digest, found {sha!r}")
            shard = attrs.get(L.ATTR_SHARD)
            if shard is not None and not _valid_shard(shard):
                self.add(where + L.ATTR_SHARD, f"expected 'I/N' with 0 ≤ I < N, found {shard!r}")
        params = self.f.get(L.PARAMS)
        count = attrs.get(L.ATTR_NUM_PARAMETER_SETS)
        if isinstance(params, h5py.Dataset) and params.ndim >= 1 \
                and count is not None and int(count) != params.shape[0]:
            self.add(where + L.ATTR_NUM_PARAMETER_SETS,
                     f"expected {params.shape[0]} (rows of {L.PARAMS}), found {count}")

    def check_ids(self) -> None:
        ds = self.dataset(L.SAMPLE_IDS, required=True, why=" (a file of this schema stores ids)")
        if ds is None:
            return
        if ds.ndim != 1 or not np.issubdtype(ds.dtype, np.integer):
            self.add(L.SAMPLE_IDS, f"expected [N] integers, found shape {ds.shape} {ds.dtype}")
            return
        if not self._check_vector(L.SAMPLE_IDS, ds):
            return
        ids = np.asarray(ds[()], dtype=np.int64)
        uniq, counts = np.unique(ids, return_counts=True)
        dup = uniq[counts > 1]
        if dup.size:
            self.add(L.SAMPLE_IDS, f"expected unique ids, found {dup.size} repeated: "
                                   f"{dup[:_SHOW].tolist()}")
        if ids.size and ids.min() < 0:
            self.add(L.SAMPLE_IDS, f"expected non-negative ids, found {int(ids.min())}")
        self.ids = ids

    def check_params(self) -> None:
        ds = self.dataset(L.PARAMS, required=True)
        if ds is None:
            return
        if ds.ndim != 2:
            self.add(L.PARAMS, f"expected a 2-D array [N, P], found shape {ds.shape}")
            return
        if not np.issubdtype(ds.dtype, np.floating):
            self.add(L.PARAMS, f"expected floats, found dtype {ds.dtype}")
            return
        self.n = int(ds.shape[0])
        if not self.legacy and ds.dtype != np.float64:
            self.add(L.PARAMS, f"expected float64, found {ds.dtype}")
        theta = np.asarray(ds[()], dtype=np.float64)
        ids = self.ids if self.ids is not None and self.ids.shape == (self.n,) else None
        bad = np.flatnonzero(~np.all(np.isfinite(theta), axis=1))
        if bad.size:
            self.add(L.PARAMS, f"expected finite θ, found NaN/inf at {_rows_text(bad, ids)}")
        with np.errstate(invalid="ignore"):
            out = np.flatnonzero(np.any((theta < 0.0) | (theta > 1.0), axis=1))
        if out.size:
            lo, hi = np.nanmin(theta), np.nanmax(theta)
            self.add(L.PARAMS, f"expected θ in [0, 1], found values in [{lo:g}, {hi:g}] at "
                               f"{_rows_text(out, ids)}")

    def _scan_finite(self, key: str, ds: h5py.Dataset) -> None:
        row_bytes = max(1, int(np.prod(ds.shape[1:])) * ds.dtype.itemsize)
        step = max(1, _SCAN_BYTES // row_bytes)
        bad: list[int] = []
        for start in range(0, ds.shape[0], step):
            block = ds[start:start + step]
            finite = np.isfinite(block).reshape(block.shape[0], -1).all(axis=1)
            bad.extend((start + np.flatnonzero(~finite)).tolist())
        if bad:
            ids = self.ids if self.ids is not None and self.ids.shape == (self.n,) else None
            self.add(key, f"expected finite values, found NaN/inf at "
                          f"{_rows_text(np.asarray(bad), ids)}")

    def check_inputs(self) -> None:
        ds = self.dataset(L.INPUTS, required=True)
        if ds is None:
            return
        if ds.ndim != 4:
            self.add(L.INPUTS, f"expected shape [N, C, H, W], found {ds.shape}")
            return
        if self.n is not None and ds.shape[0] != self.n:
            self.add(L.INPUTS, f"expected shape {(self.n, *ds.shape[1:])} (N = {self.n} rows of "
                               f"{L.PARAMS}), found {ds.shape}")
        if not np.issubdtype(ds.dtype, np.floating):
            self.add(L.INPUTS, f"expected floats, found dtype {ds.dtype}")
            return
        self._scan_finite(L.INPUTS, ds)

    def check_outputs(self) -> None:
        obj = self.f.get(L.OUTPUTS)
        if obj is None or (self.legacy and isinstance(obj, h5py.Group)):
            return  # no trajectories (the original's feature-only mode left a bare group)
        ds = self.dataset(L.OUTPUTS, required=False)
        if ds is None:
            return
        inputs = self.f.get(L.INPUTS)
        field = tuple(inputs.shape[1:]) if isinstance(inputs, h5py.Dataset) \
            and inputs.ndim == 4 else None
        if self.legacy and ds.ndim == 5:
            return  # the original's snapshot mode [N, M, C, H, W]: not trajectories
        steps = ds.attrs.get(L.ATTR_NUM_STEPS)
        if steps is None and not self.legacy:
            self.add(f"{L.OUTPUTS}@{L.ATTR_NUM_STEPS}", "missing attribute (expected S, the "
                                                        "number of updates)")
        n = "N" if self.n is None else str(self.n)
        m = str(ds.shape[1]) if ds.ndim == 6 else "M"
        s1 = "S+1" if steps is None else str(int(steps) + 1)
        c_h_w = "C, H, W" if field is None else ", ".join(map(str, field))
        expected = f"({n}, {m}, {s1}, {c_h_w})"
        ok = ds.ndim == 6 \
            and (self.n is None or ds.shape[0] == self.n) \
            and (steps is None or ds.shape[2] == int(steps) + 1) \
            and (field is None or tuple(ds.shape[3:]) == field)
        if not ok:
            self.add(L.OUTPUTS, f"expected shape {expected} (num_steps = "
                                f"{None if steps is None else int(steps)}), found {ds.shape}")
            return
        if ds.dtype not in (np.float32, np.float16):
            self.add(L.OUTPUTS, f"expected float32 or float16, found {ds.dtype}")
        if self.deep:
            self._scan_finite(L.OUTPUTS, ds)

    def check_per_sample(self) -> None:
        required = not self.legacy
        why = " (a file of this schema stores it)"
        for key in (L.SPLIT, L.IC_TYPES, L.POLICIES, L.NOISE_REGIMES):
            ds = self.dataset(key, required, why)
            if ds is None or not self._check_vector(key, ds):
                continue
            if ds.dtype.kind != "O" and ds.dtype.kind != "S":
                self.add(key, f"expected utf-8 strings, found dtype {ds.dtype}")
                continue
            values = np.asarray(ds.asstr()[()], dtype=str)
            if key == L.SPLIT and self.selected in SPLITS:
                off = np.flatnonzero(values != self.selected)
                if off.size:
                    self.add(key, f"expected only {self.selected!r} (split_selected of this "
                                  f"replay file), found {sorted(set(values[off].tolist()))} at "
                                  f"{_rows_text(off, self.ids)}")
            allowed: tuple[str, ...] | None = {
                L.SPLIT: SPLITS, L.NOISE_REGIMES: L.NOISE_REGIMES_NAMES,
                L.POLICIES: UPDATE_POLICIES if not self.legacy else None,
            }.get(key)
            if allowed is not None:
                bad = np.flatnonzero(~np.isin(values, allowed))
                if bad.size:
                    found = sorted(set(values[bad].tolist()))[:_SHOW]
                    self.add(key, f"expected values in {allowed}, found {found} at "
                                  f"{_rows_text(bad, self.ids)}")
        ds = self.dataset(L.GRID_SIZES, required, why)
        if ds is not None and self._check_vector(L.GRID_SIZES, ds):
            inputs = self.f.get(L.INPUTS)
            if isinstance(inputs, h5py.Dataset) and inputs.ndim == 4:
                sizes = np.asarray(ds[()])
                bad = np.flatnonzero(sizes > inputs.shape[-1])
                if bad.size:
                    self.add(L.GRID_SIZES, f"expected sizes ≤ {inputs.shape[-1]} (the stored "
                                           f"grid), found larger at {_rows_text(bad, self.ids)}")
        for p, key in L.SEED_KEYS.items():
            ds = self.dataset(key, required, f" (seeds '{p}' are required for a file of this "
                                             "schema)")
            if ds is None or not self._check_vector(key, ds):
                continue
            if not np.issubdtype(ds.dtype, np.integer):
                self.add(key, f"expected int64 seeds, found dtype {ds.dtype}")
            elif ds.size and np.asarray(ds[()]).min() < 0:
                self.add(key, "expected non-negative seeds, found negative values")

    def _check_vector(self, key: str, ds: h5py.Dataset) -> bool:
        if ds.ndim != 1 or (self.n is not None and ds.shape[0] != self.n):
            self.add(key, f"expected shape ({'N' if self.n is None else self.n},), "
                          f"found {ds.shape}")
            return False
        return True


def validate_dataset(path: str | Path, *, deep: bool = False) -> list[str]:
    """Every defect of the file at ``path`` as ``FILE: KEY: expected …, found …`` lines.

    An empty list means the file is valid. ``deep=True`` also scans ``outputs/fields`` for
    non-finite values (it reads every trajectory; ``inputs/fields`` is always scanned).
    """
    p = Path(path)
    try:
        f = open_hdf5(p)
    except DatasetError as exc:
        return [str(exc)]
    try:
        checker = _Checker(p, f, deep)
        checker.run()
        return checker.problems
    finally:
        f.close()


def check_dataset(path: str | Path, *, deep: bool = False, max_problems: int = 5) -> None:
    """Raise ``DatasetError`` listing the first ``max_problems`` defects, if there are any."""
    problems = validate_dataset(path, deep=deep)
    if not problems:
        return
    shown = problems[:max_problems]
    more = len(problems) - len(shown)
    text = "\n".join(shown) + (f"\n… and {more} more problem(s)" if more else "")
    raise DatasetError(text)
