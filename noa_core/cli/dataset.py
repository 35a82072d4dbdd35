"""``noa dataset generate|validate|inspect``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from noa_core.cli.args import add_progress, add_workers, non_negative, positive


def _cmd_generate(a: argparse.Namespace) -> int:
    from noa_core.config import load_config
    from noa_core.data.generate import generate_dataset

    summary = generate_dataset(load_config(a.config), a.out, num_samples=a.n, seed=a.seed,
                               workers=a.workers, progress=a.progress)
    s = summary["split"]
    print(f"wrote {summary['out']}: {summary['num_samples']} operators "
          f"(train {s['train']} / val {s['val']} / test {s['test']}), "
          f"{summary['realizations']} realizations × {summary['steps']} steps, "
          f"seed {summary['seed']}, {summary['seconds']:.1f} s on {summary['workers']} worker(s)")
    q = summary["sampling"]
    print(f"θ Sobol draw: centred discrepancy {q['centred_discrepancy']:.2e}, "
          f"max |r| {q['max_abs_correlation']:.3f} over {q['num_dims']} sampled slots"
          + ("" if q["acceptable"] else "  (above the original's thresholds: few samples)"))
    return 0


def _cmd_validate(a: argparse.Namespace) -> int:
    from noa_core.data.validate import validate_dataset

    problems = validate_dataset(a.file, deep=not a.quick)
    if problems:
        for line in problems:
            print(f"noa: error: {line}", file=sys.stderr)
        return 1
    print(f"{a.file}: valid")
    return 0


def _cmd_inspect(a: argparse.Namespace) -> int:
    from noa_core.data.inspect import format_report, inspect_dataset

    report = inspect_dataset(a.file)
    print(json.dumps(report, indent=2) if a.json else format_report(report))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    ds = sub.add_parser("dataset", help="generate, validate and inspect operator datasets",
                        description="Operator datasets: θ, initial conditions, trajectories.")
    dsub = ds.add_subparsers(dest="action", required=True, metavar="ACTION")

    g = dsub.add_parser(
        "generate", help="sample θ, draw ICs, roll out, write an HDF5 dataset",
        description="Sample θ with a seeded scrambled Sobol sequence, draw one initial "
                    "condition per operator, roll every operator out with M realizations "
                    "over K_max + H steps, and write FILE atomically (temporary name, then "
                    "rename). Two runs with the same seed write identical arrays.")
    g.add_argument("--config", required=True, metavar="CFG",
                   help="preset name (tiny, small, paper) or YAML path")
    g.add_argument("--out", required=True, type=Path, metavar="FILE", help="output .h5 path")
    g.add_argument("--n", type=positive, default=None,
                   help="number of operators (default: dataset.num_samples)")
    g.add_argument("--seed", type=non_negative, default=None,
                   help="dataset seed (default: dataset.seed)")
    add_workers(g)
    add_progress(g)
    g.set_defaults(func=_cmd_generate)

    v = dsub.add_parser("validate", help="check a dataset file; exit 1 naming every defect",
                        description="Check layout, shapes, dtypes, θ range and finiteness, "
                                    "split labels, ids and seeds.")
    v.add_argument("file", type=Path, metavar="FILE")
    v.add_argument("--quick", action="store_true",
                   help="skip the finiteness scan of the trajectories (large files)")
    v.set_defaults(func=_cmd_validate)

    i = dsub.add_parser("inspect", help="sizes, θ coverage, constant slots, policies, split",
                        description="Summarise a dataset: sizes, per-slot θ coverage, constant "
                                    "slots, IC types, policies, noise regimes, split counts, "
                                    "seeds (stored or derived for the original layout) and the "
                                    "Sobol quality figures.")
    i.add_argument("file", type=Path, metavar="FILE")
    i.add_argument("--json", action="store_true", help="print the report as JSON")
    i.set_defaults(func=_cmd_inspect)
