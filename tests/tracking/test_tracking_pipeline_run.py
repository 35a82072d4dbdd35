"""One pipeline execution's tracking with the real stages on `tiny`, against a real ``mlflow
server`` on loopback: ``train`` opens the run, ``evaluate`` and ``export`` log into it,
``noa register`` creates a version aliased ``challenger`` with lineage tags; the registered
model then serves through ``mlflow.pyfunc`` exactly what ``noa predict`` predicts."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from pipeline_test_support import one_thread

from noa_core.cli import main
from noa_core.config import load_config
from noa_core.errors import TrackingError
from noa_core.evaluation.criteria import load_criteria
from noa_core.evaluation.evaluate import evaluate
from noa_core.export.metadata import read_metadata
from noa_core.export.stage import export_model
from noa_core.features.schema import feature_schema
from noa_core.tracking.client import fluent_uri
from noa_core.tracking.constants import (
    ALIAS_CHALLENGER,
    ARTIFACT_CONFIG,
    LINEAGE_TAGS,
    TAG_CONTEXT_ENCODER,
    TAG_CONTEXT_ENCODER_SHA256,
    TAG_MODEL_VERSION,
    TAG_ONNX_SHA256,
    TAG_PYTORCH_MODEL_URI,
    TRAIN_METRIC_PREFIX,
)
from noa_core.tracking.register_stage import register_checkpoint
from noa_core.training.checkpoint import load_model_checkpoint, save_model_checkpoint
from noa_core.training.trainer import train

pytestmark = pytest.mark.slow  # the whole stage chain on `tiny`: ~1 min on 2 shared cores

PIPELINE_RUN = "kfp-run-pipeline-test"
IMAGE_DIGEST = "sha256:" + "ab" * 32
# noa predict and the served model both run the graph in ONNX Runtime on CPU: they must agree
# to float32 round-off of one step (field units; the tiny fields have std ≈ 1).
SERVING_ATOL = 1e-5
# The PyTorch flavour is the torch step; against ONNX Runtime, export's parity scale.
TORCH_ATOL = 1e-4


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="module")
def pipeline(tracking_uri: str, phase0: dict[str, Path],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """train → evaluate → export → ``noa register`` (the CLI) into one run."""
    root = tmp_path_factory.mktemp("pipeline")
    name = f"noa-pipeline-{uuid.uuid4().hex[:8]}"
    ckpt, onnx = root / "train" / "checkpoint", root / "model.onnx"
    with one_thread():
        metrics = train(load_config(phase0["config"]), phase0["replay"], phase0["tokenizer"],
                        root / "train", progress=False, tracking_uri=tracking_uri,
                        pipeline_run_id=PIPELINE_RUN)
        run_id = metrics["mlflow_run_id"]
        evaluated = evaluate(ckpt, phase0["replay"], phase0["tokenizer"], root / "eval",
                             criteria=phase0["criteria"], tracking_uri=tracking_uri,
                             run_id=run_id, progress=False)
        export_model(ckpt, onnx, tracking_uri=tracking_uri, run_id=run_id)
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            code = main(["register", "--checkpoint", str(ckpt), "--onnx", str(onnx),
                         "--model-name", name, "--tracking-uri", tracking_uri,
                         "--image-digest", IMAGE_DIGEST])
    assert code == 0
    return {"name": name, "run_id": run_id, "metrics": metrics, "evaluated": evaluated,
            "onnx": onnx, "out": root / "train", "stdout": stdout.getvalue(),
            "client": MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)}


def _history(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_train_opens_the_run_evaluate_and_export_log_into_it(
        pipeline: dict[str, Any], phase0: dict[str, Path], tmp_path: Path) -> None:
    client, run_id, out = pipeline["client"], pipeline["run_id"], pipeline["out"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["training.max_steps"] == "4"
    assert run.data.params["input.replay"] == "replay.h5"
    config = yaml.safe_load(Path(client.download_artifacts(run_id, ARTIFACT_CONFIG,
                                                           str(tmp_path))).read_text())
    assert config == load_config(phase0["config"]).model_dump(mode="json")
    # step metrics: every log point (log_every 1) and every validation (val_every 2)
    assert _history(client, run_id, f"{TRAIN_METRIC_PREFIX}total") == [1, 2, 3, 4]
    assert _history(client, run_id, "val_traj_mse") == [2, 4]
    m = run.data.metrics
    assert m["val_traj_mse"] == pytest.approx(pipeline["metrics"]["val_traj_mse"])
    assert m["steps"] == 4
    # evaluate's metrics and gate, export's parity, in the same run
    assert m["gate.passed"] == float(pipeline["evaluated"]["passed"])
    assert "rollout_mse" in m and "export.parity_max_rel_error" in m
    assert {ARTIFACT_CONFIG, "evaluation/gate.json", "evaluation/report.md",
            "export/model.onnx", "export/model.parity.json"} <= _artifacts(client, run_id)
    # the id where later stages find it
    assert json.loads((out / "metrics.json").read_text())["mlflow_run_id"] == run_id
    ckpt_meta = yaml.safe_load((out / "checkpoint" / "config.yaml").read_text())
    assert ckpt_meta["tracking"] == {"mlflow_run_id": run_id}


def test_register_creates_a_challenger_version_with_lineage(
        pipeline: dict[str, Any], phase0: dict[str, Path]) -> None:
    client, name, run_id = pipeline["client"], pipeline["name"], pipeline["run_id"]
    assert pipeline["stdout"].splitlines()[0] == (f"{name} version 1 is now {ALIAS_CHALLENGER} "
                                                  f"(run {run_id})")
    mv = client.get_model_version(name, "1")
    assert (mv.run_id, mv.aliases) == (run_id, [ALIAS_CHALLENGER])
    sha = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest()
           for p in (phase0["dataset"], phase0["tokenizer"] / "weights.pt", pipeline["onnx"])}
    expected = {"pipeline_run_id": PIPELINE_RUN, "image_digest": IMAGE_DIGEST,
                "dataset_sha256": sha[phase0["dataset"]],
                "tokenizer_sha256": sha[phase0["tokenizer"] / "weights.pt"],
                "criteria_hash": load_criteria(phase0["criteria"]).digest()}
    assert expected["criteria_hash"] == pipeline["evaluated"]["gate"]["criteria_sha256"]
    for key, value in expected.items():
        assert mv.tags[LINEAGE_TAGS[key]] == value, key
    assert re.fullmatch(r"unknown|[0-9a-f]{40}(-dirty)?", mv.tags[LINEAGE_TAGS["git_commit"]])
    assert mv.tags[TAG_ONNX_SHA256] == sha[pipeline["onnx"]]
    encoder = Path(pipeline["onnx"]).with_name("model.context.onnx")  # `tiny` reads a context
    assert mv.tags[TAG_CONTEXT_ENCODER_SHA256] == hashlib.sha256(encoder.read_bytes()).hexdigest()
    logged = {a.path for a in client.list_artifacts(run_id, "onnx_context_encoder")}
    assert logged == {mv.tags[TAG_CONTEXT_ENCODER]} == {"onnx_context_encoder/model.context.onnx"}
    run_tags = client.get_run(run_id).data.tags
    assert run_tags[TAG_MODEL_VERSION] == f"{name}/1"
    assert {k: run_tags[v] for k, v in LINEAGE_TAGS.items()} == {
        k: mv.tags[v] for k, v in LINEAGE_TAGS.items()}


def test_registered_model_serves_what_noa_predict_predicts(
        pipeline: dict[str, Any], phase0: dict[str, Path], tracking_uri: str,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Serving smoke test: ``models:/NAME@challenger`` through ``mlflow.pyfunc`` on the start
    states and θ of ``noa predict``'s output gives its step 1 within ``SERVING_ATOL``; the
    PyTorch flavour gives it within ``TORCH_ATOL``. K = 0: the context inputs are zeros."""
    import mlflow
    import torch

    pred = tmp_path / "pred.h5"
    assert main(["predict", "--onnx", str(pipeline["onnx"]), "--replay", str(phase0["replay"]),
                 "--out", str(pred), "--steps", "1", "--context", "0"]) == 0
    with h5py.File(pred, "r") as f:
        fields, theta = f["predictions/fields"][:], f["parameters/params"][:]
    assert fields.shape[:2] == (3, 2) and np.abs(fields[:, 1] - fields[:, 0]).max() > 1e-3
    emb = np.zeros((len(theta), int(read_metadata(pipeline["onnx"])["embed_dim"])), np.float32)
    inputs = {"theta": theta.astype(np.float32), "context_embedding": emb, "u": fields[:, 0],
              "context_field": np.zeros((len(theta), 2 * fields.shape[2], *fields.shape[3:]),
                                        np.float32)}
    torch_uri = pipeline["client"].get_model_version(pipeline["name"], "1") \
        .tags[TAG_PYTORCH_MODEL_URI]
    # Downloads go under tmp_path: without dst_path MLflow leaves them in a mkdtemp.
    for flavour in ("onnx", "torch"):
        (tmp_path / flavour).mkdir()
    with fluent_uri(tracking_uri):  # pyfunc resolves models:/ through the global URI
        served = mlflow.pyfunc.load_model(f"models:/{pipeline['name']}@{ALIAS_CHALLENGER}",
                                          dst_path=str(tmp_path / "onnx")) \
            .predict(inputs)["u_next"]
        torch_step = mlflow.pytorch.load_model(torch_uri, dst_path=str(tmp_path / "torch"))
    with torch.no_grad():
        by_torch = torch_step(*(torch.from_numpy(v) for v in inputs.values())).numpy()
    serving_diff = float(np.abs(served - fields[:, 1]).max())
    torch_diff = float(np.abs(by_torch - fields[:, 1]).max())
    with capsys.disabled():
        print(f"\nserving smoke test: max |pyfunc − noa predict| = {serving_diff:.3g}, "
              f"max |pytorch flavour − noa predict| = {torch_diff:.3g} (field std "
              f"{fields[:, 1].std():.3g})")
    assert serving_diff <= SERVING_ATOL
    assert torch_diff <= TORCH_ATOL


def test_register_refuses_an_onnx_file_of_another_checkpoint(
        pipeline: dict[str, Any], phase0: dict[str, Path], tracking_uri: str,
        tmp_path: Path) -> None:
    import torch

    model, cfg, _ = load_model_checkpoint(pipeline["out"] / "checkpoint")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    other = tmp_path / "checkpoint"
    save_model_checkpoint(other, model, cfg, feature_schema(cfg.dynamics.feature_horizon),
                          phase0["tokenizer"], {"step": 4})
    with pytest.raises(TrackingError, match=r"not the step of .*export it again"):
        register_checkpoint(other, pipeline["onnx"], pipeline["name"], tracking_uri,
                            run_id=pipeline["run_id"])
    versions = pipeline["client"].search_model_versions(f"name = '{pipeline['name']}'")
    assert [v.version for v in versions] == ["1"]
