"""Checkpoints that do not fit their model: a clear error naming the file, never a traceback.

A model directory whose ``config.yaml`` and ``model.pt`` come from different trainings, and a
``state.pt`` that ``--resume`` finds in OUT but that another model configuration wrote."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from noa_core.cli import main
from noa_core.config import NOAConfig
from noa_core.errors import TrainingError
from noa_core.training.checkpoint import CONFIG_FILE, MODEL_FILE, load_model_checkpoint
from noa_core.training.trainer import STATE_FILE, Trainer, train


def _wider(cfg: NOAConfig) -> NOAConfig:
    """``cfg`` with another U-AFNO width: every conv of the model changes shape."""
    model = cfg.model.model_copy(update={"base_channels": 2 * cfg.model.base_channels,
                                         "max_channels": 2 * cfg.model.max_channels})
    return cfg.model_copy(update={"model": model})


@pytest.fixture(scope="module")
def trained(train_cfg: NOAConfig, train_data: tuple[Path, Path],
            tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUT of a 2-step training: checkpoint/ and state.pt."""
    out = tmp_path_factory.mktemp("trained")
    cfg = train_cfg.model_copy(update={"training": train_cfg.training.model_copy(
        update={"max_steps": 2})})
    train(cfg, *train_data, out, progress=False)
    return out


def test_weights_of_another_model_are_named_not_loaded(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "checkpoint"
    shutil.copytree(trained / "checkpoint", ckpt)
    load_model_checkpoint(ckpt)  # the copy as written loads
    meta = yaml.safe_load((ckpt / CONFIG_FILE).read_text())
    meta["config"]["model"]["base_channels"] *= 2
    (ckpt / CONFIG_FILE).write_text(yaml.safe_dump(meta, sort_keys=False))
    with pytest.raises(TrainingError, match=r"model\.pt: the weights do not fit the model that "
                                            r".*config\.yaml describes: \d+ tensors of another "
                                            r"shape \(first: .* where the model has \[\d+"):
        load_model_checkpoint(ckpt)
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "come from different trainings" in err
    assert not (tmp_path / "m.onnx").exists()


def test_weights_that_are_not_a_state_dict_are_named(trained: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint"
    shutil.copytree(trained / "checkpoint", ckpt)
    weights = torch.load(ckpt / MODEL_FILE, weights_only=True)
    first = next(iter(weights))
    torch.save({**weights, "extra.weight": torch.zeros(1)}, ckpt / MODEL_FILE)
    with pytest.raises(TrainingError, match=r"1 unexpected tensors \(first: extra\.weight\)"):
        load_model_checkpoint(ckpt)
    torch.save({k: v for k, v in weights.items() if k != first}, ckpt / MODEL_FILE)
    with pytest.raises(TrainingError, match=rf"1 missing tensors \(first: {first}\)"):
        load_model_checkpoint(ckpt)
    torch.save([1, 2], ckpt / MODEL_FILE)
    with pytest.raises(TrainingError, match="it holds a list, not a dict of tensors"):
        load_model_checkpoint(ckpt)


def test_a_broken_config_yaml_is_one_line(trained: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "checkpoint"
    shutil.copytree(trained / "checkpoint", ckpt)
    text = (ckpt / CONFIG_FILE).read_text()
    (ckpt / CONFIG_FILE).write_text(text.replace("config:", "config: [", 1))
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{ckpt / CONFIG_FILE}: line " in err
    assert "invalid YAML" in err and not (tmp_path / "m.onnx").exists()
    meta = yaml.safe_load(text)
    del meta["config"]
    (ckpt / CONFIG_FILE).write_text(yaml.safe_dump(meta))
    with pytest.raises(TrainingError, match=r"config\.yaml: config: expected the training "
                                            r"configuration as a mapping, got NoneType"):
        load_model_checkpoint(ckpt)


def test_a_missing_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="nope: no such checkpoint directory"):
        load_model_checkpoint(tmp_path / "nope")


@pytest.fixture
def out(trained: Path, tmp_path: Path) -> Path:
    """A fresh OUT holding a copy of ``trained``'s state.pt."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(trained / STATE_FILE, out / STATE_FILE)
    return out


def test_resume_refuses_the_state_of_another_model(
        out: Path, train_cfg: NOAConfig, train_data: tuple[Path, Path]) -> None:
    Trainer(train_cfg, *train_data, out, progress=False).resume()  # the same model resumes
    other = Trainer(_wider(train_cfg), *train_data, out, progress=False)
    with pytest.raises(TrainingError, match=r"state\.pt: written by a training of another "
                                            r"model \(\d+ tensors of another shape"):
        other.resume()
    state = torch.load(out / STATE_FILE, weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "optimizer"}, out / STATE_FILE)
    with pytest.raises(TrainingError, match=r"not a training state: keys \['optimizer'\] "
                                            "are missing"):
        Trainer(train_cfg, *train_data, out, progress=False).resume()


def test_resume_refuses_another_configuration_but_not_another_budget(
        out: Path, train_cfg: NOAConfig, train_data: tuple[Path, Path]) -> None:
    t = train_cfg.training
    # `trained` ran with max_steps 2: a longer, time-capped budget and a new name continue it
    longer = train_cfg.model_copy(update={"name": "extended", "training": t.model_copy(
        update={"max_steps": 9, "max_minutes": 3.0})})
    resumed = Trainer(longer, *train_data, out, progress=False)
    resumed.resume()
    assert resumed.step == 2
    other = train_cfg.model_copy(update={"training": t.model_copy(
        update={"lr": 2 * t.lr, "seed": t.seed + 1})})
    with pytest.raises(TrainingError) as info:
        Trainer(other, *train_data, out, progress=False).resume()
    msg = str(info.value)
    assert f"training.lr {t.lr!r} → {2 * t.lr!r}, training.seed {t.seed} → {t.seed + 1}" in msg
    assert "state.pt: written under another configuration" in msg
    assert "training.max_minutes, training.max_steps may change" in msg


def test_resume_refuses_other_inputs(out: Path, train_cfg: NOAConfig,
                                     train_data: tuple[Path, Path]) -> None:
    state = torch.load(out / STATE_FILE, weights_only=True)
    saved = state["inputs"]
    assert set(saved) == {"dataset_sha256", "tokenizer_sha256"}  # `trained` ran through train()
    cfg = train_cfg.model_copy(update={"training": train_cfg.training.model_copy(
        update={"max_steps": 3})})
    # unknown on either side is not compared: the same inputs resume, one step more
    torch.save({**state, "inputs": {**saved, "dataset_sha256": "unknown"}}, out / STATE_FILE)
    assert train(cfg, *train_data, out, resume=True, progress=False)["steps"] == 3
    state = torch.load(out / STATE_FILE, weights_only=True)
    other = "0" * 64
    torch.save({**state, "inputs": {**saved, "tokenizer_sha256": other}}, out / STATE_FILE)
    with pytest.raises(TrainingError, match=rf"state\.pt: written while training on other "
                                            rf"inputs: tokenizer_sha256 {other[:12]}… → "
                                            rf"{saved['tokenizer_sha256'][:12]}…; give the same"):
        train(cfg, *train_data, out, resume=True, progress=False)
