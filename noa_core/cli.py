"""``noa``: one subcommand per stage, each a thin door to a ``noa_core`` stage function.

Bad input exits 1 with one clear line on stderr (``noa: error: ...``); usage errors exit 2.
Long work shows a progress bar on stderr; summaries go to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from noa_core import __version__
from noa_core.errors import NOAError

EPILOG = """\
Stages (ARCHITECTURE.md, CLI contract):
  noa dataset generate --config CFG --out FILE   operator dataset (θ, ICs, trajectories)
  noa dataset validate FILE                      exit 1 with a precise message on any defect
  noa dataset inspect FILE                       sizes, θ coverage, constant slots, split, seeds
  noa replay --dataset FILE --out FILE           a split's ground truth, bit-identical
  noa replay merge PART... --out FILE            merge replay shards
  noa config show CFG                            the resolved configuration as YAML

CFG is a preset name (tiny, small, paper) or a YAML file (which may `extends: PRESET`).
"""


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N (e.g. 0/3), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"shard I/N needs 0 ≤ I < N, got {text!r}")
    return i, n


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {value}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="hide progress bars (they go to stderr)")


def _workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=_positive, default=None,
                   help="processes sharing the samples (default: the available CPUs); "
                        "results are identical for any count")


# --- handlers -------------------------------------------------------------------------------


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


def _cmd_replay(a: argparse.Namespace) -> int:
    from noa_core.data.replay_stage import replay_dataset

    summary = replay_dataset(a.dataset, a.out, split=a.split, steps=a.steps,
                             realizations=a.realizations, shard=a.shard, config=a.config,
                             workers=a.workers, progress=a.progress, device=a.device)
    print(f"wrote {summary['out']}: {summary['num_samples']} operators of split "
          f"{summary['split']} (shard {summary['shard']}), {summary['realizations']} "
          f"realizations × {summary['steps']} steps, {summary['seconds']:.1f} s")
    return 0


def _cmd_merge(a: argparse.Namespace) -> int:
    from noa_core.data.replay_stage import merge_replays

    summary = merge_replays(a.parts, a.out)
    print(f"wrote {summary['out']}: {summary['num_samples']} operators from "
          f"{summary['num_parts']} shard(s)")
    return 0


def _cmd_config_show(a: argparse.Namespace) -> int:
    from noa_core.config import dump_config, load_config

    print(dump_config(load_config(a.config)), end="")
    return 0


# --- parsers --------------------------------------------------------------------------------


def _dataset_parser(sub: argparse._SubParsersAction) -> None:
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
    g.add_argument("--n", type=_positive, default=None,
                   help="number of operators (default: dataset.num_samples)")
    g.add_argument("--seed", type=_non_negative, default=None,
                   help="dataset seed (default: dataset.seed)")
    _workers(g)
    _add_common(g)
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


def _replay_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Replay the operators of a dataset split: rebuild each from θ and its "
                    "stored seeds and roll it out again (K_max + H steps, M realizations by "
                    "default). Bit-identical to generation on the same machine and software. "
                    "Shards (--shard I/N) are merged with `noa replay merge`.")
    p.add_argument("--dataset", required=True, type=Path, metavar="FILE")
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="all")
    p.add_argument("--steps", type=_non_negative, default=None,
                   help="updates S per trajectory (default: K_max + H)")
    p.add_argument("--realizations", type=_positive, default=None,
                   help="noise realizations M (default: dynamics.realizations)")
    p.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                   help="replay the I-th of N contiguous shards of the split (default 0/1)")
    p.add_argument("--config", default=None, metavar="CFG",
                   help="configuration for a file in the original layout (which stores none)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="where rollouts run (default: dynamics.device); on cuda each rollout "
                        "runs in a worker process killed after dynamics.replay_timeout_s")
    _workers(p)
    _add_common(p)
    p.set_defaults(func=_cmd_replay)
    return p


def _merge_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Merge replay shards of one dataset and split into one file, ordered by "
                    "sample id. Refuses shards of different sources, settings or overlap, and "
                    "an incomplete set of shards.")
    p.add_argument("parts", nargs="+", type=Path, metavar="PART")
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.set_defaults(func=_cmd_merge)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="noa", description="NOA Phase 1 stages: dynamics, datasets, replay.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"noa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _dataset_parser(sub)
    sub.add_parser("replay", help="replay a dataset split (see `noa replay --help`); "
                                  "`noa replay merge` merges shards", add_help=False)
    cfg = sub.add_parser("config", help="show the resolved configuration")
    csub = cfg.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = csub.add_parser("show", help="print a preset or YAML file fully resolved")
    show.add_argument("config", metavar="CFG")
    show.set_defaults(func=_cmd_config_show)
    return parser


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    # `noa replay ...` and `noa replay merge ...` share a name but not their arguments.
    if argv[:2] == ["replay", "merge"]:
        return _merge_parser("noa replay merge").parse_args(argv[2:])
    if argv[:1] == ["replay"]:
        return _replay_parser("noa replay").parse_args(argv[1:])
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except NOAError as exc:
        print(f"noa: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("noa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
