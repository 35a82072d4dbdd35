"""Feature groups in HDF5 files, and the stage ``noa features extract``.

Groups keep the original system's names (``spinlock_vqvae.md`` §1); N rows as in the file:

==========================================  =====================  =============================
path                                        shape (float32)        family
==========================================  =====================  =============================
``features/initial/aggregated/features``    [N, 14]                INITIAL
``features/summary/per_trajectory/features``  [N, M, D_s]          SUMMARY per realization
``features/summary/aggregated/features``    [N, 3·D_s]             SUMMARY mean | std | cv over M
``features/temporal/features``              [N, H+1, D_t]          TEMPORAL
==========================================  =====================  =============================

Attributes of the ``features`` group: ``feature_schema`` (the schema's canonical JSON),
``feature_schema_digest``, ``feature_registry`` (JSON ``{family: {name: column}}``),
``feature_schema_version``, ``window_start`` (K: the window holds states K … K + H of
``outputs/fields``) and ``horizon`` (H). Each dataset also carries its column ``names`` (JSON).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from noa_core.data import layout as L
from noa_core.data.hdf5_reader import DatasetReader, open_hdf5
from noa_core.errors import DatasetError
from noa_core.features.extract import FeatureExtractor, Features
from noa_core.features.schema import (
    FEATURE_WINDOW_START,
    FeatureSchema,
    FeatureSchemaError,
    feature_schema,
)

FEATURES_GROUP = "features"
INITIAL_KEY = "features/initial/aggregated/features"
SUMMARY_PER_TRAJECTORY_KEY = "features/summary/per_trajectory/features"
SUMMARY_KEY = "features/summary/aggregated/features"
TEMPORAL_KEY = "features/temporal/features"

ATTR_SCHEMA = "feature_schema"
ATTR_SCHEMA_DIGEST = "feature_schema_digest"
ATTR_REGISTRY = "feature_registry"
ATTR_SCHEMA_VERSION = "feature_schema_version"
ATTR_WINDOW_START = "window_start"
ATTR_HORIZON = "horizon"
ATTR_NAMES = "names"

#: Operators per extractor call in ``noa features extract``. One call already vectorises over
#: M·T·C frames and the work is memory-bound, so larger batches do not lower the time per
#: operator on CPU (``benchmarks/bench_features.py``); small ones keep temporaries in cache.
DEFAULT_BATCH_SIZE = 4


def _family_arrays(f: Features, schema: FeatureSchema
                   ) -> list[tuple[str, np.ndarray, tuple[str, ...], tuple[int | None, ...]]]:
    """(key, array, names, expected trailing shape) of each family (None: any size)."""
    return [
        (INITIAL_KEY, _np(f.initial), schema.initial, (schema.initial_dim,)),
        (SUMMARY_PER_TRAJECTORY_KEY, _np(f.summary_per_realization), schema.summary,
         (None, schema.summary_dim)),
        (SUMMARY_KEY, _np(f.summary), schema.summary_aggregated,
         (schema.summary_aggregated_dim,)),
        (TEMPORAL_KEY, _np(f.temporal), schema.temporal, (schema.states, schema.temporal_dim)),
    ]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


def _check_arrays(where: str, arrays: list[tuple[str, np.ndarray, tuple[str, ...],
                                                  tuple[int | None, ...]]]) -> int:
    n = int(arrays[0][1].shape[0])
    for key, arr, _, trailing in arrays:
        shape = arr.shape
        ok = (len(shape) == 1 + len(trailing) and shape[0] == n
              and all(e is None or e == s for e, s in zip(trailing, shape[1:], strict=True)))
        if not ok:
            want = ", ".join(["N", *("any" if e is None else str(e) for e in trailing)])
            raise DatasetError(f"{where}: {key}: expected shape [{want}] with N = {n}, got "
                               f"{list(shape)}")
        bad = ~np.isfinite(arr.reshape(n, -1)).all(axis=1)
        if bad.any():
            raise DatasetError(f"{where}: {key}: non-finite features in rows "
                               f"{np.flatnonzero(bad)[:8].tolist()}")
    return n


@contextmanager
def _writable(h5file_or_path: h5py.File | str | Path) -> Iterator[h5py.File]:
    if isinstance(h5file_or_path, h5py.File):
        yield h5file_or_path
        return
    path = Path(h5file_or_path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r+")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot open for writing: {exc}") from None
    try:
        yield f
    finally:
        f.close()


def write_feature_groups(h5file_or_path: h5py.File | str | Path, features: Features,
                         schema: FeatureSchema, *, context: int | None = None,
                         compression_level: int = 4) -> None:
    """Write the four feature groups and their attributes (module docstring) into a file.

    ``features`` holds every row of the file (N = rows of ``parameters/params`` when present).
    ``context`` is the window start (default: ``FEATURE_WINDOW_START``, X_0).
    Existing feature groups are replaced. ``DatasetError`` names the file and key on a shape
    mismatch or non-finite values.
    """
    with _writable(h5file_or_path) as f:
        where = str(f.filename)
        arrays = _family_arrays(features, schema)
        n = _check_arrays(where, arrays)
        params = f.get(L.PARAMS)
        if isinstance(params, h5py.Dataset) and params.shape[0] != n:
            raise DatasetError(f"{where}: {FEATURES_GROUP}: {n} feature rows for "
                               f"{params.shape[0]} samples in {L.PARAMS}")
        start = FEATURE_WINDOW_START if context is None else int(context)
        if FEATURES_GROUP in f:
            del f[FEATURES_GROUP]
        group = f.create_group(FEATURES_GROUP)
        gz: dict[str, Any] = ({"compression": "gzip", "compression_opts": compression_level}
                              if compression_level else {})
        for key, arr, names, _ in arrays:
            ds = f.create_dataset(key, data=arr, chunks=(min(max(n, 1), 64), *arr.shape[1:]),
                                  track_times=False, **gz)
            ds.attrs[ATTR_NAMES] = json.dumps(list(names))
        group.attrs[ATTR_SCHEMA] = schema.to_json()
        group.attrs[ATTR_SCHEMA_DIGEST] = schema.digest()
        group.attrs[ATTR_REGISTRY] = json.dumps(schema.registry())
        group.attrs[ATTR_SCHEMA_VERSION] = int(schema.version)
        group.attrs[ATTR_WINDOW_START] = start
        group.attrs[ATTR_HORIZON] = int(schema.horizon)


def _schema_of(f: h5py.File, where: str) -> FeatureSchema:
    group = f.get(FEATURES_GROUP)
    if not isinstance(group, h5py.Group):
        raise DatasetError(f"{where}: {FEATURES_GROUP}: missing group (no features stored; run "
                           "`noa features extract`)")
    raw = group.attrs.get(ATTR_SCHEMA)
    if raw is None:
        raise DatasetError(f"{where}: {FEATURES_GROUP}@{ATTR_SCHEMA}: missing; the features "
                           "cannot be interpreted without their schema (re-extract them)")
    try:
        schema = FeatureSchema.from_json(raw)
    except FeatureSchemaError as exc:
        raise DatasetError(f"{where}: {FEATURES_GROUP}@{ATTR_SCHEMA}: {exc}") from None
    digest = group.attrs.get(ATTR_SCHEMA_DIGEST)
    if digest is not None and str(digest) != schema.digest():
        raise DatasetError(f"{where}: {FEATURES_GROUP}@{ATTR_SCHEMA_DIGEST}: {digest} does not "
                           f"match the stored schema's digest {schema.digest()}")
    return schema


def read_feature_schema(path: str | Path) -> FeatureSchema:
    """The ``FeatureSchema`` stored with a file's features (``DatasetError`` if absent)."""
    with open_hdf5(path) as f:
        return _schema_of(f, str(path))


def read_features(path: str | Path) -> tuple[Features, FeatureSchema]:
    """All feature groups of a file as float32 tensors, with their schema.

    ``DatasetError`` naming the file and key when a group, the schema or a shape is wrong.
    """
    with open_hdf5(path) as f:
        where = str(path)
        schema = _schema_of(f, where)
        data = []
        for key in (INITIAL_KEY, TEMPORAL_KEY, SUMMARY_PER_TRAJECTORY_KEY, SUMMARY_KEY):
            ds = f.get(key)
            if not isinstance(ds, h5py.Dataset):
                raise DatasetError(f"{where}: {key}: missing dataset")
            data.append(torch.from_numpy(np.asarray(ds[()], dtype=np.float32)))
    features = Features(*data)
    _check_arrays(where, _family_arrays(features, schema))
    return features, schema


def window_of(reader: DatasetReader) -> tuple[int, int]:
    """(window start, H): ``FEATURE_WINDOW_START`` and the stored configuration's horizon;
    ``DatasetError`` if the file cannot hold that window."""
    where = str(reader.path)
    if not reader.has_trajectories:
        raise DatasetError(f"{where}: {L.OUTPUTS}: missing; features need trajectories "
                           "(a replay file, or a dataset generated with store_trajectories)")
    cfg = reader.config
    try:
        dyn = cfg["dynamics"]  # type: ignore[index]
        k, h = FEATURE_WINDOW_START, int(dyn["feature_horizon"])
    except (TypeError, KeyError, ValueError):
        raise DatasetError(f"{where}: {L.METADATA}@{L.ATTR_CONFIG}: missing or without "
                           "dynamics.feature_horizon (a file in the original "
                           "layout); the feature window is unknown") from None
    steps = reader.num_steps or 0
    if steps < k + h:
        raise DatasetError(f"{where}: {L.OUTPUTS}: {steps} steps stored, the feature window "
                           f"[{k}, {k} + H] = [{k}, {k + h}] needs at least {k + h}")
    return k, h


def compute_file_features(reader: DatasetReader, *, batch_size: int = DEFAULT_BATCH_SIZE,
                          progress: bool = True) -> tuple[Features, FeatureSchema, int]:
    """Features of the window [start, start + H] of every row: (features, schema, start)."""
    k, h = window_of(reader)
    schema = feature_schema(h)
    extractor = FeatureExtractor(schema)
    ds = reader.file[L.OUTPUTS]
    n = reader.num_samples
    parts = []
    with tqdm(total=n, desc="features", unit="op", disable=not progress,
              dynamic_ncols=True) as bar:
        for lo in range(0, n, max(1, batch_size)):
            hi = min(n, lo + max(1, batch_size))
            window = np.asarray(ds[lo:hi, :, k:k + h + 1], dtype=np.float32)
            with torch.no_grad():
                parts.append(extractor(torch.from_numpy(window)))
            bar.update(hi - lo)
    return Features.concat(parts), schema, k


def add_feature_groups(path: str | Path, *, batch_size: int = DEFAULT_BATCH_SIZE,
                       progress: bool = True) -> dict[str, Any]:
    """Compute the features of a dataset/replay file's trajectories and write them into it.

    For a file this process has just written (e.g. a replay output before it is published).
    Returns a summary (rows, window, dims, schema digest).
    """
    with DatasetReader(path) as reader:
        features, schema, k = compute_file_features(reader, batch_size=batch_size,
                                                    progress=progress)
    write_feature_groups(path, features, schema, context=k)
    return {"num_samples": len(features), "window": [k, k + schema.horizon],
            "temporal_dim": schema.temporal_dim, "summary_dim": schema.summary_dim,
            "tokenizer_input_dim": schema.tokenizer_input_dim,
            "schema": schema.describe(), "schema_digest": schema.digest()}


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def extract_file(src: str | Path, out: str | Path, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 progress: bool = True) -> dict[str, Any]:
    """``noa features extract``: ``out`` = a copy of ``src`` plus its feature groups.

    Features come from the window [0, H] of ``outputs/fields`` (H from the
    stored config). The copy is written under a temporary name beside ``out`` and renamed when
    complete; ``src`` is only read, and ``out == src`` is refused.
    """
    started = time.perf_counter()
    src, out = Path(src), Path(out)
    if _same_file(src, out):
        raise DatasetError(f"{out}: is the input file; `noa features extract` never writes into "
                           "its input, choose another --out")
    with DatasetReader(src) as reader:
        features, schema, k = compute_file_features(reader, batch_size=batch_size,
                                                    progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        shutil.copyfile(src, tmp)
        write_feature_groups(tmp, features, schema, context=k)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"out": str(out), "num_samples": len(features), "window": [k, k + schema.horizon],
            "temporal_dim": schema.temporal_dim, "summary_dim": schema.summary_dim,
            "tokenizer_input_dim": schema.tokenizer_input_dim, "schema": schema.describe(),
            "schema_digest": schema.digest(),
            "seconds": round(time.perf_counter() - started, 2)}
