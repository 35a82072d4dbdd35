"""``noa config show``."""

from __future__ import annotations

import argparse


def _cmd_config_show(a: argparse.Namespace) -> int:
    from noa_core.config import dump_config, load_config

    print(dump_config(load_config(a.config)), end="")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    cfg = sub.add_parser("config", help="show the resolved configuration")
    csub = cfg.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = csub.add_parser("show", help="print a preset or YAML file fully resolved")
    show.add_argument("config", metavar="CFG")
    show.set_defaults(func=_cmd_config_show)
