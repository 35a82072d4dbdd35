"""``noa promote`` and ``noa reject``: the gate's two outcomes in the model registry."""

from __future__ import annotations

import argparse
from pathlib import Path

from noa_core.tracking.constants import ALIAS_CHAMPION, DEFAULT_PROMOTION_REASON


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


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-name", required=True, metavar="NAME", help="registered model name")
    p.add_argument("--version", required=True, metavar="V", help="model version number")
    p.add_argument("--tracking-uri", required=True, metavar="URI",
                   help="MLflow tracking and registry URI (sqlite:///PATH or http(s)://HOST:PORT);"
                        " never guessed from the environment")
    p.add_argument("--pipeline-run-id", default=None, metavar="ID",
                   help="the pipeline run making the decision (recorded in a tag)")


def add_parser(sub: argparse._SubParsersAction) -> None:
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
