"""A real ``mlflow server`` process on loopback (sqlite backend, artifacts served by it), a
tiny stand-in for the NOA (a 1×1 convolution and its ONNX export) and, for the tests that run
the real stages, tiny Phase 0 artifacts (``phase0``).

The server starts once per session in its own process group and is stopped, group and all, at
the end. The ONNX export runs while the server boots.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from pipeline_test_support import build_phase0
from tracking_test_support import StandIn

SERVER_BOOT_LIMIT_S = 180.0  # a deadline for a slow machine, not a timing assertion


@dataclass
class _Server:
    process: subprocess.Popen[bytes]
    uri: str
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def _mlflow_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = root / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    server = _Server(process, f"http://127.0.0.1:{port}", log)
    try:
        yield server
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's own process group (uvicorn and its workers), then SIGKILL if needed."""
    for sig, wait_s in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 30.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def tracking_uri(_mlflow_process: _Server, stand_in: StandIn) -> str:
    """The server's URI once ``/health`` answers (``stand_in`` is built while it boots)."""
    deadline = time.monotonic() + SERVER_BOOT_LIMIT_S
    while True:
        if _mlflow_process.process.poll() is not None:
            tail = _mlflow_process.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mlflow server exited with {_mlflow_process.process.returncode}:"
                               f"\n{tail}")
        try:
            with urllib.request.urlopen(f"{_mlflow_process.uri}/health", timeout=2) as resp:
                if resp.status == 200:
                    return _mlflow_process.uri
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise RuntimeError(f"mlflow server not healthy after {SERVER_BOOT_LIMIT_S} s")
        time.sleep(0.2)  # polling for readiness, not timing anything


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
