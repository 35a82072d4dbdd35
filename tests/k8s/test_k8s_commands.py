"""The commands the manifests run exist, with the options the manifests pass: every `noa`
command answers --help and lists each flag used; the MLflow server's arguments parse, and the
server starts with them and answers only the Host names the manifests allow."""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from k8s_support import all_containers, config_map_data, container_env, expand


def _commands(rendered_overlays):
    """(command, args, env, label) of every container, deduplicated by command and args."""
    seen = {}
    for name, r in rendered_overlays.items():
        for label, c, _ in all_containers(r.docs):
            key = (tuple(c.get("command", [])), tuple(c.get("args", [])))
            seen.setdefault(key, (container_env(c, r.docs), f"{name}:{label}"))
    return [(list(cmd), list(args), env, label) for (cmd, args), (env, label) in seen.items()]


def _noa_help(words: list[str]) -> tuple[int, str]:
    from noa_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*words, "--help"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue() + err.getvalue()


def test_every_container_states_its_command(rendered_overlays):
    # The image has no ENTRYPOINT and its default command is `noa --help`: a container without
    # a command would print help and exit.
    for name, r in rendered_overlays.items():
        for label, c, _ in all_containers(r.docs):
            assert c.get("command") and c["command"][0] in ("noa", "mlflow"), f"{name}:{label}"


def test_noa_commands_exist_with_the_flags_used(rendered_overlays):
    checked = 0
    for cmd, args, _, label in _commands(rendered_overlays):
        if cmd[0] != "noa":
            continue
        words = cmd[1:]
        code, text = _noa_help(words)
        assert code == 0, f"{label}: noa {' '.join(words)} --help exited {code}:\n{text}"
        assert text.startswith(f"usage: noa {' '.join(words)}"), text[:200]
        for flag in (a for a in args if a.startswith("--")):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), (
                f"{label}: noa {' '.join(words)} has no option {flag}")
        # Pipeline parameters (--param KEY=VALUE) are listed in the help as "KEY = default".
        for i, a in enumerate(args):
            if a == "--param":
                key = args[i + 1].split("=", 1)[0]
                assert re.search(rf"^\s+{re.escape(key)} = ", text, flags=re.M), (
                    f"{label}: the pipeline has no parameter {key}")
        checked += 1
    assert checked >= 3  # data pull, train and pipeline submit


def test_the_flag_check_can_fail():
    # An option no command has is not found in its help, so a renamed flag fails the test above.
    code, text = _noa_help(["pipeline", "submit"])
    assert code == 0 and "--host" in text
    assert not re.search(r"(?<![\w-])--hosts(?![\w-])", text)
    assert not re.search(r"^\s+no_such_parameter = ", text, flags=re.M)


def _mlflow_container(rendered_overlays):
    for _, r in rendered_overlays.items():
        for _, c, _ in all_containers(r.docs):
            if c["command"][0] == "mlflow":
                return c, r.docs
    raise AssertionError("no MLflow server in the manifests")


def _mlflow_args(rendered_overlays) -> tuple[list[str], dict[str, str]]:
    c, docs = _mlflow_container(rendered_overlays)
    env = container_env(c, docs)
    return [expand(a, env) for a in c["args"]], env


def test_mlflow_server_arguments_parse(rendered_overlays):
    from mlflow.cli import cli

    c, _ = _mlflow_container(rendered_overlays)
    assert c["command"] == ["mlflow", "server"]
    args, env = _mlflow_args(rendered_overlays)
    assert not [a for a in args if "$(" in a], args  # every $(VAR) resolves
    ctx = cli.commands["server"].make_context("server", list(args))
    assert ctx.params["backend_store_uri"].startswith("sqlite:////")
    assert ctx.params["default_artifact_root"].startswith("s3://")
    assert ctx.params["serve_artifacts"] is False
    assert ctx.params["port"] == 5000 and ctx.params["host"] == "0.0.0.0"
    assert ctx.params["allowed_hosts"] == env["MLFLOW_SERVER_ALLOWED_HOSTS"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, host: str) -> int:
    req = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
def test_mlflow_server_starts_with_the_manifest_arguments(rendered_overlays, tmp_path: Path):
    args, _ = _mlflow_args(rendered_overlays)
    port = _free_port()
    # The manifest's arguments, with only the database path and the port moved here.
    local = []
    for i, a in enumerate(args):
        prev = args[i - 1] if i else ""
        if prev == "--backend-store-uri":
            a = f"sqlite:///{tmp_path / 'mlflow.db'}"
        elif prev == "--port":
            a = str(port)
        elif prev == "--host":
            a = "127.0.0.1"
        local.append(a)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", *local], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log = proc.stdout.read()[-3000:]
                pytest.fail(f"mlflow server exited {proc.returncode}:\n{log}")
            try:
                if _get(f"{base}/health", "localhost") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("mlflow server did not answer /health within 120 s")
            time.sleep(1)
        api = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
        # The in-cluster name the tracking Secret points at, and a port-forward.
        assert _get(api, "mlflow.noa.svc.cluster.local:5000") == 200
        assert _get(api, "localhost:5000") == 200
        # Any other Host header is refused (DNS rebinding protection stays on).
        assert _get(api, "attacker.example:5000") == 403
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_settings_name_the_in_cluster_services(rendered_overlays):
    for name, r in rendered_overlays.items():
        data = config_map_data(r.docs, "noa-settings")
        hosts = data["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
        assert "mlflow.noa.svc.cluster.local:*" in hosts, name
        assert "*" not in hosts, name
        assert data["MLFLOW_ARTIFACT_ROOT"].startswith("s3://"), name
        assert data["NOA_PRESET"] in ("tiny", "small", "paper"), name
