"""Promotion and rejection against a real ``mlflow server``: the alias history step by step, a
rejected version never promoted, champion metrics from the champion's run, and two promotions
racing. The NOA is stood in for by a 1×1 convolution exported to ONNX (see ``conftest``)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from mlflow import MlflowClient
from tracking_test_support import StandIn, lineage

from noa_core.errors import TrackingError
from noa_core.tracking import (
    ALIAS_CHALLENGER,
    ALIAS_CHAMPION,
    champion_metrics,
    champion_version,
    log_metrics,
    open_run,
    promote,
    register_model,
    reject,
)
from noa_core.tracking.constants import (
    LINEAGE_TAGS,
    TAG_ONNX_SHA256,
    TAG_PREFIX,
    TAG_PYTORCH_MODEL_URI,
)

pytestmark = pytest.mark.slow  # shares one mlflow server that takes ~10 s to boot

FAILED_GATE = {"passed": False, "criteria": [
    {"name": "rollout_mse", "value": 0.08, "op": "<=", "threshold": 0.1, "passed": True},
    {"name": "token_accuracy", "value": 0.41, "op": ">=", "threshold": 0.6, "passed": False},
    {"name": "champion_margin", "value": -0.02, "op": ">=", "threshold": 0.0, "passed": False},
]}


def _candidate(uri: str, model: str, stand_in: StandIn, tag: str, metrics: dict[str, float],
               with_torch: bool = False) -> str:
    """One pipeline run up to registration: a run with metrics, then a version."""
    run_id = open_run(uri, "noa-registry", params={"candidate": tag}, config={})
    log_metrics(uri, run_id, metrics)
    return register_model(uri, model, run_id, stand_in.onnx_path,
                          stand_in.module if with_torch else None, stand_in.example,
                          lineage(tag))


def _decision_tags(client: MlflowClient, model: str, version: str) -> dict[str, str]:
    tags = client.get_model_version(model, version).tags
    registration = {*LINEAGE_TAGS.values(), TAG_ONNX_SHA256, TAG_PYTORCH_MODEL_URI}
    return {k: v for k, v in tags.items() if k.startswith(TAG_PREFIX) and k not in registration}


def _aliases(client: MlflowClient, model: str) -> dict[str, str]:
    return {a: str(v) for a, v in client.get_registered_model(model).aliases.items()}


def test_alias_history_through_promote_reject_promote(tracking_uri: str,
                                                      stand_in: StandIn) -> None:
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    model = f"noa-history-{uuid.uuid4().hex[:8]}"
    history: list[tuple[str, dict[str, str], dict[str, str]]] = []

    def step(name: str) -> None:
        v = champion_version(tracking_uri, model)
        history.append((name, _aliases(client, model),
                        _decision_tags(client, model, v) if v else {}))

    v1 = _candidate(tracking_uri, model, stand_in, "one", {"rollout_mse": 0.09}, with_torch=True)
    assert champion_metrics(tracking_uri, model) is None
    step("register 1")
    assert promote(tracking_uri, model, v1, reason="first model",
                   pipeline_run_id="kfp-run-one") is None
    step("promote 1")
    v2 = _candidate(tracking_uri, model, stand_in, "two", {"rollout_mse": 0.08})
    step("register 2")
    assert reject(tracking_uri, model, v2, FAILED_GATE, pipeline_run_id="kfp-run-two") == [
        "token_accuracy", "champion_margin"]
    step("reject 2")
    with pytest.raises(TrackingError, match=r"was rejected by its gate .*refusing to promote"):
        promote(tracking_uri, model, v2)
    step("promote 2 refused")
    assert champion_metrics(tracking_uri, model) == {"rollout_mse": 0.09}
    v3 = _candidate(tracking_uri, model, stand_in, "three", {"rollout_mse": 0.05})
    assert promote(tracking_uri, model, v3, pipeline_run_id="kfp-run-three") == "1"
    step("promote 3")

    promoted_1 = {"noa.decision": "promoted", "noa.decision_reason": "first model",
                  "noa.decision_pipeline_run_id": "kfp-run-one", "noa.previous_champion": "none"}
    promoted_3 = {"noa.decision": "promoted", "noa.decision_reason": "passed its gate",
                  "noa.decision_pipeline_run_id": "kfp-run-three",
                  "noa.previous_champion": "1"}
    assert (v1, v2, v3) == ("1", "2", "3")
    assert history == [
        ("register 1", {ALIAS_CHALLENGER: "1"}, {}),
        ("promote 1", {ALIAS_CHALLENGER: "1", ALIAS_CHAMPION: "1"}, promoted_1),
        ("register 2", {ALIAS_CHALLENGER: "2", ALIAS_CHAMPION: "1"}, promoted_1),
        ("reject 2", {ALIAS_CHALLENGER: "2", ALIAS_CHAMPION: "1"}, promoted_1),
        ("promote 2 refused", {ALIAS_CHALLENGER: "2", ALIAS_CHAMPION: "1"}, promoted_1),
        ("promote 3", {ALIAS_CHALLENGER: "3", ALIAS_CHAMPION: "3"}, promoted_3),
    ]
    assert _decision_tags(client, model, v2) == {
        "noa.decision": "rejected", "noa.failed_criteria": "token_accuracy,champion_margin",
        "noa.gate.token_accuracy": "0.41 >= 0.6", "noa.gate.champion_margin": "-0.02 >= 0",
        "noa.decision_pipeline_run_id": "kfp-run-two"}
    runs = {v: client.get_run(client.get_model_version(model, v).run_id) for v in ("1", "2")}
    assert runs["1"].data.tags["noa.decision"] == "promoted"
    assert runs["2"].data.tags["noa.decision"] == "rejected"
    assert champion_metrics(tracking_uri, model) == {"rollout_mse": 0.05}

    with pytest.raises(TrackingError, match="is the champion; promote another version"):
        reject(tracking_uri, model, v3, FAILED_GATE)
    with pytest.raises(TrackingError, match="no such model version"):
        promote(tracking_uri, model, 99)


def test_two_promotions_racing(tracking_uri: str, stand_in: StandIn) -> None:
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    model = f"noa-race-{uuid.uuid4().hex[:8]}"
    versions = [_candidate(tracking_uri, model, stand_in, tag, {"rollout_mse": m})
                for tag, m in (("a", 0.07), ("b", 0.06))]
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def race(version: str) -> None:
        barrier.wait()
        try:
            results[version] = promote(tracking_uri, model, version, reason=f"race {version}",
                                       pipeline_run_id=f"kfp-race-{version}")
        except BaseException as exc:  # reported below, on the main thread
            results[version] = exc

    threads = [threading.Thread(target=race, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not any(isinstance(r, BaseException) for r in results.values()), results
    champion = champion_version(tracking_uri, model)
    assert champion in versions
    for v in versions:
        tags = _decision_tags(client, model, v)
        assert (tags["noa.decision"], tags["noa.decision_reason"],
                tags["noa.decision_pipeline_run_id"]) == ("promoted", f"race {v}",
                                                          f"kfp-race-{v}")
        other = next(o for o in versions if o != v)
        assert tags["noa.previous_champion"] in ("none", other)
    assert _aliases(client, model)[ALIAS_CHAMPION] == champion
