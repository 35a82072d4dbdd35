"""The services a local pipeline run talks to, on loopback: an S3 endpoint (moto's server in a
thread) and, for runs whose tasks live in containers, an ``mlflow server`` process.

Both bind 127.0.0.1 on a free port; containers reach them with ``--network host``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Throwaway credentials for the embedded endpoint only (moto accepts any); never real ones.
LOCAL_S3_ENV = {"AWS_ACCESS_KEY_ID": "noa-local", "AWS_SECRET_ACCESS_KEY": "noa-local-secret",
                "AWS_DEFAULT_REGION": "us-east-1"}
MLFLOW_BOOT_LIMIT_S = 180.0  # a deadline for a slow machine, not a timing


@contextmanager
def embedded_s3() -> Iterator[dict[str, str]]:
    """A moto S3 server on 127.0.0.1 (free port); its endpoint and throwaway credentials are in
    this process's environment for the duration. Yields that environment (for containers)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {**LOCAL_S3_ENV, "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    try:
        with environment(env):
            yield env
    finally:
        server.stop()


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment for the duration (subprocesses started meanwhile
    inherit them); the previous values, or their absence, are put back."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mlflow_server(root: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start ``mlflow server`` on 127.0.0.1 (free port) in its own process group, with a sqlite
    store and proxied artifacts under ``root``; returns (process, URI, log file) at once, so the
    caller can work while it boots (``wait_healthy``) and stop it with ``stop_group``."""
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    log = root / "mlflow-server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", str(root / "mlartifacts"), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    return process, f"http://127.0.0.1:{port}", log


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """``start_mlflow_server`` for the duration of the block; yields its URI once healthy."""
    process, uri, log = start_mlflow_server(root)
    try:
        wait_healthy(process, uri, log)
        yield uri
    finally:
        stop_group(process)


def wait_healthy(process: subprocess.Popen[bytes], uri: str, log: Path) -> None:
    """Return once ``uri/health`` answers 200; ``RuntimeError`` with the log's tail if the
    server exits, or after ``MLFLOW_BOOT_LIMIT_S``."""
    deadline = time.monotonic() + MLFLOW_BOOT_LIMIT_S
    while True:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mlflow server exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise RuntimeError(f"mlflow server not healthy after {MLFLOW_BOOT_LIMIT_S} s "
                               f"(log: {log})")
        time.sleep(0.2)  # polling for readiness


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it has workers), then SIGKILL if needed."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue
