"""Stages ``noa replay`` and ``noa replay merge``: ground truth for a split, in shards.

A replay file has the dataset layout (``kind = "replay"``) restricted to the selected samples,
ordered by sample id, with trajectories [n, M, S+1, C, H, W] rebuilt from θ and the stored seeds.
Shards are contiguous slices of that order, so merging them in shard order reproduces the
single-job file array for array.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from noa_core.config import NOAConfig, config_from_dict, load_config
from noa_core.data import layout as L
from noa_core.data.hdf5_reader import DatasetReader
from noa_core.data.hdf5_writer import DatasetWriter
from noa_core.data.manifest import sha256_file
from noa_core.data.parallel import default_workers, map_ordered
from noa_core.dynamics.parameters import ThetaSpace
from noa_core.dynamics.replay import CNOReplayer, Sample
from noa_core.errors import DatasetError

# Groups that layers above the data layer add to a replay file (features, tokens): a merge
# carries them over without knowing what they mean.
EXTRA_GROUPS: tuple[str, ...] = ("features", "tokens")


def _setup(cfg_dict: dict[str, Any], device: str) -> CNOReplayer:
    return CNOReplayer(NOAConfig.model_validate(cfg_dict), cache_size=0, device=device)


def _replay_one(replayer: CNOReplayer, job: tuple[Sample, np.ndarray, int, int]) -> np.ndarray:
    sample, ic, steps, m = job
    return replayer.rollout(sample, ic, steps, m).numpy()


def _config_of(reader: DatasetReader, override: str | Path | None) -> NOAConfig:
    if override is not None:
        return load_config(override)
    if reader.config is None:
        raise DatasetError(f"{reader.path}: /metadata@config is missing (a file in the original "
                           "layout); pass --config with the configuration it was made with")
    return config_from_dict(reader.config, f"{reader.path}:/metadata@config")


def select_rows(reader: DatasetReader, split: str, shard: tuple[int, int]) -> np.ndarray:
    """Row indices of shard I/N of ``split`` ('all' or a split name), ordered by sample id."""
    rows = (np.arange(reader.num_samples) if split == "all"
            else reader.indices_of_split(split))
    rows = rows[np.argsort(reader.sample_ids[rows], kind="stable")]
    i, n = shard
    return np.array_split(rows, n)[i]


def replay_dataset(dataset: str | Path, out: str | Path, *, split: str = "all",
                   steps: int | None = None, realizations: int | None = None,
                   shard: tuple[int, int] = (0, 1), config: str | Path | None = None,
                   workers: int | None = None, progress: bool = True,
                   device: str | None = None) -> dict[str, Any]:
    """Replay shard ``I/N`` of ``split`` of ``dataset`` into ``out``; returns a summary."""
    started = time.perf_counter()
    with DatasetReader(dataset) as reader:
        cfg = _config_of(reader, config)
        dyn = cfg.dynamics
        steps = dyn.steps if steps is None else steps
        m = dyn.realizations if realizations is None else realizations
        space = ThetaSpace(cfg.parameter_space, dyn)
        if reader.theta_dim != space.dim:
            raise DatasetError(f"{dataset}: parameters/params has {reader.theta_dim} θ slots, "
                               f"the configuration declares {space.dim} ({space.names})")
        rows = select_rows(reader, split, shard)
        if rows.size == 0:
            raise DatasetError(f"{dataset}: shard {shard[0]}/{shard[1]} of split {split!r} holds "
                               "no samples; use fewer shards")
        theta = reader.theta[rows]
        ids = reader.sample_ids[rows]
        seeds = [reader.seeds(int(r)) for r in rows]
        ics = reader.ics(rows)
        labels = {
            "split": reader.split[rows], "ic_type": _or_unknown(reader.ic_types, rows),
        }
        attrs = {
            L.ATTR_KIND: L.KIND_REPLAY,
            L.ATTR_DATASET_SEED: reader.dataset_seed,
            L.ATTR_THETA_NAMES: reader.theta_names,
            L.ATTR_CONFIG: cfg.model_dump(mode="json"),
            L.ATTR_SPLIT_SELECTED: split,
            L.ATTR_SOURCE_SHA256: sha256_file(Path(dataset)),
            L.ATTR_SHARD: f"{shard[0]}/{shard[1]}",
        }
    jobs = [(Sample(int(ids[k]), theta[k], seeds[k]), ics[k], steps, m) for k in range(len(rows))]
    workers = default_workers(len(jobs), workers)
    dev = device or dyn.device
    if dev.startswith("cuda"):
        workers = 1  # one device; its replayer already isolates every rollout in a worker
    trajs = map_ordered(_replay_one, jobs, setup=_setup,
                        setup_args=(cfg.model_dump(mode="json"), dev), workers=workers,
                        desc=f"replay {split} {shard[0]}/{shard[1]}", unit="op",
                        progress=progress)
    with DatasetWriter(out, num_samples=len(rows), theta_dim=theta.shape[1],
                       channels=dyn.channels, grid=dyn.grid, realizations=m, num_steps=steps,
                       trajectory_dtype=cfg.dataset.trajectory_dtype,
                       chunk_samples=cfg.dataset.chunk_samples,
                       compression_level=cfg.dataset.compression_level,
                       metadata=attrs) as writer:
        for k, traj in enumerate(trajs):
            spec = space.map(theta[k])
            writer.write(k, sample_id=int(ids[k]), theta=theta[k], ic=ics[k],
                         ic_type=str(labels["ic_type"][k]), policy=spec.update_policy,
                         noise_scale=spec.noise_scale, split=str(labels["split"][k]),
                         seeds=seeds[k], trajectory=traj)
    return {"out": str(out), "num_samples": len(rows), "split": split,
            "shard": f"{shard[0]}/{shard[1]}", "steps": steps, "realizations": m,
            "workers": workers, "seconds": round(time.perf_counter() - started, 2)}


def _or_unknown(values: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    return np.full(len(rows), "unknown") if values is None else values[rows]


def _part_key(reader: DatasetReader) -> dict[str, Any]:
    a = reader.attrs
    return {
        "source_sha256": a.get(L.ATTR_SOURCE_SHA256), "split": a.get(L.ATTR_SPLIT_SELECTED),
        "num_steps": reader.num_steps, "realizations": reader.num_realizations,
        "dtype": str(reader.trajectory_dtype), "theta_names": reader.theta_names,
        "config": reader.config, "shape": reader.field_shape,
    }


def merge_replays(parts: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Merge replay shards into ``out``, ordered by sample id; returns a summary.

    Refuses files that are not replay shards, shards of another source, split or settings,
    repeated or missing shard indices, and repeated sample ids.
    """
    if not parts:
        raise DatasetError("no replay shards to merge")
    readers = [DatasetReader(p) for p in parts]
    try:
        return _merge(readers, out)
    finally:
        for r in readers:
            r.close()


def _merge(readers: list[DatasetReader], out: str | Path) -> dict[str, Any]:
    first = readers[0]
    key0 = _part_key(first)
    shards: dict[int, DatasetReader] = {}
    total = None
    for r in readers:
        if r.kind != L.KIND_REPLAY:
            raise DatasetError(f"{r.path}: /metadata@kind is {r.kind!r}, expected a replay shard")
        key = _part_key(r)
        diff = [k for k in key0 if key[k] != key0[k]]
        if diff:
            raise DatasetError(f"{r.path}: differs from {first.path} in {', '.join(diff)}; "
                               "shards must come from one replay of one dataset")
        i, n = (int(x) for x in str(r.attrs.get(L.ATTR_SHARD, "0/1")).split("/"))
        if total is not None and n != total:
            raise DatasetError(f"{r.path}: shard {i}/{n}, but other shards are of {total}")
        total = n
        if i in shards:
            raise DatasetError(f"{r.path}: shard {i}/{n} is given twice "
                               f"(also {shards[i].path})")
        shards[i] = r
    missing = sorted(set(range(total or 0)) - set(shards))
    if missing:
        raise DatasetError(f"missing replay shard(s) {missing} of {total}; merging would "
                           "silently drop samples")
    ordered = [shards[i] for i in sorted(shards)]
    ids = np.concatenate([r.sample_ids for r in ordered])
    dup = np.unique(ids[np.argsort(ids)][1:][np.diff(np.sort(ids)) == 0])
    if dup.size:
        raise DatasetError(f"sample ids {dup[:5].tolist()} appear in more than one shard")
    n = int(ids.size)
    attrs = {k: first.attrs[k] for k in first.attrs
             if k not in (L.ATTR_SCHEMA_VERSION, L.ATTR_VERSION, L.ATTR_CREATION_DATE,
                          L.ATTR_NUM_PARAMETER_SETS, L.ATTR_GRID_SIZE)}
    attrs[L.ATTR_SHARD] = "0/1"
    attrs[L.ATTR_THETA_NAMES] = first.theta_names
    attrs[L.ATTR_DATASET_SEED] = int(attrs[L.ATTR_DATASET_SEED])
    cfg = config_from_dict(key0["config"] or {}, f"{first.path}:/metadata@config")
    space = ThetaSpace(cfg.parameter_space, cfg.dynamics)
    c, g, _ = first.field_shape
    extras = _extra_datasets(ordered)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.merge-tmp")
    with DatasetWriter(tmp, num_samples=n, theta_dim=first.theta_dim, channels=c, grid=g,
                       realizations=first.num_realizations, num_steps=first.num_steps,
                       trajectory_dtype=str(first.trajectory_dtype),
                       chunk_samples=cfg.dataset.chunk_samples,
                       compression_level=cfg.dataset.compression_level,
                       metadata=attrs) as writer:
        row = 0
        for r in ordered:
            for k in range(r.num_samples):
                writer.write(row, sample_id=int(r.sample_ids[k]), theta=r.theta[k],
                             ic=r.ic(k), ic_type=str(r.ic_types[k]), policy=str(r.policies[k]),
                             noise_scale=space.map(r.theta[k]).noise_scale, split=str(r.split[k]),
                             seeds=r.seeds(k), trajectory=_stored_trajectory(r, k))
                row += 1
    try:
        _copy_extra_datasets(ordered, extras, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"out": str(out), "num_samples": n, "num_parts": len(ordered),
            "extra_datasets": extras}


def _extra_datasets(parts: list[DatasetReader]) -> list[str]:
    """Per-sample datasets outside the layout (e.g. features, tokens) present in every part.

    A dataset present in some parts only would be silently lost or partial: refused.
    """
    def names(r: DatasetReader) -> set[str]:
        found: set[str] = set()
        for group in EXTRA_GROUPS:
            obj = r.file.get(group)
            if isinstance(obj, h5py.Group):
                for key, item in _walk(obj):
                    if isinstance(item, h5py.Dataset):
                        found.add(f"{group}/{key}")
        return found

    sets = [names(r) for r in parts]
    if any(s != sets[0] for s in sets):
        odd = next(r for r, s in zip(parts, sets, strict=True) if s != sets[0])
        raise DatasetError(f"{odd.path}: holds {sorted(names(odd))}, {parts[0].path} holds "
                           f"{sorted(sets[0])}; all shards need the same feature/token groups")
    return sorted(sets[0])


def _walk(group: h5py.Group) -> list[tuple[str, h5py.HLObject]]:
    items: list[tuple[str, h5py.HLObject]] = []
    group.visititems(lambda key, item: items.append((key, item)))
    return items


def _copy_extra_datasets(parts: list[DatasetReader], keys: list[str], dest: Path) -> None:
    """Concatenate each extra dataset over the parts (in shard order) into ``dest``, with the
    group attributes of the first part (they describe the schema, equal across shards)."""
    if not keys:
        return
    with h5py.File(dest, "r+") as f:
        for key in keys:
            arrays = [np.asarray(r.file[key][()]) for r in parts]
            f.create_dataset(key, data=np.concatenate(arrays), compression="gzip")
            for k, v in parts[0].file[key].attrs.items():
                f[key].attrs[k] = v
        for group in EXTRA_GROUPS:
            if group in parts[0].file:
                for k, v in parts[0].file[group].attrs.items():
                    f[group].attrs[k] = v


def _stored_trajectory(reader: DatasetReader, k: int) -> np.ndarray:
    # Read in the stored dtype so a float16 shard is copied without a round trip.
    return np.asarray(reader.file[L.OUTPUTS][k])
