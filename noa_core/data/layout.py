"""The HDF5 layout: the single source of truth for every dataset path and attribute name.

A dataset (``kind = "dataset"``) or replay (``kind = "replay"``) file holds, for N samples with a
θ of P slots, C channels on an H × W grid, M noise realizations and S updates per trajectory:

===============================  ============================  =================================
path                             shape / dtype                 meaning
===============================  ============================  =================================
``parameters/params``            [N, P] float64                θ as the unit vector u ∈ [0,1]^P
``inputs/fields``                [N, C, H, W] float32          initial condition X_0
``outputs/fields`` (optional)    [N, M, S+1, C, H, W] f32/f16  trajectories, X_0 first; attribute
                                                               ``num_steps`` = S
``metadata/ic_types``            [N] utf-8                     IC family of each sample
``metadata/evolution_policies``  [N] utf-8                     update policy of each operator
``metadata/noise_regimes``       [N] utf-8                     ``noise_regime(σ)``
``metadata/grid_sizes``          [N] int32                     grid side of each sample
``metadata/sample_ids``          [N] int64                     stable id (seeds and split use it)
``metadata/split``               [N] utf-8                     'train' | 'val' | 'test'
``metadata/seeds/{purpose}``     [N] int64                     per-sample seeds, purposes
                                                               ``weights``, ``ic``, ``noise``
===============================  ============================  =================================

The group ``/metadata`` carries the file attributes listed in ``ATTR_*`` below. Names of the
original system's layout are kept (``parameters/params``, ``inputs/fields``, ``outputs/fields``
and the ``metadata`` strings) so its files still read; what it lacked (seeds, split, sample ids,
a schema version) is added. A file without ``schema_version`` is read as the original ("legacy")
layout.
"""

from __future__ import annotations

from noa_core.data.manifest import sha256_file  # noqa: F401  (re-export: replay files name their source)
from noa_core.dynamics.seeding import PURPOSES

SCHEMA_VERSION = 1
# The original's ``version`` attribute; kept so tools that read it still find it.
LEGACY_FORMAT_VERSION = "1.0"

# --- datasets ---------------------------------------------------------------------------------
PARAMS = "parameters/params"
INPUTS = "inputs/fields"
OUTPUTS = "outputs/fields"

METADATA = "metadata"
IC_TYPES = "metadata/ic_types"
POLICIES = "metadata/evolution_policies"
NOISE_REGIMES = "metadata/noise_regimes"
GRID_SIZES = "metadata/grid_sizes"
SAMPLE_IDS = "metadata/sample_ids"
SPLIT = "metadata/split"
SEEDS_GROUP = "metadata/seeds"

#: Datasets every file (legacy included) must have.
REQUIRED_DATASETS: tuple[str, ...] = (PARAMS, INPUTS)
#: Per-sample string datasets (utf-8 variable length).
STRING_DATASETS: tuple[str, ...] = (IC_TYPES, POLICIES, NOISE_REGIMES, SPLIT)


def seed_key(purpose: str) -> str:
    """Dataset path of one seed purpose, e.g. ``metadata/seeds/weights``."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown seed purpose {purpose!r}; expected one of {PURPOSES}")
    return f"{SEEDS_GROUP}/{purpose}"


SEED_KEYS: dict[str, str] = {p: seed_key(p) for p in PURPOSES}

#: Per-sample datasets a file of this schema (not legacy) must have, besides ``REQUIRED_DATASETS``.
SCHEMA_DATASETS: tuple[str, ...] = (
    SAMPLE_IDS, SPLIT, IC_TYPES, POLICIES, NOISE_REGIMES, GRID_SIZES, *SEED_KEYS.values(),
)

# --- attributes (on the ``/metadata`` group) --------------------------------------------------
ATTR_SCHEMA_VERSION = "schema_version"        # int, SCHEMA_VERSION
ATTR_DATASET_SEED = "dataset_seed"            # int
ATTR_CONFIG = "config"                        # JSON of the full resolved config
ATTR_SAMPLING_METRICS = "sampling_metrics"    # JSON (Sobol quality and the like)
ATTR_THETA_NAMES = "theta_names"              # JSON list of P slot names
ATTR_CREATION_DATE = "creation_date"          # ISO 8601, UTC
ATTR_VERSION = "version"                      # LEGACY_FORMAT_VERSION
ATTR_GRID_SIZE = "grid_size"                  # int
ATTR_NUM_REALIZATIONS = "num_realizations"    # int (0 when trajectories are not stored)
ATTR_NUM_PARAMETER_SETS = "num_parameter_sets"  # int, N
ATTR_KIND = "kind"                            # KIND_DATASET | KIND_REPLAY
ATTR_SPLIT_SELECTED = "split_selected"        # replay only: 'train' | 'val' | 'test' | 'all'
ATTR_SOURCE_SHA256 = "source_sha256"          # replay only: sha256 hex of the source dataset
ATTR_SHARD = "shard"                          # replay only, optional: "I/N" (shard I of N)

#: Attribute of ``outputs/fields``: S, the number of updates (the array holds S + 1 states).
ATTR_NUM_STEPS = "num_steps"

#: Attributes stored as JSON text.
JSON_ATTRS: tuple[str, ...] = (ATTR_CONFIG, ATTR_SAMPLING_METRICS, ATTR_THETA_NAMES)

KIND_DATASET = "dataset"
KIND_REPLAY = "replay"
KINDS: tuple[str, ...] = (KIND_DATASET, KIND_REPLAY)
REPLAY_SPLITS: tuple[str, ...] = ("train", "val", "test", "all")

NOISE_REGIMES_NAMES: tuple[str, ...] = ("low", "medium", "high")


def noise_regime(sigma: float) -> str:
    """The original's noise bucket: 'low' if σ < 0.01, 'medium' if σ < 0.1, else 'high'."""
    if sigma < 0.01:
        return "low"
    if sigma < 0.1:
        return "medium"
    return "high"
