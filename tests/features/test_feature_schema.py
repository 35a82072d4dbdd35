"""``FeatureSchema``: one source of names, a stable digest, a strict round trip."""

from __future__ import annotations

import dataclasses

import pytest

from noa_core.features import cross_channel, drift, initial, spatial, spectral, temporal_summary
from noa_core.features.causality import CAUSALITY_NAMES
from noa_core.features.schema import (
    FEATURE_SCHEMA_VERSION,
    FeatureSchema,
    FeatureSchemaError,
    check_schema,
    feature_schema,
)


def test_names_come_from_the_family_modules() -> None:
    s = feature_schema(64)
    assert s.version == FEATURE_SCHEMA_VERSION and s.horizon == 64 and s.states == 65
    assert s.initial == initial.INITIAL_NAMES and len(s.initial) == 14
    assert s.temporal == (*spatial.SPATIAL_NAMES, *spectral.SPECTRAL_NAMES,
                          *cross_channel.CROSS_CHANNEL_NAMES)
    assert s.summary == (*temporal_summary.TEMPORAL_SUMMARY_NAMES, *drift.DRIFT_NAMES,
                         *CAUSALITY_NAMES)
    assert 20 <= s.temporal_dim <= 30 and 30 <= s.summary_dim <= 60


def test_tokenizer_input_names_are_agg_major_and_complete() -> None:
    s = feature_schema(64)
    names = s.tokenizer_input_names
    d = s.summary_dim
    assert len(names) == s.tokenizer_input_dim == 14 + 3 * d + 2 * s.temporal_dim
    assert len(set(names)) == len(names)
    agg = names[14:14 + 3 * d]
    assert agg[:d] == tuple(f"mean:{n}" for n in s.summary)
    assert agg[d:2 * d] == tuple(f"std:{n}" for n in s.summary)
    assert agg[2 * d:] == tuple(f"cv:{n}" for n in s.summary)
    assert names[-1] == f"temporal_std:{s.temporal[-1]}"
    assert s.registry()["summary"]["std:" + s.summary[0]] == d


#: The digest of ``feature_schema(16)``. It changes exactly when a name, the order, the horizon,
#: the version or the aggregations change: update it together with FEATURE_SCHEMA_VERSION (stored
#: datasets and tokenizer checkpoints then refuse the new features until re-extracted).
DIGEST_H16 = "4a93f2577f95e20c277c89d462af0a7100f0f2269a1b772eab7f83d180dd7ae9"


def test_digest_is_stable_and_round_trips() -> None:
    s = feature_schema(16)
    assert s.digest() == DIGEST_H16
    assert FeatureSchema.from_dict(s.to_dict()) == s
    assert FeatureSchema.from_json(s.to_json()).digest() == s.digest()
    assert s.describe().startswith(f"feature schema v{FEATURE_SCHEMA_VERSION}, horizon 16")
    assert s.digest()[:12] in s.describe()


@pytest.mark.parametrize("change", ["rename", "horizon", "version", "aggregations", "reorder"])
def test_digest_changes_with_any_field(change: str) -> None:
    s = feature_schema(16)
    if change == "rename":
        other = dataclasses.replace(s, temporal=(*s.temporal[:-1], s.temporal[-1] + "_x"))
    elif change == "horizon":
        other = feature_schema(17)
    elif change == "version":
        other = dataclasses.replace(s, version=s.version + 1)
    elif change == "aggregations":
        other = dataclasses.replace(s, aggregations=("cv", "mean", "std"))
    else:
        other = dataclasses.replace(s, summary=(s.summary[1], s.summary[0], *s.summary[2:]))
    assert other.digest() != s.digest() and other != s
    with pytest.raises(FeatureSchemaError, match="differs from the expected"):
        check_schema(other, s, "ckpt/config.yaml")


def test_malformed_schemas_are_refused() -> None:
    d = feature_schema(4).to_dict()
    with pytest.raises(FeatureSchemaError, match=r"missing keys \['horizon'\]"):
        FeatureSchema.from_dict({k: v for k, v in d.items() if k != "horizon"})
    with pytest.raises(FeatureSchemaError, match=r"unknown keys \['extra'\]"):
        FeatureSchema.from_dict({**d, "extra": 1})
    with pytest.raises(FeatureSchemaError, match="repeated names"):
        FeatureSchema.from_dict({**d, "initial": ["a", "a"]})
    with pytest.raises(FeatureSchemaError, match="horizon must be an integer"):
        FeatureSchema.from_dict({**d, "horizon": 0})
    with pytest.raises(FeatureSchemaError, match="invalid JSON"):
        FeatureSchema.from_json("{not json")
