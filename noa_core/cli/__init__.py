"""``noa``: one subcommand per stage, each a thin door to a ``noa_core`` stage function.

Bad input exits 1 with one clear line on stderr (``noa: error: ...``); usage errors exit 2.
Long work shows a progress bar on stderr; summaries go to stdout.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from noa_core import __version__
from noa_core.errors import NOAError

# One module per command group, each with ``add_parser(subparsers)``; a plain registry: a new
# command group adds its module here. ``replay`` is dispatched before argparse (see ``_parse``).
COMMAND_MODULES: tuple[str, ...] = (
    "noa_core.cli.dataset",
    "noa_core.cli.config_cmd",
    "noa_core.cli.features_cmd",
    "noa_core.cli.tokenizer_cmd",
    "noa_core.cli.train_cmd",
    "noa_core.cli.data_cmd",
    "noa_core.cli.tracking_cmd",
    "noa_core.cli.evaluate_cmd",
    "noa_core.cli.export_cmd",
    "noa_core.cli.pipeline_cmd",
)

EPILOG = """\
Stages (ARCHITECTURE.md, CLI contract):
  noa dataset generate --config CFG --out FILE   operator dataset (θ, ICs, trajectories)
  noa dataset validate FILE                      exit 1 with a precise message on any defect
  noa dataset inspect FILE                       sizes, θ coverage, constant slots, split, seeds
  noa replay --dataset FILE --out FILE           a split's ground truth, bit-identical
  noa replay merge PART... --out FILE            merge replay shards
  noa config show CFG                            the resolved configuration as YAML
  noa features extract IN --out OUT              IN plus its behavioural features, in a new file
  noa tokenizer train --dataset FILE --out DIR   Phase 0 tokenizer (VQ-VAE + family encoders)
  noa bootstrap --preset P --out DIR             dataset.h5 + tokenizer/ + MANIFEST.json
  noa train --config CFG --replay FILE --tokenizer DIR --out DIR   the NOA, frozen tokenizer
  noa evaluate --checkpoint DIR --replay FILE --tokenizer DIR --out DIR   criteria + gate
  noa export --checkpoint DIR --out FILE.onnx    the NOA step as ONNX, parity-checked
  noa predict --onnx FILE --replay FILE --out FILE   roll out with ONNX Runtime alone
  noa data pull SRC DST                          fetch s3:// or local, verified by MANIFEST.json
  noa data push SRC DST                          publish a directory, MANIFEST.json written last
  noa register --checkpoint DIR --onnx FILE --model-name NAME --tracking-uri URI   new version
  noa promote --model-name NAME --version V --tracking-uri URI   move `champion` to V
  noa reject --model-name NAME --version V --tracking-uri URI --gate FILE   tag failed criteria
  noa pipeline compile --out FILE                the Kubeflow pipeline as KFP IR YAML
  noa pipeline upload|submit|schedule --host URL ...   version it, run it, schedule retraining
  noa pipeline run-local [--preset P]            the whole pipeline here, through kfp.local

CFG is a preset name (tiny, small, paper) or a YAML file (which may `extends: PRESET`).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="noa", description="NOA Phase 1 stages: dynamics, datasets, replay.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"noa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    sub.add_parser("replay", help="replay a dataset split (see `noa replay --help`); "
                                  "`noa replay merge` merges shards", add_help=False)
    return parser


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    # `noa replay ...` and `noa replay merge ...` share a name but not their arguments.
    if argv[:1] == ["replay"]:
        from noa_core.cli import replay

        if argv[1:2] == ["merge"]:
            return replay.merge_parser("noa replay merge").parse_args(argv[2:])
        return replay.replay_parser("noa replay").parse_args(argv[1:])
    return build_parser().parse_args(argv)


# Where a command creates or writes its outputs, a path the user named is in the way (a file
# where a directory must go, a directory where a file must go, no permission): input errors.
PATH_ERRORS = (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def path_error(exc: OSError) -> str:
    """``PATH`` (``→ PATH2``): the system's reason, for one of ``PATH_ERRORS``."""
    paths = " → ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    return f"{paths or 'a path'}: {exc.strerror or exc}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except NOAError as exc:
        print(f"noa: error: {exc}", file=sys.stderr)
        return 1
    except PATH_ERRORS as exc:
        print(f"noa: error: {path_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("noa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
