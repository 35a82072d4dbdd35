"""Typed configuration: every YAML schema, the presets and the loader.

All models forbid unknown keys (the original silently dropped misspelt keys and whole sections).
``load_config`` accepts a preset name (``tiny``, ``small``, ``paper``) or a YAML path; a file may
start from a preset with ``extends: NAME`` and override any key. Errors name the file, the key
path and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from noa_core.errors import ConfigError
from noa_core.yaml_text import parse_yaml

PRESETS: tuple[str, ...] = ("tiny", "small", "paper")

# Order of the θ groups in the vector (the original's arch → stoch → operator → evolution).
THETA_GROUPS: tuple[str, ...] = ("architecture", "stochastic", "operator", "evolution")

ACTIVATIONS: tuple[str, ...] = ("gelu", "relu", "silu", "tanh")
UPDATE_POLICIES: tuple[str, ...] = ("residual", "convex", "autoregressive")
IC_TYPES: tuple[str, ...] = ("grf", "multiscale_grf", "localized", "structured")
STRUCTURE_TYPES: tuple[str, ...] = ("circle", "stripe", "blob")
SPLITS: tuple[str, ...] = ("train", "val", "test")


class StrictModel(BaseModel):
    """Base for every schema: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_bounds(lo: float, hi: float) -> None:
    if lo > hi:
        raise ValueError(f"lower bound {lo} is above upper bound {hi}; expected [low, high]")
    if lo == hi:
        raise ValueError(f"bounds [{lo}, {hi}] hold one value; declare the slot `constant`")


# ---------------------------------------------------------------------------------------------
# θ parameter declarations
# ---------------------------------------------------------------------------------------------


class IntegerParam(StrictModel):
    """Integer slot: value = round(lo + u (hi − lo)) (numpy rounding, half-width end bins)."""

    type: Literal["integer"]
    bounds: tuple[int, int]

    @model_validator(mode="after")
    def _bounds(self) -> IntegerParam:
        _check_bounds(*self.bounds)
        return self


class ContinuousParam(StrictModel):
    """Continuous slot: lo + u (hi − lo), or log-uniform between the bounds when ``log_scale``."""

    type: Literal["continuous"]
    bounds: tuple[float, float]
    log_scale: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> ContinuousParam:
        _check_bounds(*self.bounds)
        if self.log_scale and self.bounds[0] <= 0:
            raise ValueError(f"log_scale needs a positive lower bound, got {self.bounds[0]}")
        return self


class ChoiceParam(StrictModel):
    """Choice slot: index ⌊u n⌋ (unweighted) or searchsorted(cumsum(weights), u, right)."""

    type: Literal["choice"]
    choices: list[str | int | float] = Field(min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _choices(self) -> ChoiceParam:
        if len(self.choices) == 1:
            raise ValueError("a choice with one value is not sampled; declare the slot `constant`")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError(f"choices repeat a value: {self.choices}")
        if self.weights is not None:
            if len(self.weights) != len(self.choices):
                raise ValueError(
                    f"{len(self.weights)} weights for {len(self.choices)} choices; expected one "
                    "each"
                )
            if any(w < 0 for w in self.weights) or not math.isclose(sum(self.weights), 1.0,
                                                                    abs_tol=1e-6):
                raise ValueError(f"weights must be non-negative and sum to 1, got {self.weights}")
        return self


class BooleanParam(StrictModel):
    """Boolean slot: u > 0.5."""

    type: Literal["boolean"]


class ConstantParam(StrictModel):
    """A slot that keeps one value: it holds a place in θ but is not sampled."""

    type: Literal["constant"]
    value: bool | int | float | str


ParamSpec = Annotated[
    IntegerParam | ContinuousParam | ChoiceParam | BooleanParam | ConstantParam,
    Field(discriminator="type"),
]

# What each θ slot may be declared as, and which values act on the operator. A sampled slot
# that cannot change the operator or its rollout is refused (the original sampled a dropout that
# eval mode disabled and a spatial correlation that was never wired).
_SLOT_TYPES: dict[str, tuple[str, ...]] = {
    "num_layers": ("integer", "constant"),
    "base_channels": ("integer", "constant"),
    "kernel_size": ("choice", "constant"),
    "activation": ("choice", "constant"),
    "dropout_rate": ("constant",),
    "noise_type": ("constant",),
    "noise_scale": ("continuous", "constant"),
    "noise_schedule": ("constant",),
    "spatial_correlation": ("continuous", "constant"),
    "normalization": ("constant",),
    "grid_size": ("constant",),
    "update_policy": ("choice", "constant"),
    "dt": ("continuous", "constant"),
    "alpha": ("continuous", "constant"),
}
_INERT_REASON: dict[str, str] = {
    "dropout_rate": "operators run in eval mode during rollouts, so dropout never acts",
    "noise_type": "only gaussian noise is implemented",
    "noise_schedule": "only a constant noise schedule is implemented",
    "normalization": "only instance normalisation is implemented",
    "grid_size": "the grid is fixed by dynamics.grid",
}
REQUIRED_SLOTS: tuple[str, ...] = (
    "num_layers", "base_channels", "kernel_size", "noise_scale", "update_policy",
)
_ALLOWED_VALUES: dict[str, tuple[Any, ...]] = {
    "activation": ACTIVATIONS,
    "noise_type": ("gaussian",),
    "noise_schedule": ("constant",),
    "normalization": ("instance",),
    "update_policy": UPDATE_POLICIES,
}


def _values_of(spec: ParamSpec) -> list[Any]:
    if isinstance(spec, ChoiceParam):
        return list(spec.choices)
    if isinstance(spec, ConstantParam):
        return [spec.value]
    if isinstance(spec, IntegerParam | ContinuousParam):
        return list(spec.bounds)
    return [False, True]


def _check_slot(name: str, spec: ParamSpec) -> None:
    if name not in _SLOT_TYPES:
        raise ValueError(
            f"unknown θ slot {name!r}; known slots: {', '.join(_SLOT_TYPES)}"
        )
    allowed = _SLOT_TYPES[name]
    if spec.type not in allowed:
        why = _INERT_REASON.get(name, "")
        raise ValueError(
            f"slot {name!r} cannot be of type {spec.type!r}; expected one of {allowed}"
            + (f" ({why})" if why else "")
        )
    values = _values_of(spec)
    if name in _ALLOWED_VALUES and any(v not in _ALLOWED_VALUES[name] for v in values):
        raise ValueError(f"slot {name!r} takes values in {_ALLOWED_VALUES[name]}, got {values}")
    if name == "kernel_size" and any(not isinstance(v, int) or v < 1 or v % 2 == 0
                                     for v in values):
        raise ValueError(f"kernel_size takes odd positive integers, got {values}")
    if name in ("num_layers", "base_channels") and min(values) < 1:
        raise ValueError(f"{name} must be at least 1, got {values}")
    if name in ("noise_scale", "spatial_correlation", "dt") and min(values) < 0:
        raise ValueError(f"{name} must be non-negative, got {values}")
    if name == "spatial_correlation" and max(values) >= 1:
        raise ValueError(f"spatial_correlation is a fraction of the grid below 1, got {values}")
    if name == "alpha" and not all(0 <= v < 1 for v in values):
        raise ValueError(f"alpha must lie in [0, 1), got {values}")


class ParameterSpaceConfig(StrictModel):
    """The θ declaration: four ordered groups of named slots (YAML order within a group)."""

    architecture: dict[str, ParamSpec]
    stochastic: dict[str, ParamSpec]
    operator: dict[str, ParamSpec]
    evolution: dict[str, ParamSpec]

    @model_validator(mode="after")
    def _slots(self) -> ParameterSpaceConfig:
        seen: set[str] = set()
        for group in THETA_GROUPS:
            for name, spec in getattr(self, group).items():
                if name in seen:
                    raise ValueError(f"slot {name!r} is declared twice")
                seen.add(name)
                try:
                    _check_slot(name, spec)
                except ValueError as exc:
                    raise ValueError(f"{group}.{name}: {exc}") from None
        missing = [s for s in REQUIRED_SLOTS if s not in seen]
        if missing:
            raise ValueError(f"required θ slots missing: {missing}")
        return self

    def slots(self) -> list[tuple[str, ParamSpec]]:
        """All slots in vector order: groups in ``THETA_GROUPS`` order, YAML order inside."""
        return [(n, s) for g in THETA_GROUPS for n, s in getattr(self, g).items()]


# ---------------------------------------------------------------------------------------------
# Initial conditions
# ---------------------------------------------------------------------------------------------


def _range(lo_hi: tuple[float, float], name: str, positive: bool = True) -> None:
    lo, hi = lo_hi
    if lo > hi:
        raise ValueError(f"{name}: lower bound {lo} is above upper bound {hi}")
    if positive and lo <= 0:
        raise ValueError(f"{name}: expected positive values, got {lo_hi}")


class GRFConfig(StrictModel):
    """Gaussian random field; the correlation length ℓ is a fraction of the domain side.

    Spectrum ∝ exp(−(2π k ℓ)² / 2) with k in cycles per domain side, i.e. a Gaussian covariance
    of length ℓ·grid pixels: a larger ℓ really band-limits the field (the original's ℓ was so small
    against its frequency units that every "GRF" was white noise).
    """

    length_scale: tuple[float, float] = (0.03, 0.15)
    variance: tuple[float, float] = (0.25, 4.0)

    @model_validator(mode="after")
    def _ranges(self) -> GRFConfig:
        _range(self.length_scale, "length_scale")
        _range(self.variance, "variance")
        return self


class MultiscaleGRFConfig(StrictModel):
    """Sum of GRFs over one band of length scales (drawn uniformly among the bands)."""

    bands: list[list[float]] = [[0.3, 0.35, 0.4], [0.08, 0.1, 0.12], [0.02, 0.025, 0.03]]
    variance: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _bands(self) -> MultiscaleGRFConfig:
        if not self.bands or any(not b or min(b) <= 0 for b in self.bands):
            raise ValueError(f"bands must be non-empty lists of positive scales, got {self.bands}")
        return self


class LocalizedConfig(StrictModel):
    """Sum of Gaussian blobs; width is a fraction of the grid side (5–15 px at 64²)."""

    num_blobs: int = Field(5, ge=1)
    width: tuple[float, float] = (5 / 64, 15 / 64)
    amplitude_std: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _ranges(self) -> LocalizedConfig:
        _range(self.width, "width")
        return self


class StructuredConfig(StrictModel):
    """Circles, stripes and blobs, each added to one random channel."""

    num_structures: int = Field(5, ge=1)
    types: list[Literal["circle", "stripe", "blob"]] = list(STRUCTURE_TYPES)
    circle_radius_max: float = Field(0.2, gt=0, lt=1)
    circle_amplitude_std: float = Field(2.0, gt=0)
    stripe_frequency: tuple[float, float] = (1.0, 6.0)
    blob_width: tuple[float, float] = (0.02, 0.15)
    blob_amplitude_std: float = Field(3.0, gt=0)

    @model_validator(mode="after")
    def _ranges(self) -> StructuredConfig:
        _range(self.stripe_frequency, "stripe_frequency")
        _range(self.blob_width, "blob_width")
        if not self.types:
            raise ValueError("types must name at least one structure")
        return self


class InitialConditionConfig(StrictModel):
    """IC family weights (the type is drawn per sample with a seeded generator) and parameters."""

    weights: dict[Literal["grf", "multiscale_grf", "localized", "structured"], float] = {
        "grf": 0.25, "multiscale_grf": 0.25, "localized": 0.25, "structured": 0.25,
    }
    grf: GRFConfig = GRFConfig()
    multiscale_grf: MultiscaleGRFConfig = MultiscaleGRFConfig()
    localized: LocalizedConfig = LocalizedConfig()
    structured: StructuredConfig = StructuredConfig()

    @model_validator(mode="after")
    def _weights(self) -> InitialConditionConfig:
        w = list(self.weights.values())
        if not w or any(x < 0 for x in w) or not math.isclose(sum(w), 1.0, abs_tol=1e-6):
            raise ValueError(f"weights must be non-negative and sum to 1, got {self.weights}")
        return self


# ---------------------------------------------------------------------------------------------
# Dynamics and dataset
# ---------------------------------------------------------------------------------------------


class DynamicsConfig(StrictModel):
    """Grid, channels and the time axis shared by generation, replay, features and training.

    ``feature_horizon`` H counts the steps after the context; ``context_max`` K_max the observed
    steps before it; a stored trajectory has K_max + H updates, i.e. K_max + H + 1 states.
    """

    grid: int = Field(ge=8)
    channels: int = Field(ge=1)
    feature_horizon: int = Field(ge=1)
    context_max: int = Field(ge=0)
    realizations: int = Field(ge=1)
    dt: float = Field(0.01, gt=0)
    alpha: float = Field(0.5, ge=0, lt=1)
    num_threads: int = Field(1, ge=1)
    device: Literal["cpu", "cuda"] = "cpu"
    replay_timeout_s: float = Field(600.0, gt=0)

    @property
    def steps(self) -> int:
        """Updates per stored trajectory: K_max + H."""
        return self.context_max + self.feature_horizon


class SplitConfig(StrictModel):
    """Integer split weights: each block of train + val + test consecutive ids splits exactly."""

    train: int = Field(4, ge=1)
    val: int = Field(1, ge=0)
    test: int = Field(1, ge=1)

    @property
    def block(self) -> int:
        return self.train + self.val + self.test


class DatasetConfig(StrictModel):
    """Generation of the operator dataset (θ, ICs, optionally the trajectories)."""

    num_samples: int = Field(ge=1)
    seed: int = Field(0, ge=0)
    split: SplitConfig = SplitConfig()
    store_trajectories: bool = True
    trajectory_dtype: Literal["float32", "float16"] = "float32"
    chunk_samples: int = Field(8, ge=1)
    compression_level: int = Field(4, ge=0, le=9)


# ---------------------------------------------------------------------------------------------
# Tokenizer (Phase 0 stand-in: categorical hierarchical VQ-VAE and family encoders)
# ---------------------------------------------------------------------------------------------


class CleaningConfig(StrictModel):
    """Column cleaning, fitted on the train split only."""

    min_std: float = Field(1e-8, ge=0)  # relative to 1 + |median|: a column below it is constant
    dedup_abs_corr: float = Field(0.99, gt=0, le=1)
    clip_percentiles: tuple[float, float] = (0.5, 99.5)

    @model_validator(mode="after")
    def _pct(self) -> CleaningConfig:
        lo, hi = self.clip_percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"clip_percentiles must satisfy 0 ≤ low < high ≤ 100, got {lo, hi}")
        return self


class VQConfig(StrictModel):
    """Categories, the per-category encoders and the 3-level EMA codebooks."""

    @model_validator(mode="after")
    def _categories(self) -> VQConfig:
        if self.min_categories > self.max_categories:
            raise ValueError(f"min_categories {self.min_categories} is above max_categories "
                             f"{self.max_categories}")
        return self

    max_categories: int = Field(8, ge=2)
    min_categories: int = Field(2, ge=2)  # the silhouette choice starts here
    min_features_per_category: int = Field(3, ge=1)
    group_hidden_dim: int = Field(64, ge=4)
    group_embedding_dim: int = Field(32, ge=4)
    level_ratios: tuple[float, float, float] = (0.5, 1.0, 1.5)
    max_codebook_size: int = Field(16, ge=2)
    commitment_beta: float = Field(0.35, gt=0)
    ema_decay: float = Field(0.99, gt=0, lt=1)
    dead_code_interval: int = Field(50, ge=0)  # optimiser steps between resets (0: never)
    dead_code_threshold: float = Field(0.05, ge=0)  # EMA usage below this fraction of uniform
    partial_decoder_weight: float = Field(0.1, ge=0)


class TrainingLoopConfig(StrictModel):
    """An optimisation loop: Adam, batches, epochs, early stopping on the validation loss."""

    epochs: int = Field(150, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    patience: int = Field(30, ge=1)
    min_delta: float = Field(1e-4, ge=0)
    seed: int = Field(0, ge=0)


class FamilyEncoderConfig(StrictModel):
    """The three family autoencoders whose embeddings the NOA heads are trained to match."""

    initial_cnn_dim: int = Field(28, ge=1)  # + the 14 manual features = 42
    summary_dim: int = Field(128, ge=1)
    temporal_dim: int = Field(128, ge=1)
    hidden_dim: int = Field(256, ge=8)
    training: TrainingLoopConfig = TrainingLoopConfig(epochs=60, patience=15)


class TokenizerConfig(StrictModel):
    """`noa tokenizer train`: cleaning, categories, VQ-VAE, family encoders, training."""

    cleaning: CleaningConfig = CleaningConfig()
    vq: VQConfig = VQConfig()
    training: TrainingLoopConfig = TrainingLoopConfig()
    families: FamilyEncoderConfig = FamilyEncoderConfig()


# ---------------------------------------------------------------------------------------------
# Model (the U-AFNO NOA backbone: noa_core.models)
# ---------------------------------------------------------------------------------------------


class HeadsConfig(StrictModel):
    """Output sizes of the three feature heads (the family encoders' embedding sizes)."""

    initial: int = Field(42, ge=1)
    summary: int = Field(128, ge=1)
    temporal: int = Field(128, ge=1)
    hidden: int = Field(128, ge=4)  # width of the head MLPs and of the temporal 1D convolutions


class StochasticConfig(StrictModel):
    """Optional Gaussian noise added to the bottleneck latent at each rollout step t.

    σ(t): ``constant`` σ; ``annealing`` σ·max(0, 1 − t/anneal_steps); ``periodic``
    σ·(1 + ½ sin(2π t / period)). Rollouts draw it only when asked (evaluation is deterministic).
    """

    enabled: bool = False
    schedule: Literal["constant", "annealing", "periodic"] = "constant"
    sigma: float = Field(0.0, ge=0)
    anneal_steps: int = Field(64, ge=1)
    period: int = Field(100, ge=1)


class ModelConfig(StrictModel):
    """U-AFNO backbone, θ / context conditioning, feature heads and the stochastic block.

    Encoder level i works at H/2^i with min(base·2^i, max_channels) channels; the AFNO bottleneck
    at H/2^levels with min(base·2^levels, max_channels). AFNO weights are shared by all Fourier
    modes, so no parameter depends on ``modes`` or on the grid (none can be dead at a small grid).
    """

    name: str = "u_afno"
    base_channels: int = Field(32, ge=1)
    levels: int = Field(2, ge=1, le=6)
    max_channels: int = Field(128, ge=1)
    blocks_per_level: int = Field(1, ge=1)
    afno_blocks: int = Field(4, ge=0)
    modes: int = Field(16, ge=1)  # kept |k_y| < modes (both signs) and 0 ≤ k_x < modes
    afno_num_blocks: int = Field(8, ge=1)  # block-diagonal groups of the spectral MLP
    afno_hidden_factor: float = Field(1.0, gt=0)  # spectral MLP width / block size
    sparsity: float = Field(0.01, ge=0)  # soft-shrink λ, in field units (norm="forward" spectra)
    mlp_ratio: float = Field(2.0, gt=0)
    theta_embed_dim: int = Field(64, ge=2)  # also the width of the conditioning vector
    context_max: int = Field(0, ge=0)  # largest K the context encoder accepts (K = 0: none)
    context_embed_dim: int = Field(64, ge=1)
    # The discrete θ slot whose setting selects the update rule. The extrapolation gate and the
    # per-setting linear gain keep one entry per setting of it (learnt apart: extrapolating and
    # contracting are right for one rule and ruinous for the other); None: neither table.
    rule_slot: str | None = "update_policy"
    heads: HeadsConfig = HeadsConfig()
    stochastic: StochasticConfig = StochasticConfig()
    dropout: float = Field(0.0, ge=0, lt=1)
    # Scale of the output conv at init. A fresh step is ≈ identity and its increments are
    # correlated from step to step, so they add up over H steps: at 0.1 a fresh `small` model's
    # 64-step rollout drifts to 10× the persistence error; at 1e-3 it stays at persistence.
    output_init_scale: float = Field(1e-3, gt=0)

    @property
    def level_channels(self) -> list[int]:
        """Channels of encoder levels 0..levels−1, then of the bottleneck (last entry)."""
        return [min(self.base_channels * 2 ** i, self.max_channels)
                for i in range(self.levels + 1)]

    @model_validator(mode="after")
    def _sizes(self) -> ModelConfig:
        if self.base_channels > self.max_channels:
            raise ValueError(f"base_channels {self.base_channels} is above max_channels "
                             f"{self.max_channels}")
        bottleneck = self.level_channels[-1]
        if bottleneck % self.afno_num_blocks:
            raise ValueError(f"afno_num_blocks {self.afno_num_blocks} must divide the bottleneck "
                             f"channels {bottleneck}")
        return self


# ---------------------------------------------------------------------------------------------
# NOA training (noa_core.training)
# ---------------------------------------------------------------------------------------------


class LossWeights(StrictModel):
    """λ of each loss term (see ``noa_core.training.losses`` for the tensors compared)."""

    traj: float = Field(1.0, ge=0)
    latent: float = Field(0.1, ge=0)
    commit: float = Field(0.5, ge=0)
    heads: float = Field(0.1, ge=0)
    recon: float = Field(1.0, ge=0)  # VQ-led only


class TrainConfig(StrictModel):
    """`noa train`: optimisation, truncated BPTT, precision, checkpoints, the non-finite guard."""

    loss_mode: Literal["mse_led", "vq_led"] = "mse_led"
    weights: LossWeights = LossWeights()
    vq_led_traj_weight: float = Field(0.3, ge=0)  # λ_traj when loss_mode is vq_led
    # Steps over which the alignment weights (latent, commit, recon, heads) ramp linearly from
    # ~0 to their values, the trajectory term at full weight throughout; 0: no ramp.
    alignment_warmup: int = Field(0, ge=0)
    batch_size: int = Field(8, ge=1)  # global batch (split across DDP ranks)
    max_steps: int = Field(2000, ge=1)
    # Wall-clock budget of the training loop: it stops before a step and the closing
    # validation (each timed as its last run) would overrun it.
    max_minutes: float | None = Field(None, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(50, ge=0)
    min_lr_ratio: float = Field(0.05, ge=0, le=1)  # cosine floor, as a fraction of lr
    grad_clip: float = Field(1.0, gt=0)
    tbptt_window: int | None = Field(None, ge=1)  # gradient window (None: the whole horizon)
    # Where the window sits: "end" (the last W updates) or "random" (a warm-up drawn per step,
    # seeded by the step, so early on-distribution states train as well as drifted late ones).
    tbptt_position: Literal["end", "random"] = "end"
    checkpoint_activations: bool = False
    amp: Literal["none", "bf16"] = "none"
    # K: observed transitions (states u_0 … u_K) before the scored window, which starts at u_K;
    # validation, evaluation and export default to it.
    context: int = Field(0, ge=0)
    # Each step draws its K uniformly from [lo, hi] (seeded by the step), so one model serves
    # every K in the range; None: always ``context``.
    context_range: tuple[int, int] | None = None
    checkpoint_every: int = Field(100, ge=1)
    val_every: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    nonfinite_abort: int = Field(10, ge=1)  # consecutive skipped steps before aborting
    num_workers: int = Field(0, ge=0)
    seed: int = Field(0, ge=0)


class NOAConfig(StrictModel):
    """One file configures a whole run; later layers add their own sections."""

    name: str = "custom"
    dynamics: DynamicsConfig
    parameter_space: ParameterSpaceConfig
    initial_conditions: InitialConditionConfig = InitialConditionConfig()
    dataset: DatasetConfig
    tokenizer: TokenizerConfig = TokenizerConfig()
    model: ModelConfig = ModelConfig()
    training: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _context(self) -> NOAConfig:
        k_data, k_model, t = self.dynamics.context_max, self.model.context_max, self.training
        if k_model > k_data:
            raise ValueError(f"model.context_max {k_model} is above dynamics.context_max {k_data}"
                             " (the replayed trajectories hold no more context)")
        lo, hi = t.context_range if t.context_range is not None else (t.context, t.context)
        if not 0 <= lo <= hi:
            raise ValueError(f"training.context_range {list(t.context_range or ())} must be "
                             "[lo, hi] with 0 ≤ lo ≤ hi")
        if max(hi, t.context) > k_model:
            raise ValueError(f"training.context {t.context} / context_range up to {hi} needs "
                             f"model.context_max ≥ {max(hi, t.context)}, got {k_model}")
        return self

    @model_validator(mode="after")
    def _levels(self) -> NOAConfig:
        # Each U-AFNO level halves the grid; the decoder's skips must meet at the same size.
        factor = 2 ** self.model.levels
        if self.dynamics.grid % factor:
            raise ValueError(f"model.levels {self.model.levels} halves the grid {self.model.levels}"
                             f" times: dynamics.grid must be divisible by {factor}, got "
                             f"{self.dynamics.grid}")
        return self

    @model_validator(mode="after")
    def _grid(self) -> NOAConfig:
        for name, spec in self.parameter_space.slots():
            if name == "grid_size" and isinstance(spec, ConstantParam) \
                    and spec.value != self.dynamics.grid:
                raise ValueError(
                    f"parameter_space grid_size {spec.value} disagrees with dynamics.grid "
                    f"{self.dynamics.grid}"
                )
        return self


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def preset_path(name: str) -> Path:
    """Path of a packaged preset YAML."""
    return Path(str(resources.files("noa_core") / "presets" / f"{name}.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (or preset: {', '.join(PRESETS)})") \
            from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    data = parse_yaml(text, path, ConfigError)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``over`` into ``base``; a θ slot (a mapping with ``type``) is replaced whole."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and "type" not in value \
                and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve(source: str | Path, chain: tuple[str, ...] = ()) -> tuple[Path, dict[str, Any]]:
    path = preset_path(str(source)) if str(source) in PRESETS else Path(source)
    if str(path) in chain:
        raise ConfigError(f"{path}: `extends` loops: {' → '.join((*chain, str(path)))}")
    data = _read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return path, data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends: expected a preset name or a path, got {parent!r}")
    parent_src = parent if parent in PRESETS else str(path.parent / parent)
    _, base = _resolve(parent_src, (*chain, str(path)))
    return path, _deep_merge(base, data)


def format_validation_error(path: Path | str, exc: ValidationError) -> str:
    """One line per problem: ``FILE: key.path: message (got VALUE)``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
        # Discriminated unions add the tag to the location; it is noise for the reader.
        loc = ".".join(p for p in loc.split(".") if p not in
                       ("integer", "continuous", "choice", "boolean", "constant"))
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        shown = "" if err["type"] == "missing" or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{path}: {loc or '<top>'}: {msg}{shown}")
    return "\n".join(lines)


def config_from_dict(data: Mapping[str, Any], origin: Path | str = "<dict>") -> NOAConfig:
    """Validate a mapping as an ``NOAConfig``; errors name ``origin`` and the key path."""
    try:
        return NOAConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(origin, exc)) from None


def load_config(source: str | Path) -> NOAConfig:
    """Load a preset by name or a YAML file (which may ``extends:`` a preset or another file)."""
    path, data = _resolve(source)
    return config_from_dict(data, path)


def dump_config(cfg: NOAConfig) -> str:
    """The resolved configuration as YAML (what a run stores beside its outputs)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
