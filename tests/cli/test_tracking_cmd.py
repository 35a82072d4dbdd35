"""``noa promote`` and ``noa reject`` on a real sqlite tracking store: aliases and tags move as
the gate decides, and bad input is one line on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from noa_core.cli import main

MODEL = "noa-cli"
GATE = {"passed": False, "criteria": [
    {"name": "rollout_mse", "value": 0.3, "op": "<=", "threshold": 0.25, "passed": False},
    {"name": "token_accuracy", "value": 0.8, "op": ">=", "threshold": 0.6, "passed": True}]}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, MlflowClient]:
    """A sqlite store with two versions of MODEL (each from its own run)."""
    root = tmp_path_factory.mktemp("mlflow-cli")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("cli", artifact_location=(root / "artifacts").as_uri())
    client.create_registered_model(MODEL)
    for i in (1, 2):
        run = client.create_run(exp)
        client.log_text(run.info.run_id, f"model {i}", "model/MLmodel")
        client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run.info.run_id)
    return uri, client


def _args(uri: str, version: int) -> list[str]:
    return ["--model-name", MODEL, "--version", str(version), "--tracking-uri", uri]


@pytest.mark.parametrize("command", ["promote", "reject"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0 and "--tracking-uri URI" in capsys.readouterr().out


@pytest.mark.slow  # the first use of a sqlite store migrates its schema (seconds)
def test_promote_then_reject(store: tuple[str, MlflowClient], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    uri, client = store
    assert main(["promote", *_args(uri, 1), "--reason", "first", "--pipeline-run-id", "r1"]) == 0
    assert capsys.readouterr().out == (f"{MODEL} version 1 is now champion (before: none); "
                                       f"reason: first\n")
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps(GATE))
    assert main(["reject", *_args(uri, 2), "--gate", str(gate)]) == 0
    assert capsys.readouterr().out == (f"{MODEL} version 2 rejected; failed: rollout_mse; "
                                       f"champion stays on version 1\n")
    assert client.get_registered_model(MODEL).aliases == {"champion": 1}
    tags = client.get_model_version(MODEL, "2").tags
    assert (tags["noa.decision"], tags["noa.gate.rollout_mse"]) == ("rejected", "0.3 <= 0.25")

    assert main(["promote", *_args(uri, 2)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("noa: error: ") and "was rejected by its gate" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(("argv", "needle"), [
    (["promote", "--model-name", MODEL, "--version", "1", "--tracking-uri", ""],
     "no tracking URI given"),
    (["promote", "--model-name", MODEL, "--version", "x", "--tracking-uri", "sqlite:///m.db"],
     "expected a positive integer"),
    (["reject", "--model-name", MODEL, "--version", "1", "--tracking-uri", "sqlite:///m.db",
      "--gate", "missing-gate.json"], "no such gate file"),
])
def test_bad_input_is_one_line(argv: list[str], needle: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("noa: error: ") and needle in err and err.count("\n") == 1
    assert not (tmp_path / "m.db").exists()


def test_the_tracking_uri_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["promote", "--model-name", MODEL, "--version", "1"])
    assert info.value.code == 2 and "--tracking-uri" in capsys.readouterr().err
