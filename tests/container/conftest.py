"""Fixtures for the container tests: a reachable Docker engine and the built image.

Without an engine or the image these tests are skipped, with the reason; with
``NOA_REQUIRE_CONTAINER=1`` (set by .ci/run, which builds the image first) a missing engine, image
or tool is a failure instead. The image is ``NOA_IMAGE`` (default ``noa-core:cpu``, what
``docker/build.sh`` tags); the engine is the one ``docker/engine.sh host`` finds (``DOCKER_HOST``,
the project's own engine, or the default socket). The time spent in this folder is printed at the
end of the run and appended to ``NOA_TIMINGS_FILE`` when it is set (for CI's summary).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE_DEFAULT = "noa-core:cpu"
REQUIRED = os.environ.get("NOA_REQUIRE_CONTAINER", "") not in ("", "0", "false", "no")

_spent = {"seconds": 0.0, "tests": 0}


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail with it when NOA_REQUIRE_CONTAINER=1."""
    if REQUIRED:
        pytest.fail(f"NOA_REQUIRE_CONTAINER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


DockerRun = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="session")
def container_unavailable() -> Callable[[str], None]:
    """``unavailable(reason)`` for tests that check for a tool themselves."""
    return unavailable


@pytest.fixture(scope="session")
def docker_env() -> dict[str, str]:
    """The environment for the docker CLI, with DOCKER_HOST of a reachable engine."""
    if shutil.which("docker") is None:
        unavailable("no docker CLI on PATH (make image installs the engine and the CLI)")
    proc = subprocess.run(["bash", str(REPO / "docker" / "engine.sh"), "host"],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        unavailable("no Docker engine reachable (start one with docker/engine.sh start, or "
                    "build with make image)")
    return {**os.environ, "DOCKER_HOST": proc.stdout.strip()}


@pytest.fixture(scope="session")
def docker(docker_env: dict[str, str]) -> DockerRun:
    """``docker(*args, check=True, timeout=...)``: run the docker CLI against the engine."""

    def run(*args: str, check: bool = True, timeout: float = 300,
            input: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", *args], env=docker_env, capture_output=True, text=True,
                              timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    return run


@pytest.fixture(scope="session")
def image(docker: DockerRun) -> str:
    """The image under test; it must exist (docker/build.sh makes it)."""
    name = os.environ.get("NOA_IMAGE", IMAGE_DEFAULT)
    if docker("image", "inspect", name, check=False).returncode != 0:
        unavailable(f"image {name} not built (make image, or docker/build.sh)")
    return name


@pytest.fixture(scope="session")
def run_in_image(docker: DockerRun, image: str) -> Callable[..., subprocess.CompletedProcess]:
    """``run_in_image(cmd, volumes={host: container}, read_only=True, ...)``: one ``docker run``.

    Always ``--rm --network host`` (the project's engine has no bridge network). Read-only root
    filesystem by default: only the declared volumes and the mounts given are writable.
    """

    def run(cmd: Sequence[str], *, volumes: dict[Path, str] | None = None,
            read_only: bool = True, check: bool = True, extra: Sequence[str] = (),
            timeout: float = 300) -> subprocess.CompletedProcess:
        args = ["run", "--rm", "--network", "host"]
        if read_only:
            args.append("--read-only")
        for host, inside in (volumes or {}).items():
            args += ["-v", f"{host}:{inside}"]
        return docker(*args, *extra, image, *cmd, check=check, timeout=timeout)

    return run


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Called for the items of this folder only (conftest hooks are per directory).
    _spent["seconds"] += report.duration
    if report.when == "call":
        _spent["tests"] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _spent["tests"]:
        return
    line = f"container tests: {_spent['tests']} in {_spent['seconds']:.0f} s"
    terminalreporter.write_line(line)
    timings = os.environ.get("NOA_TIMINGS_FILE")
    if timings:
        with open(timings, "a", encoding="utf-8") as fh:
            fh.write(f"image: tests {_spent['seconds']:.0f} ({_spent['tests']} tests)\n")
