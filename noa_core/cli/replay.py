"""``noa replay`` and ``noa replay merge``: one name, two argument sets (see ``parse``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from noa_core.cli.args import add_progress, add_workers, non_negative, positive, shard


def _cmd_replay(a: argparse.Namespace) -> int:
    from noa_core.data.replay_stage import replay_dataset

    kwargs = dict(split=a.split, steps=a.steps, realizations=a.realizations, shard=a.shard,
                  config=a.config, workers=a.workers, device=a.device)
    if a.tokenizer is None:
        summary = replay_dataset(a.dataset, a.out, progress=a.progress, **kwargs)
    else:
        from noa_core.tokenizer.ground_truth import replay_with_ground_truth

        summary = replay_with_ground_truth(a.dataset, a.out, a.tokenizer,
                                           progress=a.progress, **kwargs)
    extra = "" if a.tokenizer is None else (
        f", features and {summary['codebooks']} tokens per operator")
    print(f"wrote {summary['out']}: {summary['num_samples']} operators of split "
          f"{summary['split']} (shard {summary['shard']}), {summary['realizations']} "
          f"realizations × {summary['steps']} steps{extra}, {summary['seconds']:.1f} s")
    return 0


def _cmd_merge(a: argparse.Namespace) -> int:
    from noa_core.data.replay_stage import merge_replays

    summary = merge_replays(a.parts, a.out)
    print(f"wrote {summary['out']}: {summary['num_samples']} operators from "
          f"{summary['num_parts']} shard(s)")
    return 0


def replay_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Replay the operators of a dataset split: rebuild each from θ and its "
                    "stored seeds and roll it out again (K_max + H steps, M realizations by "
                    "default). Bit-identical to generation on the same machine and software. "
                    "Shards (--shard I/N) are merged with `noa replay merge`.")
    p.add_argument("--dataset", required=True, type=Path, metavar="FILE")
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.add_argument("--tokenizer", type=Path, default=None, metavar="DIR",
                   help="also store ground-truth features (window [0, H]) and tokens "
                        "(tokens/ids [N, Q]) computed with this frozen tokenizer")
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="all")
    p.add_argument("--steps", type=non_negative, default=None,
                   help="updates S per trajectory (default: K_max + H)")
    p.add_argument("--realizations", type=positive, default=None,
                   help="noise realizations M (default: dynamics.realizations)")
    p.add_argument("--shard", type=shard, default=(0, 1), metavar="I/N",
                   help="replay the I-th of N contiguous shards of the split (default 0/1)")
    p.add_argument("--config", default=None, metavar="CFG",
                   help="configuration for a file in the original layout (which stores none)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="where rollouts run (default: dynamics.device); on cuda each rollout "
                        "runs in a worker process killed after dynamics.replay_timeout_s")
    add_workers(p)
    add_progress(p)
    p.set_defaults(func=_cmd_replay)
    return p


def merge_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Merge replay shards of one dataset and split into one file, ordered by "
                    "sample id. Refuses shards of different sources, settings or overlap, and "
                    "an incomplete set of shards.")
    p.add_argument("parts", nargs="+", type=Path, metavar="PART")
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.set_defaults(func=_cmd_merge)
    return p
