"""``noa export`` and ``noa predict``: metadata, H-step parity at another batch, ORT alone."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest
import torch

from noa_core.cli import main
from noa_core.config import NOAConfig
from noa_core.data.hdf5_reader import DatasetReader
from noa_core.errors import EvaluationError
from noa_core.export.metadata import read_metadata
from noa_core.export.predict import PREDICTIONS, predict
from noa_core.export.stage import PARITY_BATCH, TRACE_BATCH, parity_path, replay_inputs
from noa_core.features.schema import feature_schema
from noa_core.models import build_model, perturb_zero_layers
from noa_core.models.registry import model_inputs
from noa_core.tracking import open_run, run_metrics
from noa_core.training.checkpoint import load_model_checkpoint, save_model_checkpoint

TOLERANCE = 1e-4  # of each sample's field standard deviation


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread for this module (on 2 shared, loaded cores torch's 2-thread
    kernels wait on each other); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_cfg: NOAConfig) -> Path:
    """A tiny NOA checkpoint (conditioning perturbed, non-trivial field statistics)."""
    root = tmp_path_factory.mktemp("exportckpt")
    tok = root / "tokenizer"
    tok.mkdir()
    (tok / "weights.pt").write_bytes(b"stand-in: only its sha256 is recorded")
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    perturb_zero_layers(model, 0.05, torch.Generator().manual_seed(1))
    model.set_field_stats(torch.tensor([0.1, -0.2]), torch.tensor([0.8, 1.3]))
    save_model_checkpoint(root / "checkpoint", model.eval(), tiny_cfg,
                          feature_schema(tiny_cfg.dynamics.feature_horizon), tok, {"step": 7})
    return root / "checkpoint"


@pytest.fixture(scope="module")
def tracked_export(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
                   ) -> tuple[Path, str, str]:
    """``noa export`` logging into a run of a real sqlite MLflow store: (model, URI, run id)."""
    root = tmp_path_factory.mktemp("exported")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The ``noload`` loader strategy")  # MLflow's own
        run_id = open_run(uri, "noa-export", params={"preset": "tiny"}, config={})
        out = root / "model.onnx"
        assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out),
                     "--tracking-uri", uri, "--run-id", run_id]) == 0
    return out, uri, run_id


@pytest.fixture(scope="module")
def exported(tracked_export: tuple[Path, str, str]) -> Path:
    return tracked_export[0]


def test_export_writes_a_parity_report_at_another_batch(exported: Path) -> None:
    report = json.loads(parity_path(exported).read_text())
    assert report["passed"] is True and report["finite"] is True
    assert report["traced_batch"] == TRACE_BATCH and report["batch"] == PARITY_BATCH
    assert report["batch"] != report["traced_batch"]
    assert report["steps"] == 16  # the feature horizon H of `tiny`
    assert report["context"] == 2  # `tiny` trains with K = 2: the encoder is in the rollout
    assert report["max_rel_error"] <= TOLERANCE
    assert len(report["per_sample_rel_error"]) == PARITY_BATCH


def test_the_graph_carries_its_metadata(exported: Path, checkpoint: Path,
                                        tiny_cfg: NOAConfig) -> None:
    graph = onnx.load(str(exported))
    onnx.checker.check_model(graph)
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 18
    meta = read_metadata(exported)
    model, _, ckpt_meta = load_model_checkpoint(checkpoint)
    assert meta["feature_schema"] == ckpt_meta["feature_schema"]
    assert meta["normalisation"]["field_mean"] == pytest.approx([0.1, -0.2])
    assert meta["normalisation"]["field_std"] == pytest.approx([0.8, 1.3])
    assert set(meta["versions"]) == {"noa-core", "torch", "onnx", "onnxruntime", "onnxscript"}
    assert len(meta["theta_names"]) == meta["theta_dim"] == model.theta_dim == 12
    assert (meta["channels"], meta["grid"], meta["horizon"]) == (2, 16, 16)
    assert (meta["context"], meta["context_max"], meta["graph"]) == (2, 2, "step")
    assert meta["context_encoder"] == "model.context.onnx"
    encoder = exported.with_name(meta["context_encoder"])
    onnx.checker.check_model(onnx.load(str(encoder)))
    assert read_metadata(encoder)["graph"] == "context_encoder"
    assert [i.name for i in graph.graph.input] == ["theta", "context_embedding", "u",
                                                    "context_field"]
    assert meta["checkpoint"]["step"] == 7
    dims = [d.dim_param or d.dim_value for d in graph.graph.input[2].type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [2, 16, 16]  # dynamic batch


@pytest.mark.parametrize("k", [None, 1, 0])
def test_predict_matches_torch_over_h_steps(exported: Path, checkpoint: Path,
                                            tiny_dataset: Path, tmp_path: Path,
                                            k: int | None) -> None:
    """ONNX Runtime alone (encoder, then H steps) against the torch model's rollout from
    realization 0's state K given u_0 … u_K: the model's K (2), another K, and none."""
    out = tmp_path / "pred.h5"
    extra = [] if k is None else ["--context", str(k)]
    assert main(["predict", "--onnx", str(exported), "--replay", str(tiny_dataset),
                 "--out", str(out), "--split", "all", "--batch-size", "5", "--threads", "1",
                 *extra]) == 0
    with h5py.File(out, "r") as f:
        pred = f[PREDICTIONS][()]
        ids = f["metadata/sample_ids"][()]
        attrs = dict(f["metadata"].attrs)
    k = 2 if k is None else k
    with DatasetReader(tiny_dataset) as r:
        theta = torch.from_numpy(r.theta.astype(np.float32))
        ctx = torch.from_numpy(np.stack([r.trajectory(i)[0, :k + 1]
                                         for i in range(r.num_samples)]))
        assert torch.equal(ctx[:, 0], torch.from_numpy(r.ics(slice(None))))
        assert np.array_equal(ids, r.sample_ids)
    assert pred.shape == (12, 17, 2, 16, 16)  # batches of 5, 5, 2: none the traced 2 alone
    assert attrs["kind"] == "predictions" and attrs["num_steps"] == 16
    assert attrs["context"] == k and ("context_encoder_sha256" in attrs) == (k > 0)
    model, _, _ = load_model_checkpoint(checkpoint)
    with torch.no_grad():
        ref = model.rollout(theta, ctx[:, -1], 16, ctx if k else None).numpy()
    assert np.array_equal(pred[:, 0], ctx[:, -1].numpy())
    err = np.abs(pred - ref).reshape(12, -1).max(1) / ref.reshape(12, -1).std(1)
    assert err.max() <= TOLERANCE
    assert np.abs(pred[:, -1] - pred[:, 0]).max() > 1e-3  # it really moved


def test_predict_refuses_a_context_the_model_cannot_read(exported: Path, tiny_dataset: Path,
                                                         tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match=r"takes K = 0 … 2"):
        predict(exported, tiny_dataset, tmp_path / "p.h5", context=3)
    lonely = tmp_path / "alone" / "model.onnx"  # the step without its encoder beside it
    lonely.parent.mkdir()
    lonely.write_bytes(exported.read_bytes())
    with pytest.raises(EvaluationError, match=r"model\.context\.onnx: the context encoder"):
        predict(lonely, tiny_dataset, tmp_path / "p.h5")
    assert predict(lonely, tiny_dataset, tmp_path / "p.h5", context=0)["context"] == 0
    assert not (tmp_path / "alone" / ".p.h5.tmp").exists()


def test_predict_refuses_a_graph_without_noa_metadata(tmp_path: Path, tiny_dataset: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    x = onnx.helper.make_tensor_value_info("u", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("u_next", onnx.TensorProto.FLOAT, [1])
    bare = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["u"], ["u_next"])], "g", [x], [y]))
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    code = main(["predict", "--onnx", str(tmp_path / "bare.onnx"), "--replay",
                 str(tiny_dataset), "--out", str(tmp_path / "p.h5")])
    assert code == 1
    assert "metadata_props lack noa.format" in capsys.readouterr().err
    assert not (tmp_path / "p.h5").exists()
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(EvaluationError, match="not a readable ONNX model"):
        predict(tmp_path / "junk.onnx", tiny_dataset, tmp_path / "p.h5")


def test_parity_inputs_from_a_replay_file_cycle_its_test_rows(tiny_dataset: Path,
                                                              tiny_cfg: NOAConfig) -> None:
    shapes = model_inputs(tiny_cfg)
    theta, u, ctx = replay_inputs(tiny_dataset, PARITY_BATCH, 0, shapes)
    with DatasetReader(tiny_dataset) as r:
        rows = np.resize(r.indices_of_split("test"), PARITY_BATCH)
        assert np.array_equal(u.numpy(), r.ics(rows)) and ctx is None
        assert np.allclose(theta.numpy(), r.theta[rows])
        theta2, u2, ctx2 = replay_inputs(tiny_dataset, PARITY_BATCH, 2, shapes)
        assert torch.equal(theta2, theta) and ctx2.shape == (PARITY_BATCH, 3, 2, 16, 16)
        assert np.array_equal(ctx2.numpy(), r.trajectories(rows)[:, 0, :3])
        assert torch.equal(u2, ctx2[:, -1])


def test_a_replay_of_another_configuration_is_refused_before_any_file(
        checkpoint: Path, exported: Path, tiny_cfg: NOAConfig, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    wide = tmp_path / "wide.h5"
    with h5py.File(wide, "w") as f:  # 5 θ slots, 3 channels: another configuration's shapes
        f["parameters/params"] = np.random.default_rng(0).random((4, 5))
        f["inputs/fields"] = np.zeros((4, 3, 16, 16), np.float32)
    slots, (c, h, w) = model_inputs(tiny_cfg)
    taken = f"the model takes {slots} θ slots and [{c}, {h}, {w}]: a file of another configuration"
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out),
                 "--replay", str(wide)]) == 1
    err = capsys.readouterr().err
    assert "has 5 θ slots and inputs/fields are [C, H, W] = [3, 16, 16]; " + taken in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.h5"]  # no .onnx, no temp file
    assert main(["predict", "--onnx", str(exported), "--replay", str(wide),
                 "--out", str(tmp_path / "p.h5")]) == 1
    assert taken in capsys.readouterr().err and not (tmp_path / "p.h5").exists()


def test_export_logs_the_model_and_its_parity_report(tracked_export: tuple[Path, str, str]
                                                     ) -> None:
    from mlflow import MlflowClient

    out, uri, run_id = tracked_export
    found = {a.path for a in MlflowClient(uri).list_artifacts(run_id, "export")}
    assert found == {"export/model.onnx", "export/model.context.onnx", "export/model.parity.json"}
    report = json.loads(parity_path(out).read_text())
    assert run_metrics(uri, run_id)["export.parity_max_rel_error"] == \
        pytest.approx(report["max_rel_error"])
