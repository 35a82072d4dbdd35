"""Evaluation with operator context: K observed steps fed, baselines from u_K, and the
shuffled-context ablation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from noa_core.cli import main
from noa_core.errors import EvaluationError
from noa_core.evaluation.evaluate import derangement, evaluate
from noa_core.features.schema import feature_schema
from noa_core.training.checkpoint import load_model_checkpoint, save_model_checkpoint

# An operator's observed motion, extrapolated, against another operator's: independent
# increments differ by about √2 of one's own, so shuffling moves a pure extrapolator's
# prediction by far more than this share of its own motion.
MIN_ABLATION_CHANGE = 0.5


def test_derangement_moves_every_operator_reproducibly() -> None:
    for n in (2, 3, 17):
        perm = derangement(n, seed=3)
        assert sorted(perm) == list(range(n)) and not (perm == np.arange(n)).any()
        assert np.array_equal(perm, derangement(n, seed=3))
    assert not np.array_equal(derangement(17, 3), derangement(17, 4))
    with pytest.raises(EvaluationError, match="at least 2 test operators"):
        derangement(1, 0)


def _extrapolator(eval_setup: dict[str, Path], root: Path, gate: float) -> Path:
    """The fixture's checkpoint with its context reduced to the drift gate (bias ``gate``):
    the encoder's embedding and the context stem silenced, so the context acts only as the
    extrapolated mean increment; the per-policy gain (perturbed in the fixture, and no part of
    the context) silenced too, so the model's own motion is the extrapolation."""
    model, cfg, _ = load_model_checkpoint(eval_setup["checkpoint"])
    with torch.no_grad():
        model.context_encoder.mlp[-1].weight.zero_()
        model.context_encoder.mlp[-1].bias.zero_()
        model.net.context_stem.weight.zero_()
        model.drift_gate.weight.zero_()
        model.drift_gate.bias.fill_(gate)
        model.drift_table.weight.zero_()
        model.gain_table.weight.zero_()
    out = root / f"gate{gate}" / "checkpoint"
    save_model_checkpoint(out, model.eval(), cfg, feature_schema(cfg.dynamics.feature_horizon),
                          eval_setup["tokenizer"], {"step": 0})
    return out


@pytest.mark.parametrize("gate", [1.0, 0.0])
def test_the_ablation_reports_what_the_context_moves(eval_setup: dict[str, Path],
                                                     tmp_path: Path, gate: float) -> None:
    s = eval_setup
    ckpt = _extrapolator(s, tmp_path, gate)
    result = evaluate(ckpt, s["replay"], s["tokenizer"], tmp_path / "out",
                      criteria=s["criteria"], progress=False, ablate_context=True)
    m = result["metrics"]
    abl = m["context_ablation"]
    assert m["context"] == 2 and m["context_fed"] and m["context_ablation_seed"] == 0
    assert abl["rollout_mse_with_context"] == pytest.approx(m["rollout_mse"]["value"])
    assert abl["n"] == 3 and len(abl["per_step"]) == 16 and abl["ci"][0] <= abl["ci"][1]
    if gate:
        assert abl["prediction_change"] > MIN_ABLATION_CHANGE
        assert abl["value"] != pytest.approx(m["rollout_mse"]["value"])
    else:  # a model that ignores its context: shuffling changes nothing at all
        assert abl["prediction_change"] == 0.0
        assert abl["value"] == m["rollout_mse"]["value"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "NOA, shuffled context" in report and "u_0 … u_K" in report


def test_context_k_changes_the_start_state_and_every_baseline(eval_setup: dict[str, Path],
                                                            tmp_path: Path) -> None:
    """K = 0 scores from X_0 (and the tokens `noa replay` stored are recomputed exactly);
    K = 1 from u_1: the baselines move with the window."""
    s = eval_setup
    runs = {k: evaluate(s["checkpoint"], s["replay"], s["tokenizer"], tmp_path / f"k{k}",
                        criteria=s["criteria"], progress=False, context=k)["metrics"]
            for k in (0, 1)}
    assert runs[0]["context_fed"] is False and runs[1]["context_fed"] is True
    assert runs[0]["monitors"]["stored_token_agreement"] == 1.0
    for key in ("persistence", "theta_only", "noise_floor"):
        assert runs[0][key]["value"] != pytest.approx(runs[1][key]["value"]), key
    assert "context_ablation" not in runs[0]


def test_bad_context_requests_are_refused(eval_setup: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    s = eval_setup
    base = ["evaluate", "--checkpoint", str(s["checkpoint"]), "--replay", str(s["replay"]),
            "--tokenizer", str(s["tokenizer"]), "--criteria", str(s["criteria"]),
            "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "a"), "--context", "0",
                 "--ablate-context"]) == 1
    assert "--ablate-context shuffles the observed context" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--context", "3"]) == 1
    assert "dynamics.context_max = 2" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_prints_the_ablation(eval_setup: dict[str, Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    s = eval_setup
    ckpt = _extrapolator(s, tmp_path, 1.0)
    assert main(["evaluate", "--checkpoint", str(ckpt), "--replay", str(s["replay"]),
                 "--tokenizer", str(s["tokenizer"]), "--criteria", str(s["criteria"]),
                 "--out", str(tmp_path / "out"), "--ablate-context", "--no-progress"]) == 0
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert f"{m['context_ablation']['value']:.4g} with another operator's" in out
