"""The θ parameter space: mapping u ∈ [0,1]^P to operator settings, and seeded Sobol sampling.

θ is stored as the unit vector u (float64, one column per declared slot, in vector order);
``ThetaSpace.map`` turns a row into an ``OperatorSpec``. Constant slots hold u = 0.5 and are
not sampled: the Sobol sequence spans only the sampled slots, so its quality figures describe the
dimensions that act on the dynamics.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from noa_core.config import (
    BooleanParam,
    ChoiceParam,
    ConstantParam,
    ContinuousParam,
    DynamicsConfig,
    IntegerParam,
    ParameterSpaceConfig,
    ParamSpec,
)
from noa_core.dynamics.seeding import derive_seed

CONSTANT_U = 0.5

# The original's acceptance thresholds for a Sobol draw; we store figures and flag, never reject.
MAX_CENTRED_DISCREPANCY = 0.01
MAX_ABS_CORRELATION = 0.05


def map_unit(spec: ParamSpec, u: float) -> Any:
    """Map one unit coordinate to a slot value with the original's rules.

    integer → round(lo + u (hi − lo)) with numpy rounding; continuous → linear or log-uniform;
    choice → ⌊u n⌋ clipped, or searchsorted(cumsum(w), u, right) clipped; boolean → u > 0.5.
    """
    if isinstance(spec, ConstantParam):
        return spec.value
    if not 0.0 <= u <= 1.0 or math.isnan(u):
        raise ValueError(f"unit coordinate must lie in [0, 1], got {u}")
    if isinstance(spec, IntegerParam):
        lo, hi = spec.bounds
        return int(np.round(lo + u * (hi - lo)))
    if isinstance(spec, ContinuousParam):
        lo, hi = spec.bounds
        if spec.log_scale:
            return float(10 ** (math.log10(lo) + u * (math.log10(hi) - math.log10(lo))))
        return float(lo + u * (hi - lo))
    if isinstance(spec, ChoiceParam):
        n = len(spec.choices)
        if spec.weights is None:
            idx = min(math.floor(u * n), n - 1)
        else:
            idx = int(np.searchsorted(np.cumsum(spec.weights), u, side="right"))
            idx = min(max(idx, 0), n - 1)
        return spec.choices[idx]
    if isinstance(spec, BooleanParam):
        return bool(u > 0.5)
    raise TypeError(f"unknown parameter spec {type(spec).__name__}")


def unit_edges(spec: ParamSpec) -> list[float]:
    """Unit coordinates where ``map_unit`` of a discrete slot changes value (u ≥ edge: the next
    value); empty for continuous and constant slots. Integer → (k − ½)/(hi − lo), k = 1…hi − lo;
    choice → k/n or the cumulative weights; boolean → ½."""
    if isinstance(spec, IntegerParam):
        lo, hi = spec.bounds
        return [(k - 0.5) / (hi - lo) for k in range(1, hi - lo + 1)]
    if isinstance(spec, ChoiceParam):
        n = len(spec.choices)
        if spec.weights is None:
            return [k / n for k in range(1, n)]
        return [float(c) for c in np.cumsum(spec.weights)[:-1]]
    if isinstance(spec, BooleanParam):
        return [0.5]
    return []


@dataclass(frozen=True)
class OperatorSpec:
    """Everything that defines one CNO operator and its update rule (seeds aside)."""

    num_layers: int
    base_channels: int
    kernel_size: int
    activation: str
    noise_scale: float
    spatial_correlation: float
    update_policy: str
    dt: float
    alpha: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SobolQuality:
    """Quality of a θ draw over its sampled dimensions."""

    centred_discrepancy: float
    max_abs_correlation: float
    mean_abs_correlation: float
    num_points: int
    num_dims: int
    seed: int

    @property
    def acceptable(self) -> bool:
        return (self.centred_discrepancy < MAX_CENTRED_DISCREPANCY
                and self.max_abs_correlation < MAX_ABS_CORRELATION)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(max_centred_discrepancy=MAX_CENTRED_DISCREPANCY,
                 max_abs_correlation_threshold=MAX_ABS_CORRELATION,
                 acceptable=self.acceptable, method="scipy Sobol, scrambled (LMS + digital shift)")
        return d


class ThetaSpace:
    """The declared θ slots in vector order, with mapping and sampling."""

    def __init__(self, cfg: ParameterSpaceConfig, dynamics: DynamicsConfig) -> None:
        self.cfg = cfg
        self.dynamics = dynamics
        slots = cfg.slots()
        self.names: list[str] = [n for n, _ in slots]
        self.specs: list[ParamSpec] = [s for _, s in slots]

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def sampled(self) -> list[int]:
        """Indices of the slots that are sampled (not constant)."""
        return [i for i, s in enumerate(self.specs) if not isinstance(s, ConstantParam)]

    def edges(self) -> list[list[float]]:
        """Per slot, the unit coordinates where its value changes (``unit_edges``)."""
        return [unit_edges(s) for s in self.specs]

    @property
    def constant(self) -> dict[str, Any]:
        """Constant slots and their values."""
        return {n: s.value for n, s in zip(self.names, self.specs, strict=True)
                if isinstance(s, ConstantParam)}

    def values(self, u: np.ndarray) -> dict[str, Any]:
        """Map a unit vector [P] to ``{slot name: value}``."""
        u = np.asarray(u, dtype=np.float64)
        if u.shape != (self.dim,):
            raise ValueError(f"θ has shape {u.shape}, expected ({self.dim},) for slots "
                             f"{self.names}")
        if not np.all(np.isfinite(u)):
            bad = [self.names[i] for i in np.flatnonzero(~np.isfinite(u))]
            raise ValueError(f"θ has non-finite values in slots {bad}")
        return {n: map_unit(s, float(x)) for n, s, x in zip(self.names, self.specs, u, strict=True)}

    def map(self, u: np.ndarray) -> OperatorSpec:
        """Map a unit vector [P] to the operator it declares."""
        v = self.values(u)
        return OperatorSpec(
            num_layers=int(v["num_layers"]),
            base_channels=int(v["base_channels"]),
            kernel_size=int(v["kernel_size"]),
            activation=str(v.get("activation", "gelu")),
            noise_scale=float(v["noise_scale"]),
            spatial_correlation=float(v.get("spatial_correlation", 0.0)),
            update_policy=str(v["update_policy"]),
            dt=float(v.get("dt", self.dynamics.dt)),
            alpha=float(v.get("alpha", self.dynamics.alpha)),
        )

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, SobolQuality]:
        """n θ rows [n, P] (float64) from a seeded scrambled Sobol sequence, and its quality.

        Draws the next power of two and keeps the first n points (a Sobol prefix), so the
        sequence is balanced for powers of two. Constant slots are filled with 0.5.
        """
        if n < 1:
            raise ValueError(f"need at least one sample, got {n}")
        from scipy.stats import qmc  # ~0.7 s to import: only where a draw is made

        sobol_seed = derive_seed(seed, "theta-sobol")
        idx = self.sampled
        u = np.full((n, self.dim), CONSTANT_U, dtype=np.float64)
        if idx:
            engine = qmc.Sobol(d=len(idx), scramble=True, rng=np.random.default_rng(sobol_seed))
            pts = engine.random_base2(max(0, math.ceil(math.log2(n))))[:n]
            u[:, idx] = pts
        return u, self.quality(u, sobol_seed)

    def quality(self, u: np.ndarray, seed: int) -> SobolQuality:
        """Centred L2 discrepancy and |Pearson r| between sampled dimensions of a draw [n, P]."""
        from scipy.stats import qmc

        pts = u[:, self.sampled]
        n, d = pts.shape
        cd = float(qmc.discrepancy(pts, method="CD")) if d and n > 1 else 0.0
        if d > 1 and n > 2:
            r = np.corrcoef(pts, rowvar=False)
            off = np.abs(r[~np.eye(d, dtype=bool)])
            max_r, mean_r = float(off.max()), float(off.mean())
        else:
            max_r = mean_r = 0.0
        return SobolQuality(cd, max_r, mean_r, n, d, seed)
