"""``register``: a new version aliased ``challenger`` with the pipeline's lineage."""

from __future__ import annotations

from component_chain import JOB, MODEL, Chain

from noa_core.tracking import ALIAS_CHALLENGER, LINEAGE_TAGS
from noa_core.tracking.client import client_for


def test_register_creates_the_challenger_with_lineage(registered: Chain) -> None:
    version = registered.outputs["register"]
    client = client_for(registered.tracking_uri)
    mv = client.get_model_version(MODEL, version)
    assert str(client.get_model_version_by_alias(MODEL, ALIAS_CHALLENGER).version) == version
    assert mv.run_id == registered.outputs["train"].mlflow_run_id
    assert mv.tags[LINEAGE_TAGS["pipeline_run_id"]] == JOB
    assert mv.tags[LINEAGE_TAGS["image_digest"]] == "noa-core:test"
    assert mv.tags[LINEAGE_TAGS["criteria_hash"]] == registered.outputs["evaluate"].criteria_hash
    assert mv.tags[LINEAGE_TAGS["tokenizer_sha256"]] == registered.outputs[
        "pull"].tokenizer_sha256
