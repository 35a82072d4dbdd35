"""``noa dataset inspect``: what a dataset holds, as a dict and as text."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from noa_core.config import SPLITS, ConstantParam, config_from_dict
from noa_core.data.hdf5_reader import DatasetReader
from noa_core.data.split import split_ids_hash
from noa_core.dynamics.parameters import ThetaSpace, map_unit

COVERAGE_BINS = 10


def _counts(values: np.ndarray | None) -> dict[str, int] | None:
    if values is None:
        return None
    return dict(sorted(Counter(map(str, values)).items()))


def _slot_coverage(space: ThetaSpace | None, names: list[str], theta: np.ndarray
                   ) -> list[dict[str, Any]]:
    out = []
    for j, name in enumerate(names):
        u = theta[:, j]
        occupied = np.unique(np.minimum((u * COVERAGE_BINS).astype(int), COVERAGE_BINS - 1))
        row: dict[str, Any] = {"slot": name, "u_min": float(u.min()), "u_max": float(u.max()),
                               "u_bins_occupied": f"{occupied.size}/{COVERAGE_BINS}"}
        if space is not None:
            spec = space.specs[j]
            row["type"] = spec.type
            if isinstance(spec, ConstantParam):
                row["constant"] = spec.value
            else:
                values = [map_unit(spec, float(x)) for x in u]
                if spec.type == "continuous":
                    row["value_min"], row["value_max"] = float(min(values)), float(max(values))
                else:
                    row["value_counts"] = dict(sorted(Counter(map(str, values)).items()))
        out.append(row)
    return out


def inspect_dataset(path: str | Path) -> dict[str, Any]:
    """Sizes, θ coverage, constant slots, IC types, policies, split, seeds, sampling figures."""
    with DatasetReader(path) as r:
        space = None
        if r.config is not None:
            cfg = config_from_dict(r.config, f"{path}:/metadata@config")
            space = ThetaSpace(cfg.parameter_space, cfg.dynamics)
        theta = r.theta
        c, h, w = r.field_shape
        ids = r.sample_ids
        report: dict[str, Any] = {
            "file": str(path),
            "bytes": Path(path).stat().st_size,
            "kind": r.kind,
            "layout": "original (legacy)" if r.is_legacy else f"schema {r.schema_version}",
            "num_samples": r.num_samples,
            "theta_dim": r.theta_dim,
            "field": {"channels": c, "height": h, "width": w},
            "trajectories": None if not r.has_trajectories else {
                "realizations": r.num_realizations, "num_steps": r.num_steps,
                "states": (r.num_steps or 0) + 1, "dtype": str(r.trajectory_dtype)},
            "dataset_seed": r.dataset_seed,
            "seeds": ("derived from the sample index and θ bytes (original layout stores none)"
                      if r.is_legacy else "stored per sample (metadata/seeds)"),
            "split_source": ("derived with split_of(index, seed from θ bytes)" if r.is_legacy
                             else "stored (metadata/split)"),
            "split": {s: int((r.split == s).sum()) for s in SPLITS},
            "split_ids_sha256": {s: split_ids_hash(ids[r.split == s]) for s in SPLITS},
            "constant_slots": space.constant if space else None,
            "theta_coverage": _slot_coverage(space, r.theta_names, theta),
            "ic_types": _counts(r.ic_types),
            "policies": _counts(r.policies),
            "noise_regimes": _counts(r.noise_regimes),
            "sampling": r.sampling_metrics,
        }
        for key in ("split_selected", "shard", "source_sha256"):
            if key in r.attrs:
                report[key] = str(r.attrs[key])
    return report


def format_report(rep: dict[str, Any]) -> str:
    """The report as aligned text for a terminal."""
    f = rep["field"]
    lines = [
        f"{rep['file']}  ({rep['kind']}, {rep['layout']}, {rep['bytes'] / 1e6:.1f} MB)",
        f"  operators      {rep['num_samples']}   θ slots {rep['theta_dim']}   field "
        f"{f['channels']}×{f['height']}×{f['width']}",
    ]
    t = rep["trajectories"]
    lines.append("  trajectories   " + ("none stored" if t is None else
                                      f"{t['realizations']} realizations × {t['states']} states "
                                      f"(S = {t['num_steps']}), {t['dtype']}"))
    s = rep["split"]
    lines += [
        f"  split          train {s['train']} / val {s['val']} / test {s['test']}   "
        f"({rep['split_source']})",
        f"  seeds          dataset seed {rep['dataset_seed']}; {rep['seeds']}",
    ]
    for key in ("ic_types", "policies", "noise_regimes"):
        if rep[key] is not None:
            lines.append(f"  {key:<14} " + ", ".join(f"{k} {v}" for k, v in rep[key].items()))
    if rep["constant_slots"]:
        lines.append("  constant slots " + ", ".join(f"{k}={v}" for k, v in
                                                     rep["constant_slots"].items()))
    lines.append("  θ coverage (sampled slots)")
    for row in rep["theta_coverage"]:
        if "constant" in row:
            continue
        if "value_min" in row:
            vals = f"{row['value_min']:.3g} … {row['value_max']:.3g}"
        elif "value_counts" in row:
            vals = ", ".join(f"{k}: {v}" for k, v in row["value_counts"].items())
        else:
            vals = "(no config: unit values only)"
        lines.append(f"    {row['slot']:<20} u ∈ [{row['u_min']:.3f}, {row['u_max']:.3f}] "
                     f"bins {row['u_bins_occupied']:<6} {vals}")
    q = rep["sampling"]
    if q:
        lines.append(f"  Sobol quality  centred discrepancy {q['centred_discrepancy']:.2e}, "
                     f"max |r| {q['max_abs_correlation']:.3f} over {q['num_dims']} dims")
    return "\n".join(lines)
