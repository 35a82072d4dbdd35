"""Evaluate logs into the run training opened (a real sqlite MLflow store, see conftest)."""

from __future__ import annotations

from typing import Any

import pytest
from mlflow import MlflowClient

from noa_core.tracking import run_metrics


def test_evaluate_logs_metrics_gate_and_reports_into_the_run(evaluated: dict[str, Any]) -> None:
    uri, run_id = evaluated["uri"], evaluated["run_id"]
    logged = run_metrics(uri, run_id)
    m, g = evaluated["result"]["metrics"], evaluated["result"]["gate"]
    for key in ("rollout_mse", "persistence", "theta_only", "noise_floor", "new_weights",
                "vq_recon_error", "token_entropy_ratio", "codebook_utilization", "cluster_ari"):
        assert logged[key] == pytest.approx(m[key]["value"]), key
        assert logged[f"{key}.n"] == 3
    assert logged["rollout_mse.ci_low"] == pytest.approx(m["rollout_mse"]["ci"][0])
    assert logged["gate.passed"] == float(g["passed"])
    assert {f"gate.{c['name']}.passed" for c in g["criteria"]} <= set(logged)
    found = {a.path for a in MlflowClient(uri).list_artifacts(run_id, "evaluation")}
    assert found == {f"evaluation/{n}"
                     for n in ("metrics.json", "gate.json", "report.md", "report.html")}
