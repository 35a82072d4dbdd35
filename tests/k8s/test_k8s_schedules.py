"""The recurring retraining run: KFP ScheduledWorkflow (6-field cron with seconds, one run at a
time, no catch-up) and the Argo CronWorkflow alternative (5-field cron, Forbid), each checked
against our schema and our policy; malformed copies are rejected."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from k8s_support import (
    CUSTOM_SCHEMAS,
    container_env,
    is_custom,
    is_placeholder_uuid,
    resource_id,
    schema_errors,
)

SWF = ("kubeflow.org/v1beta1", "ScheduledWorkflow")
CWF = ("argoproj.io/v1alpha1", "CronWorkflow")


def _find(rendered_overlays, key) -> dict[str, Any]:
    for r in rendered_overlays.values():
        for d in r.docs:
            if (d["apiVersion"], d["kind"]) == key:
                return d
    raise AssertionError(f"no overlay renders a {key[1]}")


def schedule_problems(doc: dict[str, Any]) -> list[str]:
    """Project policy for a schedule beyond its schema."""
    spec = doc["spec"]
    problems = []
    if doc["kind"] == "ScheduledWorkflow":
        if spec.get("maxConcurrency") != 1:
            problems.append("maxConcurrency must be 1: retraining runs must not overlap")
        if spec.get("noCatchup") is not True:
            problems.append("noCatchup must be true: missed triggers are not replayed")
        if len(spec["trigger"]["cronSchedule"]["cron"].split()) != 6:
            problems.append("KFP cron has 6 fields")
        ids = [spec.get("pipelineId"), spec.get("pipelineVersionId")]
        if "experimentId" in spec:
            ids.append(spec["experimentId"])
        if spec.get("enabled") and any(is_placeholder_uuid(i) for i in ids):
            problems.append("an enabled schedule names placeholder ids")
    else:
        if spec.get("concurrencyPolicy") != "Forbid":
            problems.append("concurrencyPolicy must be Forbid")
        if any(len(s.split()) != 5 for s in spec["schedules"]):
            problems.append("Argo cron has 5 fields")
        names = [t["name"] for t in spec["workflowSpec"]["templates"]]
        if spec["workflowSpec"]["entrypoint"] not in names:
            problems.append("entrypoint names no template")
    return problems


def test_each_overlay_has_exactly_one_schedule(rendered_overlays):
    # Both at once would start two retraining runs per trigger.
    for name, r in rendered_overlays.items():
        schedules = [resource_id(d) for d in r.docs if is_custom(d)]
        assert len(schedules) == 1, (name, schedules)


def test_both_kinds_of_schedule_are_shipped(rendered_overlays):
    kinds = {(d["apiVersion"], d["kind"]) for r in rendered_overlays.values() for d in r.docs
             if is_custom(d)}
    assert kinds == set(CUSTOM_SCHEMAS), kinds


@pytest.mark.parametrize("key", [SWF, CWF], ids=["ScheduledWorkflow", "CronWorkflow"])
def test_schedule_meets_policy(rendered_overlays, key):
    doc = _find(rendered_overlays, key)
    assert schema_errors(doc) == []
    assert schedule_problems(doc) == []


def test_scheduled_workflow_runs_as_the_pipeline_runner(rendered_overlays):
    doc = _find(rendered_overlays, SWF)
    assert doc["spec"]["serviceAccount"] == "noa-pipeline-runner"
    assert doc["spec"]["trigger"]["cronSchedule"]["cron"] == "0 0 3 * * 1"


def test_an_enabled_schedule_with_placeholder_ids_is_flagged(rendered_overlays):
    doc = copy.deepcopy(_find(rendered_overlays, SWF))
    doc["spec"]["enabled"] = True
    doc["spec"]["pipelineId"] = "00000000-0000-0000-0000-000000000000"
    assert "an enabled schedule names placeholder ids" in schedule_problems(doc)
    for k in ("pipelineId", "pipelineVersionId"):
        doc["spec"][k] = "3f2a9c1e-8b4d-4e7a-9c2f-1a2b3c4d5e6f"
    assert schedule_problems(doc) == [] and schema_errors(doc) == []
    doc["spec"]["experimentId"] = "00000000-0000-0000-0000-000000000000"
    assert "an enabled schedule names placeholder ids" in schedule_problems(doc)


def test_cron_workflow_submits_the_pipeline(rendered_overlays):
    doc = _find(rendered_overlays, CWF)
    wf = doc["spec"]["workflowSpec"]
    (template,) = wf["templates"]
    c = template["container"]
    assert c["command"] == ["noa", "pipeline", "submit"]
    assert c["args"][:2] == ["--host", "$(KFP_HOST)"]
    docs = next(r.docs for r in rendered_overlays.values() if doc in r.docs)
    env = container_env(c, docs)
    assert re.fullmatch(r"https?://[a-z0-9.-]+(:\d+)?", env["KFP_HOST"]), env["KFP_HOST"]
    # Retried only on system errors: a failed submit may already have created the run.
    assert template["retryStrategy"]["retryPolicy"] == "OnError"
    assert doc["spec"]["schedules"] == ["0 3 * * 1"]


# Malformed crons: each must be rejected by the schema in a copy of the rendered manifest.
BAD_SWF_CRON = {
    "five fields (Argo form)": "0 3 * * 1",
    "seven fields": "0 0 3 * * 1 2027",
    "minute 60": "0 60 3 * * 1",
    "hour 24": "0 0 24 * * 1",
    "day of month 32": "0 0 3 32 * 1",
    "month 13": "0 0 3 * 13 1",
    "day of week 7": "0 0 3 * * 7",
    "words": "every monday at three",
    "empty": "",
    "empty list element": "0 0 3,,4 * * 1",
}
BAD_CWF_CRON = {
    "six fields (KFP form)": "0 0 3 * * 1",
    "four fields": "0 3 * *",
    "minute 61": "61 3 * * 1",
    "hour 24": "0 24 * * 1",
    "month 0": "0 3 * 0 1",
    "question mark": "0 3 ? * 1",
    "step 0": "*/0 3 * * 1",
    "empty": "",
}
GOOD_SWF_CRON = ["0 0 3 * * 1", "*/30 0-5 1,13 ? JAN-MAR MON-FRI", "0 15 */6 * * *", "0 0 0 1 1 ?"]
GOOD_CWF_CRON = ["0 3 * * 1", "*/15 * * * *", "30 2 1,15 * *", "0 0 * JAN-JUN SUN"]


def _with_cron(doc: dict[str, Any], cron: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    if doc["kind"] == "ScheduledWorkflow":
        doc["spec"]["trigger"]["cronSchedule"]["cron"] = cron
    else:
        doc["spec"]["schedules"] = [cron]
    return doc


@pytest.mark.parametrize("cron", BAD_SWF_CRON.values(), ids=BAD_SWF_CRON.keys())
def test_scheduled_workflow_schema_rejects_malformed_cron(rendered_overlays, cron):
    errors = schema_errors(_with_cron(_find(rendered_overlays, SWF), cron))
    assert any(e.startswith("spec/trigger/cronSchedule/cron:") for e in errors), errors


@pytest.mark.parametrize("cron", BAD_CWF_CRON.values(), ids=BAD_CWF_CRON.keys())
def test_cron_workflow_schema_rejects_malformed_cron(rendered_overlays, cron):
    errors = schema_errors(_with_cron(_find(rendered_overlays, CWF), cron))
    assert any(e.startswith("spec/schedules/0:") for e in errors), errors


@pytest.mark.parametrize("cron", GOOD_SWF_CRON)
def test_scheduled_workflow_schema_accepts_cron(rendered_overlays, cron):
    assert schema_errors(_with_cron(_find(rendered_overlays, SWF), cron)) == []


@pytest.mark.parametrize("cron", GOOD_CWF_CRON)
def test_cron_workflow_schema_accepts_cron(rendered_overlays, cron):
    assert schema_errors(_with_cron(_find(rendered_overlays, CWF), cron)) == []


def _edit(doc, path, value):
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()

STRUCTURE = {
    "swf: misspelt field": (SWF, ("spec", "maxConcurency"), 1),
    "swf: maxConcurrency 0": (SWF, ("spec", "maxConcurrency"), 0),
    "swf: maxConcurrency 11": (SWF, ("spec", "maxConcurrency"), 11),
    "swf: noCatchup as a string": (SWF, ("spec", "noCatchup"), "true"),
    "swf: no trigger": (SWF, ("spec", "trigger"), _DELETE),
    "swf: two triggers": (SWF, ("spec", "trigger", "periodicSchedule"), {"intervalSecond": 60}),
    "swf: pipeline id not a UUID": (SWF, ("spec", "pipelineId"), "noa-pipeline"),
    "swf: wrong apiVersion": (SWF, ("apiVersion",), "kubeflow.org/v1alpha1"),
    "swf: embedded workflow spec": (SWF, ("spec", "workflow", "spec"), {"entrypoint": "x"}),
    "cwf: singular schedule (pre-3.6)": (CWF, ("spec", "schedule"), "0 3 * * 1"),
    "cwf: unknown concurrencyPolicy": (CWF, ("spec", "concurrencyPolicy"), "Never"),
    "cwf: no schedules": (CWF, ("spec", "schedules"), []),
    "cwf: no entrypoint": (CWF, ("spec", "workflowSpec", "entrypoint"), _DELETE),
    "cwf: wrong kind": (CWF, ("kind",), "Workflow"),
    "cwf: bad retry policy": (CWF, ("spec", "workflowSpec", "templates", 0, "retryStrategy",
                                    "retryPolicy"), "Sometimes"),
}


@pytest.mark.parametrize("case", STRUCTURE.values(), ids=STRUCTURE.keys())
def test_schemas_reject_structural_mistakes(rendered_overlays, case):
    key, path, value = case
    doc = _edit(_find(rendered_overlays, key), path, value)
    # Against the schema of the kind the manifest was meant to be.
    assert schema_errors(doc, key), path
