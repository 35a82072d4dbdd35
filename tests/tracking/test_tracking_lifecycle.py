"""One pipeline run's tracking against a real ``mlflow server`` on loopback: train opens the run,
evaluate and export log into it, register creates the version; the registered ONNX model serves
through ``mlflow.pyfunc``.

The NOA does not exist yet: a 1×1 convolution and its ONNX export (``torch.onnx.export``,
``dynamo=True``) stand in for it (see ``conftest.stand_in``).
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from tracking_test_support import StandIn, lineage

from noa_core.errors import TrackingError
from noa_core.tracking import (
    ALIAS_CHALLENGER,
    LINEAGE_TAGS,
    end_run,
    log_artifact,
    log_metrics,
    open_run,
    register_model,
    run_metrics,
)
from noa_core.tracking.client import fluent_uri
from noa_core.tracking.constants import (
    ARTIFACT_CONFIG,
    TAG_MODEL_VERSION,
    TAG_ONNX_SHA256,
    TAG_PYTORCH_MODEL_URI,
)

pytestmark = pytest.mark.slow  # shares one mlflow server that takes ~10 s to boot

CONFIG = {"extends": "tiny", "training": {"lr": 0.001, "steps": 3}, "dataset": {"seed": 7}}


def _artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_run_opened_by_train_is_continued_by_evaluate_and_export(
        tracking_uri: str, stand_in: StandIn, tmp_path: Path) -> None:
    model = f"noa-lifecycle-{uuid.uuid4().hex[:8]}"
    # train
    run_id = open_run(tracking_uri, "noa-lifecycle", params={"preset": "tiny", **CONFIG},
                      config=CONFIG, run_name="train")
    for step, loss in enumerate([0.9, 0.5, 0.3]):
        log_metrics(tracking_uri, run_id, {"train_loss": loss}, step=step)
    log_metrics(tracking_uri, run_id, {"val_traj_mse": 0.2, "val_persistence_mse": 0.4})
    end_run(tracking_uri, run_id)
    # evaluate
    report = tmp_path / "evaluation"
    report.mkdir()
    (report / "report.md").write_text("# Gate\n")
    (report / "rollout.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    log_metrics(tracking_uri, run_id, {"rollout_mse": 0.11, "token_accuracy": 0.7})
    log_artifact(tracking_uri, run_id, report, "evaluation")
    # export
    log_artifact(tracking_uri, run_id, stand_in.onnx_path, "export")
    # register
    version = register_model(tracking_uri, model, run_id, stand_in.onnx_path, stand_in.module,
                             stand_in.example, lineage("lifecycle"))

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"preset": "tiny", "extends": "tiny", "training.lr": "0.001",
                               "training.steps": "3", "dataset.seed": "7"}
    history = client.get_metric_history(run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.5), (2, 0.3)]
    assert run_metrics(tracking_uri, run_id) == {
        "train_loss": 0.3, "val_traj_mse": 0.2, "val_persistence_mse": 0.4,
        "rollout_mse": 0.11, "token_accuracy": 0.7}
    assert {ARTIFACT_CONFIG, "evaluation/report.md", "evaluation/rollout.png",
            "export/noa.onnx"} <= _artifact_paths(client, run_id)
    config_file = Path(client.download_artifacts(run_id, ARTIFACT_CONFIG, str(tmp_path)))
    assert yaml.safe_load(config_file.read_text()) == CONFIG

    expected_lineage = {LINEAGE_TAGS[k]: v for k, v in lineage("lifecycle").items()}
    assert {k: run.data.tags[k] for k in expected_lineage} == expected_lineage
    assert run.data.tags[TAG_MODEL_VERSION] == f"{model}/{version}"
    mv = client.get_model_version(model, version)
    assert (version, mv.run_id, mv.aliases) == ("1", run_id, [ALIAS_CHALLENGER])
    assert {k: mv.tags[k] for k in expected_lineage} == expected_lineage
    assert mv.tags[TAG_ONNX_SHA256] == hashlib.sha256(stand_in.onnx_path.read_bytes()).hexdigest()
    assert mv.tags[TAG_PYTORCH_MODEL_URI].startswith("models:/")


def test_registered_onnx_model_serves_through_pyfunc(tracking_uri: str, stand_in: StandIn,
                                                     tmp_path: Path) -> None:
    """Serving smoke test: ``models:/NAME@challenger`` through ``mlflow.pyfunc`` (ONNX Runtime
    behind it) predicts what ONNX Runtime predicts on the file, and the PyTorch flavour what the
    module predicts. (The comparison with ``noa predict`` is wired when that stage exists.)"""
    import mlflow
    import onnxruntime as ort
    import torch

    model = f"noa-serving-{uuid.uuid4().hex[:8]}"
    run_id = open_run(tracking_uri, "noa-serving", params={}, config={})
    register_model(tracking_uri, model, run_id, stand_in.onnx_path, stand_in.module,
                   stand_in.example, lineage("serving"))
    batch = {"u": np.random.default_rng(1).standard_normal((3, 2, 4, 4)).astype(np.float32)}

    # Downloads go under tmp_path: without dst_path MLflow leaves them in a mkdtemp.
    for flavour in ("onnx", "torch"):
        (tmp_path / flavour).mkdir()
    with fluent_uri(tracking_uri):  # pyfunc resolves models:/ URIs through the global URI
        served = mlflow.pyfunc.load_model(f"models:/{model}@{ALIAS_CHALLENGER}",
                                          dst_path=str(tmp_path / "onnx")).predict(batch)
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        torch_uri = client.get_model_version(model, "1").tags[TAG_PYTORCH_MODEL_URI]
        torch_model = mlflow.pytorch.load_model(torch_uri, dst_path=str(tmp_path / "torch"))
    direct = ort.InferenceSession(str(stand_in.onnx_path)).run(None, batch)[0]
    np.testing.assert_array_equal(served["u_next"], direct)
    with torch.no_grad():
        expected = stand_in.module(torch.from_numpy(batch["u"])).numpy()
        got = torch_model(torch.from_numpy(batch["u"])).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(direct, expected, rtol=0, atol=1e-5)


def test_register_refuses_bad_lineage_before_logging(tracking_uri: str,
                                                     stand_in: StandIn) -> None:
    run_id = open_run(tracking_uri, "noa-lifecycle", params={}, config={})
    partial = {k: v for k, v in lineage("bad").items() if k != "git_commit"}
    with pytest.raises(TrackingError, match=r"lineage: missing \['git_commit'\]"):
        register_model(tracking_uri, "noa-never", run_id, stand_in.onnx_path, None,
                       stand_in.example, partial)
    wrong_digest = {**lineage("bad"), "dataset_sha256": "not-a-digest"}
    with pytest.raises(TrackingError, match=r"dataset_sha256.*64 lowercase hex"):
        register_model(tracking_uri, "noa-never", run_id, stand_in.onnx_path, None,
                       stand_in.example, wrong_digest)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    assert client.search_registered_models(filter_string="name = 'noa-never'") == []
    assert _artifact_paths(client, run_id) == {ARTIFACT_CONFIG}
