"""``reject``: a second version fails its gate; it is tagged and ``champion`` stays put."""

from __future__ import annotations

import json
from pathlib import Path

from component_chain import JOB, MODEL, Chain, run_register
from kfp import dsl

from components.reject import reject
from noa_core.tracking import champion_version
from noa_core.tracking.client import client_for
from noa_core.tracking.constants import TAG_DECISION, TAG_FAILED_CRITERIA


def test_reject_tags_the_failed_criteria_and_keeps_champion(promoted: Chain) -> None:
    champion = promoted.outputs["promote"] or promoted.outputs["register"]
    second = run_register(promoted)
    gate_doc = json.loads(Path(promoted.artifacts["gate"].path).read_text())
    gate_doc["passed"] = False
    gate_doc["criteria"][0]["passed"] = False
    gate = promoted.new(dsl.Artifact, "gate-failed")
    with open(gate.path, "w") as fh:
        json.dump(gate_doc, fh)
    failed = reject.python_func(model_name=MODEL, version=second,
                                tracking_uri=promoted.tracking_uri, gate=gate,
                                pipeline_run_id=JOB)
    first = gate_doc["criteria"][0]["name"]
    assert first in failed
    mv = client_for(promoted.tracking_uri).get_model_version(MODEL, second)
    assert mv.tags[TAG_DECISION] == "rejected"
    assert first in mv.tags[TAG_FAILED_CRITERIA].split(",")
    assert champion_version(promoted.tracking_uri, MODEL) == champion != second
