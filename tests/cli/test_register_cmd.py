"""``noa register``: help, and bad input as one line on stderr (exit 1) before any store is
touched: a missing ONNX file, a checkpoint that records no MLflow run, a file that is not the
checkpoint's step, no tracking URI, no checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from noa_core.cli import main
from noa_core.config import load_config
from noa_core.features.schema import feature_schema
from noa_core.models import build_model
from noa_core.training.checkpoint import save_model_checkpoint

RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `tiny` NOA checkpoint as training writes it, without tracking (no run recorded)."""
    root = tmp_path_factory.mktemp("register-cli")
    tok = root / "tokenizer"
    tok.mkdir()
    (tok / "weights.pt").write_bytes(b"stand-in tokenizer weights")
    cfg = load_config("tiny")
    torch.manual_seed(0)
    ckpt = root / "train" / "checkpoint"
    save_model_checkpoint(ckpt, build_model(cfg).eval(), cfg,
                          feature_schema(cfg.dynamics.feature_horizon), tok, {"step": 0})
    return ckpt


def _register(ckpt: Path, onnx: Path, uri: str, *extra: str) -> list[str]:
    return ["register", "--checkpoint", str(ckpt), "--onnx", str(onnx), "--model-name", "noa",
            "--tracking-uri", uri, *extra]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("noa: error: "), err
    return err.strip()


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["register", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for flag in ("--checkpoint DIR", "--onnx FILE", "--model-name NAME", "--tracking-uri URI",
                 "--run-id ID", "--pipeline-run-id ID", "--image-digest D", "--criteria"):
        assert flag in out, flag
    assert "tracking.mlflow_run_id" in out  # the default-run rule is documented


def test_missing_onnx_is_one_line(checkpoint: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "model.onnx"
    assert main(_register(checkpoint, missing, f"sqlite:///{tmp_path / 'm.db'}")) == 1
    assert _one_error_line(capsys) == (f"noa: error: {missing}: no such ONNX file to register "
                                       f"(run `noa export` first)")
    assert not (tmp_path / "m.db").exists()


def test_no_recorded_run_is_one_line(checkpoint: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"never read: the run is resolved first")
    assert main(_register(checkpoint, onnx, f"sqlite:///{tmp_path / 'm.db'}")) == 1
    line = _one_error_line(capsys)
    assert f"{checkpoint}: no MLflow run recorded" in line
    assert line.endswith("train with --tracking-uri, or pass --run-id")
    assert not (tmp_path / "m.db").exists()


def test_a_file_that_is_not_the_step_is_one_line(checkpoint: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not an ONNX graph")
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    assert main(_register(checkpoint, onnx, uri, "--run-id", RUN_ID)) == 1
    assert f"{onnx}: ONNX Runtime cannot run this checkpoint's step" in _one_error_line(capsys)
    assert not (tmp_path / "m.db").exists()


def test_no_tracking_uri_is_refused(checkpoint: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_register(checkpoint, tmp_path / "x.onnx", " ", "--run-id", RUN_ID)) == 1
    assert "no tracking URI given: pass --tracking-uri" in _one_error_line(capsys)
    with pytest.raises(SystemExit) as info:
        main(["register", "--checkpoint", str(checkpoint), "--onnx", "x.onnx",
              "--model-name", "noa"])
    assert info.value.code == 2 and "--tracking-uri" in capsys.readouterr().err


def test_not_a_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"x")
    assert main(_register(tmp_path, onnx, f"sqlite:///{tmp_path / 'm.db'}")) == 1
    assert "missing config.yaml (not a NOA checkpoint directory)" in _one_error_line(capsys)
