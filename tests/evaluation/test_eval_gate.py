"""The gate and its criteria file: each criterion flips the decision, skill, champion, data."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from noa_core.errors import EvaluationError
from noa_core.evaluation import Criteria, gate, load_criteria
from noa_core.tracking.gate import parse_gate

PHASE1 = Path(__file__).parents[2] / "configs" / "criteria" / "phase1.yaml"
N = 64


def _entry(value: float, n: int = N) -> dict[str, Any]:
    return {"value": value, "n": n, "ci": [value, value]}


# Passes everything with the default criteria: spec thresholds and skill (ratios < 0.9).
GOOD: dict[str, Any] = {
    "vq_recon_error": _entry(0.05), "token_entropy_ratio": _entry(0.97),
    "codebook_utilization": _entry(0.55), "cluster_ari": _entry(0.9),
    "rollout_mse": _entry(0.02), "skill_vs_persistence": _entry(0.4),
    "skill_vs_theta_only": _entry(0.5),
}
# A failing value for each criterion of the default file.
FAILING = {"vq_recon_error": 0.2, "token_entropy_ratio": 0.8, "codebook_utilization": 0.3,
           "cluster_ari": 0.5, "rollout_mse": 0.15, "skill_vs_persistence": 1.1,
           "skill_vs_theta_only": 0.95}


def test_the_shipped_file_equals_the_built_in_defaults() -> None:
    assert load_criteria(PHASE1) == Criteria() == load_criteria(None)
    spec = {n: (c.op, c.threshold) for n, c in Criteria().criteria.items()}
    assert spec["vq_recon_error"] == ("<", 0.15) and spec["token_entropy_ratio"] == (">", 0.9)
    assert spec["codebook_utilization"] == (">", 0.40) and spec["cluster_ari"] == (">", 0.80)
    assert spec["rollout_mse"] == ("<", 0.1)


def test_good_metrics_pass_and_the_output_is_the_contract() -> None:
    g = gate(GOOD)
    assert g["passed"] is True
    assert [c["name"] for c in g["criteria"]] == list(FAILING)
    for c in g["criteria"]:
        assert {"name", "value", "op", "threshold", "passed"} <= set(c)
    assert parse_gate(g).passed  # what `noa reject` reads


@pytest.mark.parametrize("name", list(FAILING))
def test_each_criterion_failing_alone_flips_the_decision(name: str) -> None:
    metrics = copy.deepcopy(GOOD)
    metrics[name]["value"] = FAILING[name]
    g = gate(metrics)
    assert g["passed"] is False
    assert [c["name"] for c in g["criteria"] if not c["passed"]] == [name]
    assert not parse_gate(g).passed


def test_spec_thresholds_met_but_no_skill_is_rejected() -> None:
    """The issue's measured case: a θ-only-like model meets all five spec thresholds."""
    metrics = copy.deepcopy(GOOD)
    metrics["skill_vs_persistence"]["value"] = 1.3
    metrics["skill_vs_theta_only"]["value"] = 1.54  # 0.077 against the analytic 0.05
    g = gate(metrics)
    spec = {c["name"]: c["passed"] for c in g["criteria"]}
    assert all(spec[k] for k in ("vq_recon_error", "token_entropy_ratio",
                                 "codebook_utilization", "cluster_ari", "rollout_mse"))
    assert g["passed"] is False


def test_insufficient_data_fails_with_its_reason() -> None:
    metrics = copy.deepcopy(GOOD)
    metrics["cluster_ari"]["n"] = 12
    g = gate(metrics)
    (bad,) = [c for c in g["criteria"] if not c["passed"]]
    assert bad["name"] == "cluster_ari" and bad["reason"].startswith("insufficient data")
    assert gate(metrics, Criteria(min_samples=10))["passed"] is True


def test_a_missing_or_uncomputed_metric_fails() -> None:
    metrics = copy.deepcopy(GOOD)
    del metrics["rollout_mse"]
    metrics["cluster_ari"] = {"value": None, "n": N, "reason": "k-means needs 12 operators"}
    g = gate(metrics)
    failed = {c["name"]: c["reason"] for c in g["criteria"] if not c["passed"]}
    assert failed == {"cluster_ari": "k-means needs 12 operators",
                      "rollout_mse": "metric 'rollout_mse' is missing"}


def test_flat_metrics_from_a_tracking_run_are_read_too() -> None:
    flat = {k: v["value"] for k, v in GOOD.items()} | {f"{k}.n": N for k in GOOD}
    assert gate(flat)["passed"] is True


def test_champion_comparison_in_both_orders() -> None:
    better = copy.deepcopy(GOOD)
    worse = copy.deepcopy(GOOD)
    worse["rollout_mse"]["value"] = 0.03  # 50 % worse than 0.02, tolerance 5 %
    g = gate(better, champion_metrics=worse)
    assert g["passed"] is True and g["champion"]["compared"]
    champ = g["criteria"][-1]
    assert champ["name"] == "champion.rollout_mse" and champ["passed"]
    g = gate(worse, champion_metrics=better)
    assert g["passed"] is False
    assert [c["name"] for c in g["criteria"] if not c["passed"]] == ["champion.rollout_mse"]
    assert g["criteria"][-1]["threshold"] == pytest.approx(0.021)
    assert parse_gate(g).failed[0].name == "champion.rollout_mse"
    # within the tolerance: not worse "by more than" it
    close = copy.deepcopy(GOOD)
    close["rollout_mse"]["value"] = 0.0205
    assert gate(close, champion_metrics=better)["passed"] is True
    # a champion that lacks the metric cannot be compared: refused, not waved through
    assert gate(better, champion_metrics={"other": 1.0})["passed"] is False


def test_champion_rule_higher_is_better_and_absolute_tolerance() -> None:
    crit = Criteria(champion={"metric": "cluster_ari", "higher_is_better": True,
                              "tolerance": 0.02, "relative": False})
    low = copy.deepcopy(GOOD)
    low["cluster_ari"]["value"] = 0.85
    assert gate(low, crit, champion_metrics=GOOD)["passed"] is False
    assert gate(GOOD, crit, champion_metrics=low)["passed"] is True
    disabled = Criteria(champion={"enabled": False})
    g = gate(low, disabled, champion_metrics=GOOD)
    assert g["passed"] is True and not g["champion"]["compared"]


def test_criteria_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("criteria:\n  x: {metric: rollout_mse, op: '<', threshold: 0.1, colour: 1}\n")
    with pytest.raises(EvaluationError, match=r"bad\.yaml: criteria\.x\.colour"):
        load_criteria(bad)
    bad.write_text("criteria:\n  x: {metric: nonsense, op: '<', threshold: 0.1}\n")
    with pytest.raises(EvaluationError, match=r"criteria\.x\.metric: unknown metric 'nonsense'"):
        load_criteria(bad)
    bad.write_text("criteria:\n  x: {metric: rollout_mse, op: '=~', threshold: 0.1}\n")
    with pytest.raises(EvaluationError, match=r"criteria\.x\.op"):
        load_criteria(bad)
    bad.write_text("min_samples: [1]\n")
    with pytest.raises(EvaluationError, match=r"bad\.yaml: min_samples"):
        load_criteria(bad)
    with pytest.raises(EvaluationError, match="no such criteria file"):
        load_criteria(tmp_path / "absent.yaml")
    with pytest.raises(EvaluationError, match=r"'https://host/c\.yaml': expected a file path"):
        load_criteria("https://host/c.yaml")
    bad.write_text("criteria: {x: [\n")
    with pytest.raises(EvaluationError,
                       match=r"bad\.yaml: line 2, column 1: invalid YAML: [^\n]*$"):
        load_criteria(bad)


def test_digest_changes_with_any_threshold() -> None:
    a = Criteria()
    b = load_criteria(PHASE1)
    assert a.digest() == b.digest()
    changed = dict(a.criteria)
    changed["rollout_mse"] = changed["rollout_mse"].model_copy(update={"threshold": 0.2})
    assert Criteria(criteria=changed).digest() != a.digest()
