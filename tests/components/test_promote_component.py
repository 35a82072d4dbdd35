"""``promote``: ``champion`` moves to the version and the decision is tagged."""

from __future__ import annotations

from component_chain import MODEL, Chain

from noa_core.tracking import ALIAS_CHAMPION, champion_version
from noa_core.tracking.client import client_for
from noa_core.tracking.constants import TAG_DECISION


def test_promote_moves_champion(promoted: Chain) -> None:
    version = promoted.outputs["register"]
    assert promoted.outputs["promote"] == ""  # no champion before
    assert champion_version(promoted.tracking_uri, MODEL) == version
    mv = client_for(promoted.tracking_uri).get_model_version_by_alias(MODEL, ALIAS_CHAMPION)
    assert mv.tags[TAG_DECISION] == "promoted"
