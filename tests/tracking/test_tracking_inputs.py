"""Inputs the tracking module refuses before touching any store: a missing or guessed tracking
URI, credentials in params, config or tags, malformed gates and lineage."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from noa_core.errors import TrackingError
from noa_core.tracking import (
    lineage_tags,
    load_gate,
    open_run,
    parse_gate,
    promote,
    reject,
    require_tracking_uri,
)

GATE = {"passed": False, "criteria": [
    {"name": "rollout_mse", "value": 0.3, "op": "<=", "threshold": 0.25, "passed": False}]}


@pytest.mark.parametrize("uri", [None, "", "   "])
def test_no_tracking_uri_is_refused_even_with_the_environment_set(
        uri: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///guessed.db")
    with pytest.raises(TrackingError, match="no tracking URI given: pass --tracking-uri"):
        require_tracking_uri(uri)


@pytest.mark.parametrize(("uri", "needle"), [
    ("mlruns", "expected one of the schemes"),
    ("file:///tmp/mlruns", "expected one of the schemes"),
    ("https://alice:hunter2-pass@mlflow.example:5000", "credentials do not belong in the URI"),
])
def test_guessable_or_credentialed_uris_are_refused(uri: str, needle: str) -> None:
    with pytest.raises(TrackingError, match=needle) as err:
        require_tracking_uri(uri)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("uri", ["sqlite:///runs/mlflow.db", "http://127.0.0.1:5000",
                                 "postgresql+psycopg2://db/mlflow"])
def test_explicit_uris_are_accepted(uri: str) -> None:
    assert require_tracking_uri(f" {uri} ") == uri


@pytest.mark.parametrize(("params", "config", "tags"), [
    ({"aws_secret_access_key": "x"}, {}, {}),
    ({}, {"s3": {"password": "x"}}, {}),
    ({}, {}, {"api-key": "x"}),
    ({"endpoint": "https://bob:pw123@minio:9000"}, {}, {}),
    ({"note": "uses noa-env-SECRET-1234 here"}, {}, {}),
])
def test_credentials_never_reach_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           params: dict, config: dict, tags: dict) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "noa-env-SECRET-1234")
    db = tmp_path / "mlflow.db"
    with pytest.raises(TrackingError, match="credential") as err:
        open_run(f"sqlite:///{db}", "e", params=params, config=config, tags=tags)
    assert "noa-env-SECRET-1234" not in str(err.value) and "pw123" not in str(err.value)
    assert not db.exists(), "refused before the store was opened"


def test_gate_validation(tmp_path: Path) -> None:
    assert [c.name for c in parse_gate(GATE).failed] == ["rollout_mse"]
    assert parse_gate(GATE).failed[0].describe() == "0.3 <= 0.25"
    bad = copy.deepcopy(GATE)
    bad["passed"] = True
    with pytest.raises(TrackingError, match='"passed" is True but the criteria say False'):
        parse_gate(bad)
    bad = copy.deepcopy(GATE)
    bad["criteria"][0]["threshold"] = "high"
    with pytest.raises(TrackingError, match=r"criteria\[0\] \(rollout_mse\): threshold must be"):
        parse_gate(bad, "gate.json")
    bad = copy.deepcopy(GATE)
    bad["criteria"][0]["name"] = "a name with spaces"
    with pytest.raises(TrackingError, match="name must match"):
        parse_gate(bad)
    with pytest.raises(TrackingError, match="no such gate file"):
        load_gate(tmp_path / "gate.json")
    (tmp_path / "gate.json").write_text("{oops")
    with pytest.raises(TrackingError, match="not a readable JSON gate file"):
        load_gate(tmp_path / "gate.json")


def test_reject_refuses_a_passed_gate_and_bad_versions(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'never.db'}"
    passed = {"passed": True, "criteria": [dict(GATE["criteria"][0], passed=True)]}
    with pytest.raises(TrackingError, match="the gate passed; refusing to reject"):
        reject(uri, "m", 1, passed)
    with pytest.raises(TrackingError, match="expected a positive integer"):
        promote(uri, "m", "latest")
    assert not (tmp_path / "never.db").exists()


def test_lineage_keys_are_exact() -> None:
    with pytest.raises(TrackingError, match=r"unknown \['branch'\]"):
        lineage_tags({"branch": "main"})
