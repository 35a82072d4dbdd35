"""``evaluate`` and ``noa evaluate`` end to end on the tiny setup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fast_artifacts import FAST_CRITERIA

from noa_core.cli import main
from noa_core.errors import EvaluationError
from noa_core.evaluation import gate
from noa_core.evaluation.evaluate import evaluate
from noa_core.tracking.gate import load_gate

SPEC = ("vq_recon_error", "token_entropy_ratio", "codebook_utilization", "cluster_ari",
        "rollout_mse")
BASELINES = ("persistence", "theta_only", "noise_floor", "new_weights")


def test_metrics_json_holds_criteria_baselines_counts_and_intervals(
        evaluated: dict[str, Any]) -> None:
    out: Path = evaluated["out"]
    m = json.loads((out / "metrics.json").read_text())
    assert m["samples"]["test"] == 3 and m["split"] == "test"
    assert len(m["test_ids_sha256"]) == 64
    for key in (*SPEC, *BASELINES, "skill_vs_persistence", "skill_vs_theta_only",
                "token_agreement", "rollout_nmse", "heads_mse"):
        entry = m[key]
        assert entry["n"] == 3, key
        assert entry["value"] is not None, (key, entry.get("reason"))
        lo, hi = entry["ci"]
        assert lo <= hi, key
        if key not in ("codebook_utilization", "cluster_ari", "token_entropy_ratio"):
            assert lo - 1e-12 <= entry["value"] <= hi + 1e-12, key  # set statistics may not
    assert len(m["rollout_mse"]["per_step"]) == m["horizon"] == 16
    for key in ("rollout_mse", *BASELINES):
        assert len(m[key]["per_step"]) == 16
        assert set(m[key]["by_policy"]) == set(m["samples"]["by_policy"])
    nf = m["noise_floor"]
    assert nf["value_vs_all_realizations"] == pytest.approx(0.25 * nf["value"], rel=1e-6)
    # `noa replay --tokenizer` stores the tokens of the window from state 0; this run scores
    # from u_K (K = 2), so there is nothing to compare (test_eval_context checks K = 0)
    assert (m["context"], m["context_fed"]) == (2, True)
    assert m["monitors"]["stored_token_agreement"] is None
    assert 0 <= m["codebook_utilization"]["value"] <= 1


def test_gate_json_is_the_contract_and_agrees_with_the_metrics(
        evaluated: dict[str, Any]) -> None:
    out: Path = evaluated["out"]
    doc = json.loads((out / "gate.json").read_text())
    assert set(doc) >= {"passed", "criteria"}
    metrics = json.loads((out / "metrics.json").read_text())
    for c in doc["criteria"]:
        assert {"name", "value", "op", "threshold", "passed"} <= set(c)
        assert c["value"] == metrics[c["metric"]]["value"]
    assert load_gate(out / "gate.json").passed == doc["passed"] == evaluated["result"]["passed"]
    assert doc["test_ids_sha256"] == metrics["test_ids_sha256"]
    md = (out / "report.md").read_text()
    assert "Decision" in md and "noise floor" in md and "one deterministic rollout" in md


def test_cli_exits_zero_on_a_failing_gate_and_repeats_the_api_run(
        evaluated: dict[str, Any], eval_setup: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The fixture's criteria plus one that cannot pass: the gate fails, the command exits 0,
    and every metric equals the API run's (evaluation seeds everything it draws)."""
    s = eval_setup
    criteria = tmp_path / "impossible.yaml"
    criteria.write_text(FAST_CRITERIA + "criteria:\n  rollout_mse: {metric: rollout_mse, "
                        "op: '<', threshold: 0.0}\n")
    champion = tmp_path / "champion.json"  # a champion far better than this model
    champion.write_text(json.dumps({"rollout_mse": {"value": 1e-9, "n": 3}}))
    code = main(["evaluate", "--checkpoint", str(s["checkpoint"]), "--replay", str(s["replay"]),
                 "--tokenizer", str(s["tokenizer"]), "--criteria", str(criteria),
                 "--champion-metrics", str(champion), "--out", str(tmp_path / "out"),
                 "--no-progress"])
    assert code == 0
    stdout = capsys.readouterr().out
    assert "gate: FAILED" in stdout and "champion.rollout_mse" in stdout
    doc = json.loads((tmp_path / "out" / "gate.json").read_text())
    assert doc["passed"] is False and doc["champion"]["compared"]
    assert [(c["name"], c["passed"]) for c in doc["criteria"]] == [
        ("rollout_mse", False), ("champion.rollout_mse", False)]
    for name in ("metrics.json", "gate.json", "report.md", "report.html"):
        assert (tmp_path / "out" / name).is_file()
    mine = json.loads((tmp_path / "out" / "metrics.json").read_text())
    first = json.loads((evaluated["out"] / "metrics.json").read_text())
    for doc_ in (mine, first):
        del doc_["criteria_sha256"]
    assert mine == first


def test_the_phase1_criteria_on_three_operators_fail_for_insufficient_data(
        evaluated: dict[str, Any]) -> None:
    g = gate(evaluated["result"]["metrics"])  # the built-in Phase 1 criteria, 32 samples
    assert g["passed"] is False
    assert all(c["reason"].startswith("insufficient data: 3 samples < minimum 32")
               for c in g["criteria"])


def test_mismatched_inputs_are_clear_errors(eval_setup: dict[str, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    s = eval_setup
    other_tok = tmp_path / "tok"
    other_tok.mkdir()
    for f in s["tokenizer"].iterdir():
        (other_tok / f.name).write_bytes(f.read_bytes())
    (other_tok / "weights.pt").write_bytes((s["tokenizer"] / "weights.pt").read_bytes() + b"\0")
    code = main(["evaluate", "--checkpoint", str(s["checkpoint"]), "--replay", str(s["replay"]),
                 "--tokenizer", str(other_tok), "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 1
    assert "trained against another tokenizer" in capsys.readouterr().err
    with pytest.raises(EvaluationError, match="go together"):
        evaluate(s["checkpoint"], s["replay"], s["tokenizer"], tmp_path, run_id="abc")
    with pytest.raises(EvaluationError, match="no such criteria file"):
        evaluate(s["checkpoint"], s["replay"], s["tokenizer"], tmp_path,
                 criteria=tmp_path / "none.yaml")
