"""``evaluate``: the gate decision as an output, the reports as artifacts, metrics in the run."""

from __future__ import annotations

import json
from pathlib import Path

from component_chain import Chain

from noa_core.evaluation.criteria import load_criteria
from noa_core.tracking.client import client_for


def test_the_gate_and_its_criteria_hash(scored: Chain) -> None:
    out = scored.outputs["evaluate"]
    gate = json.loads(Path(scored.artifacts["gate"].path).read_text())
    assert out.passed is gate["passed"]
    assert out.criteria_hash == gate["criteria_sha256"] == load_criteria(
        scored.criteria).digest()
    failed = [c["name"] for c in gate["criteria"] if not c["passed"]]
    assert scored.artifacts["gate"].metadata == {"passed": gate["passed"], "failed": failed}


def test_reports_and_metrics(scored: Chain) -> None:
    assert Path(scored.artifacts["report"].path).read_text().startswith("#")
    assert "<html" in Path(scored.artifacts["report_html"].path).read_text().lower()
    logged = scored.artifacts["eval_metrics"].metadata
    assert logged["gate.passed"] in (0.0, 1.0) and "rollout_mse" in logged
    run = client_for(scored.tracking_uri).get_run(scored.outputs["train"].mlflow_run_id)
    assert run.data.metrics["rollout_mse"] == logged["rollout_mse"]


def test_its_working_directory_goes_once_the_artifacts_are_copied(scored: Chain) -> None:
    beside = Path(scored.artifacts["gate"].path).parent
    assert sorted(p.name for p in beside.glob("evaluate-*")) == []
