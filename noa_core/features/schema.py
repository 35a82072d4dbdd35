"""``FeatureSchema``: the ordered names of every feature family, the single source of truth.

The schema travels with the data: it is stored (as JSON) beside the feature groups of a dataset
and in a tokenizer checkpoint, and a mismatch is a clear error naming both ``describe()`` lines.
Names come from the per-family modules, next to their math; this module only assembles them.

Tokenizer input (``tokenizer_input_names``), in this order:

1. INITIAL (14);
2. SUMMARY aggregated over realizations, agg-major: ``mean:{name}`` for every name, then
   ``std:{name}``, then ``cv:{name}``;
3. TEMPORAL summarised over time: ``temporal_mean:{name}``, then ``temporal_std:{name}``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from noa_core.errors import NOAError
from noa_core.features.causality import CAUSALITY_NAMES
from noa_core.features.cross_channel import CROSS_CHANNEL_NAMES
from noa_core.features.drift import DRIFT_NAMES
from noa_core.features.initial import INITIAL_NAMES
from noa_core.features.spatial import SPATIAL_NAMES
from noa_core.features.spectral import SPECTRAL_NAMES
from noa_core.features.temporal_summary import TEMPORAL_SUMMARY_NAMES

#: Bump whenever a feature's definition, order or name changes (the digest changes with names
#: only; the version records changed math under unchanged names).
FEATURE_SCHEMA_VERSION = 1
# Stored features and the tokenizer describe an operator's behaviour from its initial condition
# (as Phase 0 did): the window of H + 1 states starting at X_0. A NOA scored with a context of K
# states computes its ground-truth features on [K, K + H] itself.
FEATURE_WINDOW_START = 0

#: TEMPORAL names: per frame and channel (spatial, spectral) averaged over C, then per state
#: across channels (cross-channel); all averaged over realizations.
TEMPORAL_NAMES: tuple[str, ...] = (*SPATIAL_NAMES, *SPECTRAL_NAMES, *CROSS_CHANNEL_NAMES)
#: SUMMARY names, per realization.
SUMMARY_NAMES: tuple[str, ...] = (*TEMPORAL_SUMMARY_NAMES, *DRIFT_NAMES, *CAUSALITY_NAMES)
AGGREGATIONS: tuple[str, ...] = ("mean", "std", "cv")


class FeatureSchemaError(NOAError):
    """A stored or requested feature schema is malformed or differs from the expected one."""


@dataclass(frozen=True)
class FeatureSchema:
    """Ordered feature names per family, the window horizon and the schema version.

    ``horizon`` H: the feature window holds H + 1 states, X_start first. Two schemas are equal
    iff their digests are (the digest hashes exactly these fields).
    """

    version: int
    horizon: int
    initial: tuple[str, ...]
    temporal: tuple[str, ...]
    summary: tuple[str, ...]
    aggregations: tuple[str, ...] = AGGREGATIONS

    def __post_init__(self) -> None:
        for f in ("initial", "temporal", "summary", "aggregations"):
            value = getattr(self, f)
            if isinstance(value, str) or not all(isinstance(n, str) and n for n in value):
                raise FeatureSchemaError(f"feature schema: {f}: expected a list of non-empty "
                                         f"names, got {value!r}")
            object.__setattr__(self, f, tuple(value))
            dup = sorted({n for n in value if list(value).count(n) > 1})
            if dup:
                raise FeatureSchemaError(f"feature schema: {f}: repeated names {dup}")
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) \
                or self.horizon < 1:
            raise FeatureSchemaError(f"feature schema: horizon must be an integer ≥ 1, got "
                                     f"{self.horizon!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise FeatureSchemaError(f"feature schema: version must be an integer, got "
                                     f"{self.version!r}")

    # -- dimensions ----------------------------------------------------------------------------

    @property
    def initial_dim(self) -> int:
        return len(self.initial)

    @property
    def temporal_dim(self) -> int:
        """D_t: features per state."""
        return len(self.temporal)

    @property
    def summary_dim(self) -> int:
        """D_s: features per realization."""
        return len(self.summary)

    @property
    def states(self) -> int:
        """States in the feature window: H + 1."""
        return self.horizon + 1

    @property
    def summary_aggregated(self) -> tuple[str, ...]:
        """``f"{agg}:{name}"``, agg-major (all means, then all stds, then all cvs)."""
        return tuple(f"{a}:{n}" for a in self.aggregations for n in self.summary)

    @property
    def summary_aggregated_dim(self) -> int:
        return len(self.aggregations) * len(self.summary)

    @property
    def tokenizer_input_names(self) -> tuple[str, ...]:
        """initial ⊕ aggregated summary ⊕ temporal_mean:* ⊕ temporal_std:*."""
        return (*self.initial, *self.summary_aggregated,
                *(f"temporal_mean:{n}" for n in self.temporal),
                *(f"temporal_std:{n}" for n in self.temporal))

    @property
    def tokenizer_input_dim(self) -> int:
        return self.initial_dim + self.summary_aggregated_dim + 2 * self.temporal_dim

    def tokenizer_input_slices(self) -> dict[str, slice]:
        """Column ranges of the tokenizer input per family: initial, summary, temporal."""
        a = self.initial_dim
        b = a + self.summary_aggregated_dim
        return {"initial": slice(0, a), "summary": slice(a, b),
                "temporal": slice(b, b + 2 * self.temporal_dim)}

    def registry(self) -> dict[str, dict[str, int]]:
        """``{family: {name: column}}`` of the stored arrays (the HDF5 ``feature_registry``)."""
        return {
            "initial": {n: i for i, n in enumerate(self.initial)},
            "temporal": {n: i for i, n in enumerate(self.temporal)},
            "summary_per_trajectory": {n: i for i, n in enumerate(self.summary)},
            "summary": {n: i for i, n in enumerate(self.summary_aggregated)},
        }

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Any) -> FeatureSchema:
        """Inverse of ``to_dict``; ``FeatureSchemaError`` naming missing or unknown keys."""
        if not isinstance(d, dict):
            raise FeatureSchemaError(f"feature schema: expected a mapping, got "
                                     f"{type(d).__name__}")
        names = {f.name for f in fields(cls)}
        required = names - {"aggregations"}
        missing = sorted(required - set(d))
        unknown = sorted(set(d) - names)
        if missing or unknown:
            raise FeatureSchemaError(f"feature schema: missing keys {missing}, unknown keys "
                                     f"{unknown}; expected {sorted(names)}")
        return cls(**d)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): what the digest hashes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> FeatureSchema:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise FeatureSchemaError(f"feature schema: invalid JSON: {exc}") from None

    def digest(self) -> str:
        """SHA-256 hex of the canonical JSON."""
        return _digest(self.to_json())

    def describe(self) -> str:
        """One line: version, horizon, dims and the digest's first 12 hex digits."""
        return (f"feature schema v{self.version}, horizon {self.horizon}, initial "
                f"{self.initial_dim}, temporal {self.temporal_dim}, summary {self.summary_dim}"
                f" × {len(self.aggregations)}, tokenizer input {self.tokenizer_input_dim}, "
                f"digest {self.digest()[:12]}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def feature_schema(horizon: int) -> FeatureSchema:
    """The one schema of this code version for a window of ``horizon`` + 1 states."""
    return FeatureSchema(version=FEATURE_SCHEMA_VERSION, horizon=int(horizon),
                         initial=INITIAL_NAMES, temporal=TEMPORAL_NAMES, summary=SUMMARY_NAMES)


def check_schema(found: FeatureSchema, expected: FeatureSchema, where: str) -> None:
    """Raise ``FeatureSchemaError`` naming ``where`` and both schemas when they differ."""
    if found.digest() != expected.digest():
        raise FeatureSchemaError(f"{where}: feature schema [{found.describe()}] differs from "
                                 f"the expected [{expected.describe()}]")


# ---------------------------------------------------------------------------------------------
# Structurally flat columns: constant by construction for some input shapes. The gradient
# coverage test and report use this list (``structurally_flat``).
# ---------------------------------------------------------------------------------------------

#: TEMPORAL / SUMMARY names that are constant when the data has a single channel.
FLAT_SINGLE_CHANNEL: dict[str, str] = {
    "cross_corr_mean": "C = 1: no channel pair (defined as 1)",
    "cross_corr_min": "C = 1: no channel pair (defined as 1)",
    "cross_corr_std": "C = 1: no channel pair (defined as 0)",
    "cross_top_eigenvalue": "C = 1: the 1×1 correlation matrix is [1]",
    "cross_participation": "C = 1: the 1×1 correlation matrix is [1]",
    "lag_asymmetry_max": "C = 1: no channel pair (defined as 0)",
}
#: Names constant with exactly two channels (one pair).
FLAT_TWO_CHANNELS: dict[str, str] = {
    "cross_corr_std": "C = 2: a single channel pair, whose std over pairs is 0",
}
#: Names constant when the window holds fewer than ``n`` states: name → (n, reason).
FLAT_SHORT_WINDOW: dict[str, tuple[int, str]] = {
    "energy_acceleration": (3, "a second difference needs 3 states"),
    "smoothness": (3, "a second difference needs 3 states"),
    "sign_switch_rate": (3, "a change of direction needs 3 states"),
    "acf_decay_time": (3, "ACF lags 1 … T−2 need T ≥ 3"),
    "trend_r2": (3, "two states always lie on a line: R² = 1"),
    "spike_fraction": (3, "two states sit ±1 std from their mean, never 2 std above it"),
    "detrended_variance": (3, "two states lie on their fitted line: residual variance 0"),
    "zero_crossing_rate": (3, "two states always straddle their mean: the soft rate is 1"),
    **{f"drift_{s}_{n}_{m}": (3, why)
       for s in ("raw", "lowpass") for n in ("l1", "l2", "linf", "tv")
       for m, why in (("var_delta", "the variance of one increment is 0"),
                      ("monotonicity", "one increment: its soft sign saturates at ±1"))},
}


def structurally_flat(schema: FeatureSchema, *, channels: int, realizations: int
                      ) -> dict[str, str]:
    """``{tokenizer input column: reason}`` of the columns constant for data of this shape."""
    base: dict[str, str] = {}
    if channels == 1:
        base.update(FLAT_SINGLE_CHANNEL)
    elif channels == 2:
        base.update(FLAT_TWO_CHANNELS)
    for name, (n, why) in FLAT_SHORT_WINDOW.items():
        if schema.states < n:
            base[name] = f"{schema.states} states: {why}"
    out: dict[str, str] = {}
    for name in schema.initial:
        if name in base:
            out[name] = base[name]
    for agg in schema.aggregations:
        for name in schema.summary:
            if name in base:
                out[f"{agg}:{name}"] = base[name]
            elif agg != "mean" and realizations == 1:
                out[f"{agg}:{name}"] = "M = 1: no spread over realizations (defined as 0)"
    for prefix in ("temporal_mean", "temporal_std"):
        for name in schema.temporal:
            if name in base:
                out[f"{prefix}:{name}"] = base[name]
    return out
