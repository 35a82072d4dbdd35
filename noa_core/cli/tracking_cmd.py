"""``noa register``, ``noa promote`` and ``noa reject``: a new version, then the gate's two
outcomes in the model registry."""

from __future__ import annotations

import argparse
from pathlib import Path

from noa_core.tracking.constants import ALIAS_CHAMPION, DEFAULT_PROMOTION_REASON


def _cmd_register(a: argparse.Namespace) -> int:
    from noa_core.tracking.register_stage import register_checkpoint

    r = register_checkpoint(a.checkpoint, a.onnx, a.model_name, a.tracking_uri, run_id=a.run_id,
                            pipeline_run_id=a.pipeline_run_id, image_digest=a.image_digest,
                            criteria=a.criteria)
    print(f"{r['model_name']} version {r['version']} is now {r['alias']} (run {r['run_id']})")
    print("lineage: " + ", ".join(f"{k}={v}" for k, v in r["lineage"].items()))
    return 0


def _cmd_promote(a: argparse.Namespace) -> int:
    from noa_core.tracking.registry import promote

    previous = promote(a.tracking_uri, a.model_name, a.version, reason=a.reason,
                       pipeline_run_id=a.pipeline_run_id)
    print(f"{a.model_name} version {int(a.version)} is now {ALIAS_CHAMPION} "
          f"(before: {'version ' + previous if previous else 'none'}); reason: {a.reason}")
    return 0


def _cmd_reject(a: argparse.Namespace) -> int:
    from noa_core.tracking.gate import load_gate
    from noa_core.tracking.registry import champion_version, reject

    failed = reject(a.tracking_uri, a.model_name, a.version, load_gate(a.gate),
                    pipeline_run_id=a.pipeline_run_id)
    champion = champion_version(a.tracking_uri, a.model_name)
    print(f"{a.model_name} version {int(a.version)} rejected; failed: {', '.join(failed)}; "
          f"{ALIAS_CHAMPION} stays on {'version ' + champion if champion else 'no version'}")
    return 0


def _model_and_store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-name", required=True, metavar="NAME", help="registered model name")
    p.add_argument("--tracking-uri", required=True, metavar="URI",
                   help="MLflow tracking and registry URI (sqlite:///PATH or http(s)://HOST:PORT);"
                        " never guessed from the environment")


def _common(p: argparse.ArgumentParser) -> None:
    _model_and_store(p)
    p.add_argument("--version", required=True, metavar="V", help="model version number")
    p.add_argument("--pipeline-run-id", default=None, metavar="ID",
                   help="the pipeline run making the decision (recorded in a tag)")


def _add_register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser(
        "register", help="register an exported NOA as a new model version (alias challenger)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Log the exported step (ONNX, the served flavour) and the checkpoint's torch\n"
                    "step (PyTorch) into the training's MLflow run, register the ONNX model as a\n"
                    "new version of NAME with alias `challenger` and lineage tags, and print the\n"
                    "version. The ONNX file must be this checkpoint's step (checked on one step).",
        epilog="run: --run-id, else the checkpoint's config.yaml tracking.mlflow_run_id, else\n"
               "  mlflow_run_id in metrics.json beside the checkpoint (`noa train --tracking-uri`\n"
               "  writes both); none is an error.\n"
               "lineage: what training recorded in the checkpoint (dataset and tokenizer sha256,\n"
               "  git commit, pipeline run id), overridden by the options below; a value nobody\n"
               "  knows is tagged 'unknown'.")
    g.add_argument("--checkpoint", required=True, type=Path, metavar="DIR",
                   help="the checkpoint directory (OUT/checkpoint of `noa train`)")
    g.add_argument("--onnx", required=True, type=Path, metavar="FILE",
                   help="its exported step (`noa export --checkpoint DIR --out FILE`)")
    _model_and_store(g)
    g.add_argument("--run-id", default=None, metavar="ID",
                   help="the MLflow run to log into (default: the one training recorded)")
    g.add_argument("--pipeline-run-id", default=None, metavar="ID",
                   help="the pipeline run registering the model (lineage tag; default: the one "
                        "training recorded)")
    g.add_argument("--image-digest", default=None, metavar="D",
                   help="digest of the image the stages ran in, e.g. sha256:... (lineage tag)")
    g.add_argument("--criteria", default=None, metavar="FILE|SHA256",
                   help="the gate's criteria file (its sha256 as in gate.json) or that sha256 "
                        "itself (lineage tag; default: criteria_sha256 of the run's "
                        "evaluation/gate.json)")
    g.set_defaults(func=_cmd_register)


def add_parser(sub: argparse._SubParsersAction) -> None:
    _add_register(sub)
    p = sub.add_parser(
        "promote", help="move the champion alias to a model version",
        description="Tag the version (decision, reason, pipeline run, previous champion), then "
                    "move the `champion` alias to it. A version rejected by its gate is never "
                    "promoted.")
    _common(p)
    p.add_argument("--reason", default=DEFAULT_PROMOTION_REASON, metavar="TEXT",
                   help=f"why (recorded in a tag; default: {DEFAULT_PROMOTION_REASON!r})")
    p.set_defaults(func=_cmd_promote)

    r = sub.add_parser(
        "reject", help="tag a model version with its failed gate criteria",
        description="Tag the version with the criteria that failed in FILE (gate.json from "
                    "`noa evaluate`); the `champion` alias is not touched.")
    _common(r)
    r.add_argument("--gate", required=True, type=Path, metavar="FILE", help="gate.json")
    r.set_defaults(func=_cmd_reject)
