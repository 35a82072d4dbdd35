"""``noa features extract``: a copy of a dataset or replay file with its feature groups."""

from __future__ import annotations

import argparse
from pathlib import Path

from noa_core.cli.args import add_progress, positive


def _cmd_extract(a: argparse.Namespace) -> int:
    from noa_core.features.io import extract_file

    s = extract_file(a.input, a.out, batch_size=a.batch_size, progress=a.progress)
    k0, k1 = s["window"]
    print(f"wrote {s['out']}: features of {s['num_samples']} operators, states {k0}…{k1}; "
          f"{s['schema']}; {s['seconds']:.1f} s")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from noa_core.features.io import DEFAULT_BATCH_SIZE

    fe = sub.add_parser("features", help="behavioural features of stored trajectories",
                        description="INITIAL, TEMPORAL and SUMMARY features of trajectories.")
    fsub = fe.add_subparsers(dest="action", required=True, metavar="ACTION")
    x = fsub.add_parser(
        "extract", help="write IN's features into a new file OUT (never into IN)",
        description="Copy IN to OUT and add the feature groups (features/initial, "
                    "features/summary, features/temporal, with the feature schema) computed "
                    "from the window [0, H] of IN's trajectories, H from "
                    "IN's stored configuration. OUT appears only when complete; IN is only "
                    "read, and OUT = IN is refused.")
    x.add_argument("input", type=Path, metavar="IN", help="dataset or replay file with "
                                                          "trajectories")
    x.add_argument("--out", required=True, type=Path, metavar="OUT", help="new .h5 path")
    x.add_argument("--batch-size", type=positive, default=DEFAULT_BATCH_SIZE, metavar="N",
                   help=f"operators per extractor call (default {DEFAULT_BATCH_SIZE})")
    add_progress(x)
    x.set_defaults(func=_cmd_extract)
