"""Every component: the project image, nothing installed at run time, and the CLI's parameter
names (the component and ``noa <stage>`` are two doors to one stage function)."""

from __future__ import annotations

import argparse

import pytest

from components import PROJECT_IMAGE
from components.cno_replay import cno_replay, plan_replay_shards
from components.evaluate import evaluate
from components.export_onnx import export_onnx
from components.merge_replay import merge_replay
from components.promote import promote
from components.pull_dataset import pull_dataset
from components.record_outcome import record_outcome
from components.register import register
from components.reject import reject
from components.train_noa import train_noa
from noa_core import __version__
from noa_core.cli import build_parser
from noa_core.cli.replay import replay_parser

ALL = [pull_dataset, plan_replay_shards, cno_replay, merge_replay, train_noa, evaluate,
       export_onnx, register, promote, reject, record_outcome]

# component → (CLI command, inputs that are not CLI flags, and why)
CLI_OF = {
    "cno_replay": ("replay", {"gpus"}),  # granted GPUs select --device cuda
    "train_noa": ("train", {"work_dir", "gpus"}),  # run-scoped --out; torchrun processes
    "evaluate": ("evaluate", set()),
    "export_onnx": ("export", set()),
    "register": ("register", set()),
    "promote": ("promote", set()),
    "reject": ("reject", set()),
}


def _dests(command: str) -> set[str]:
    if command == "replay":
        parser = replay_parser("noa replay")
    else:
        sub = next(a for a in build_parser()._actions
                   if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[command]
    return {a.dest for a in parser._actions}


@pytest.mark.parametrize("component", ALL, ids=lambda c: c.name)
def test_runs_the_project_image_and_installs_nothing(component) -> None:  # type: ignore[no-untyped-def]
    container = component.component_spec.implementation.container
    assert container.image == PROJECT_IMAGE == f"noa-core:{__version__}-cpu"
    shell, source = container.command[:3], container.command[3]  # sh -ec SCRIPT, then the body
    assert shell[:2] == ["sh", "-ec"] and "executor_main" in shell[2]
    assert "pip install" not in shell[2]
    assert f"def {component.python_func.__name__}(" in source


@pytest.mark.parametrize("name", sorted(CLI_OF))
def test_parameter_names_are_the_cli_flags(name: str) -> None:
    component = {c.python_func.__name__: c for c in ALL}[name]
    command, extras = CLI_OF[name]
    inputs = set(component.component_spec.inputs)
    assert inputs - extras <= _dests(command), inputs - extras - _dests(command)
