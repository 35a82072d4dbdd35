"""``noa pipeline upload|submit|schedule`` up to the KFP client call.

No Kubeflow Pipelines API server exists on these machines, so ``kfp.Client`` is replaced by a
recorder: the test checks what would be sent (package, parameters, cron, concurrency) and that
bad input is refused before any client is created.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import yaml

from noa_core.cli import main
from pipelines.cron import CronError, validate_argo_cron, validate_kfp_cron


class RecordingClient:
    """Stands in for ``kfp.Client``: records each call and the package it was given."""

    instances: ClassVar[list[RecordingClient]] = []
    existing_pipeline: ClassVar[str | None] = None

    def __init__(self, host: str) -> None:
        self.host = host
        self.calls: list[tuple[str, dict[str, Any]]] = []
        RecordingClient.instances.append(self)

    def _record(self, method: str, **kwargs: Any) -> None:
        for key in ("pipeline_package_path", "pipeline_file"):
            if key in kwargs:  # the package may be a temporary file: keep what it held
                kwargs["package_doc"] = next(yaml.safe_load_all(Path(kwargs[key]).read_text()))
        self.calls.append((method, kwargs))

    def get_pipeline_id(self, name: str) -> str | None:
        self._record("get_pipeline_id", name=name)
        return self.existing_pipeline

    def upload_pipeline(self, pipeline_package_path: str, **kw: Any) -> Any:
        self._record("upload_pipeline", pipeline_package_path=pipeline_package_path, **kw)
        return SimpleNamespace(pipeline_id="pipe-1")

    def upload_pipeline_version(self, pipeline_package_path: str, **kw: Any) -> Any:
        self._record("upload_pipeline_version", pipeline_package_path=pipeline_package_path,
                     **kw)
        return SimpleNamespace(pipeline_version_id="ver-1")

    def create_run_from_pipeline_package(self, pipeline_file: str, **kw: Any) -> Any:
        self._record("create_run_from_pipeline_package", pipeline_file=pipeline_file, **kw)
        return SimpleNamespace(run_id="run-1")

    def create_experiment(self, name: str, **kw: Any) -> Any:
        self._record("create_experiment", name=name, **kw)
        return SimpleNamespace(experiment_id="exp-1")

    def create_recurring_run(self, **kw: Any) -> Any:
        self._record("create_recurring_run", **kw)
        return SimpleNamespace(recurring_run_id="rec-1")


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> type[RecordingClient]:
    import kfp

    RecordingClient.instances = []
    RecordingClient.existing_pipeline = None
    monkeypatch.setattr(kfp, "Client", RecordingClient)
    return RecordingClient


def _calls(client: type[RecordingClient]) -> list[tuple[str, dict[str, Any]]]:
    assert len(client.instances) == 1
    return client.instances[0].calls


def test_upload_creates_the_pipeline_then_its_named_version(client: type[RecordingClient],
                                                           capsys: pytest.CaptureFixture) -> None:
    assert main(["pipeline", "upload", "--host", "http://kfp.test", "--version", "v1.2"]) == 0
    names = [c[0] for c in _calls(client)]
    assert names == ["get_pipeline_id", "upload_pipeline", "upload_pipeline_version"]
    version = _calls(client)[2][1]
    assert version["pipeline_version_name"] == "v1.2" and version["pipeline_id"] == "pipe-1"
    assert version["package_doc"]["pipelineInfo"]["name"] == "noa-phase1"
    assert "version v1.2" in capsys.readouterr().out


def test_upload_adds_a_version_to_an_existing_pipeline(client: type[RecordingClient]) -> None:
    client.existing_pipeline = "pipe-9"
    assert main(["pipeline", "upload", "--host", "http://kfp.test", "--version", "v2"]) == 0
    assert [c[0] for c in _calls(client)] == ["get_pipeline_id", "upload_pipeline_version"]
    assert _calls(client)[1][1]["pipeline_id"] == "pipe-9"


def test_submit_sends_typed_parameters(client: type[RecordingClient]) -> None:
    argv = ["pipeline", "submit", "--host", "http://kfp.test", "--param", "replay_shards=8",
            "--param", "max_minutes=30", "--param", "dataset_uri=s3://b/phase0",
            "--run-name", "nightly", "--service-account", "noa-pipeline-runner"]
    assert main(argv) == 0
    (name, call), = _calls(client)
    assert name == "create_run_from_pipeline_package"
    assert call["arguments"] == {"replay_shards": 8, "max_minutes": 30.0,
                                 "dataset_uri": "s3://b/phase0"}
    assert call["run_name"] == "nightly" and call["experiment_name"] == "noa-phase1"
    assert call["service_account"] == "noa-pipeline-runner"


def test_schedule_is_six_field_cron_one_at_a_time_no_catchup(client: type[RecordingClient]
                                                            ) -> None:
    argv = ["pipeline", "schedule", "--host", "http://kfp.test", "--cron", "0 30 2 * * 1-5",
            "--param", "preset=paper"]
    assert main(argv) == 0
    names = [c[0] for c in _calls(client)]
    assert names == ["create_experiment", "create_recurring_run"]
    call = _calls(client)[1][1]
    assert call["cron_expression"] == "0 30 2 * * 1-5"
    assert call["max_concurrency"] == 1 and call["no_catchup"] is True
    assert call["experiment_id"] == "exp-1" and call["params"] == {"preset": "paper"}
    assert call["package_doc"]["root"]["inputDefinitions"]["parameters"]["preset"]


@pytest.mark.parametrize(("cron", "message"), [
    ("0 3 * * *", "has 5 fields; KFP recurring runs take 6 fields"),
    ("0 61 3 * * *", "minute 61 is outside 0-59"),
    ("0 0 3 ? * MOX", "day of week 'MOX' is not a number in 0-6 or SUN-SAT"),
    ("0 0 3 * */0 *", "month step must be at least 1"),
])
def test_a_malformed_cron_is_refused_before_any_client(client: type[RecordingClient],
                                                       capsys: pytest.CaptureFixture,
                                                       cron: str, message: str) -> None:
    argv = ["pipeline", "schedule", "--host", "http://kfp.test", "--cron", cron]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("noa: error: cron ") and message in err
    assert "\n" not in err
    assert client.instances == []


def test_bad_parameters_are_refused_before_any_client(client: type[RecordingClient],
                                                      capsys: pytest.CaptureFixture) -> None:
    cases = [("replay_shards=many", "--param replay_shards='many': expected int"),
             ("colour=red", "--param colour: not a pipeline parameter"),
             ("tracking_uri=https://alice:pw@mlflow.test", "the URI carries credentials")]
    for param, message in cases:
        assert main(["pipeline", "submit", "--host", "http://kfp.test", "--param", param]) == 1
        assert message in capsys.readouterr().err
    assert client.instances == []


def test_cron_forms_differ_per_scheduler() -> None:
    assert validate_kfp_cron(" 0  0 3 * * * ") == "0 0 3 * * *"
    assert validate_argo_cron("0 3 * * 1") == "0 3 * * 1"
    with pytest.raises(CronError, match="has 6 fields; Argo CronWorkflow schedules take 5"):
        validate_argo_cron("0 0 3 * * *")
    with pytest.raises(CronError, match="'\\?' is allowed only in day of month or day of week"):
        validate_kfp_cron("? 0 3 * * *")
