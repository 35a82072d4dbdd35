"""A real ``mlflow server`` process on loopback (sqlite backend, artifacts served by it), a
tiny stand-in for the NOA (a 1×1 convolution and its ONNX export) and, for the tests that run
the real stages, tiny Phase 0 artifacts (``phase0``).

The server starts once per session in its own process group and is stopped, group and all, at
the end. The ONNX export runs while the server boots.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from pipeline_test_support import build_phase0
from tracking_test_support import StandIn

from pipelines.local_services import start_mlflow_server, stop_group, wait_healthy


@dataclass
class _Server:
    process: subprocess.Popen[bytes]
    uri: str
    log: Path


@pytest.fixture(scope="session")
def _mlflow_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    process, uri, log = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield _Server(process, uri, log)
    finally:
        stop_group(process)


@pytest.fixture(scope="session")
def tracking_uri(_mlflow_process: _Server, stand_in: StandIn) -> str:
    """The server's URI once ``/health`` answers (``stand_in`` is built while it boots)."""
    wait_healthy(_mlflow_process.process, _mlflow_process.uri, _mlflow_process.log)
    return _mlflow_process.uri


@pytest.fixture(scope="session")
def stand_in(tmp_path_factory: pytest.TempPathFactory, _mlflow_process: _Server) -> StandIn:
    """A seeded 1×1 conv (2 → 2 channels) and its ``torch.onnx.export(dynamo=True)`` file with a
    dynamic batch dimension; the example has a batch of 2."""
    gen = torch.Generator().manual_seed(0)
    module = torch.nn.Conv2d(2, 2, kernel_size=1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    module.eval()
    example = {"u": torch.randn(2, 2, 4, 4, generator=gen).numpy()}
    path = tmp_path_factory.mktemp("stand-in") / "noa.onnx"
    torch.onnx.export(module, (torch.from_numpy(example["u"]),), str(path), dynamo=True,
                      input_names=["u"], output_names=["u_next"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    return StandIn(module, path, example)


@pytest.fixture(scope="session")
def phase0(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``build_phase0``: config, dataset, tokenizer, replay (all splits) and criteria files."""
    return build_phase0(tmp_path_factory.mktemp("phase0"))
