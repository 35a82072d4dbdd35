"""``FeatureExtractor``: the INITIAL, TEMPORAL and SUMMARY families of a trajectory window.

One feature pipeline serves ground truth, NOA rollouts and evaluation. Everything is batched and
vectorised over B, M, T and C (no Python loop over samples or states), differentiable with
respect to the window, and per sample: no statistic is taken across the batch, so a row's
features do not depend on the other rows.

Shapes: a window is ``[B, M, H+1, C, Hg, Wg]`` (B operators, M realizations, the H + 1 states
of the feature horizon with X_start first, C channels, an Hg × Wg grid).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from noa_core.features.causality import causality_features
from noa_core.features.drift import drift_features
from noa_core.features.frame_stats import (
    FrameStats,
    live_span,
    window_stats,
)
from noa_core.features.initial import initial_features
from noa_core.features.numerics import eps_like, smooth_std, std_over
from noa_core.features.schema import FeatureSchema
from noa_core.features.temporal_summary import realization_series, temporal_summary_features

#: Coefficient of variation = std / sqrt(mean² + (CV_FLOOR·std)² + ε²): ≤ 1 / CV_FLOOR = 100
#: where the mean over realizations is near 0 (the original's cv exploded there).
CV_FLOOR = 0.01


@dataclass
class Features:
    """The feature families of B windows.

    - ``initial [B, 14]``: from the window's first state (mean over M of X_start, shared);
    - ``temporal [B, H+1, D_t]``: per state, averaged over M and C;
    - ``summary_per_realization [B, M, D_s]``;
    - ``summary [B, 3·D_s]``: mean | std | cv over M, agg-major.
    """

    initial: Tensor
    temporal: Tensor
    summary_per_realization: Tensor
    summary: Tensor

    def __len__(self) -> int:
        return int(self.initial.shape[0])

    def detach(self) -> Features:
        return Features(*(getattr(self, f.name).detach() for f in fields(self)))

    def to(self, *args: object, **kwargs: object) -> Features:
        """``Tensor.to`` applied to every family."""
        return Features(*(getattr(self, f.name).to(*args, **kwargs) for f in fields(self)))

    def rows(self, idx: slice | Tensor | list[int]) -> Features:
        """The rows ``idx`` of every family."""
        if not isinstance(idx, slice):
            idx = torch.as_tensor(idx, dtype=torch.long)
        return Features(*(getattr(self, f.name)[idx] for f in fields(self)))

    @staticmethod
    def concat(parts: list[Features]) -> Features:
        """Rows of ``parts`` stacked in order (every part of the same schema)."""
        if not parts:
            raise ValueError("no feature batches to concatenate")
        return Features(*(torch.cat([getattr(p, f.name) for p in parts])
                          for f in fields(Features)))


def aggregate_realizations(per_realization: Tensor) -> Tensor:
    """``[B, M, D] → [B, 3·D]``: mean | std | cv over M (population std: M = 1 gives 0, 0)."""
    mean = per_realization.mean(1)
    var = ((per_realization - mean[:, None]) ** 2).mean(1)
    std = smooth_std(var, eps_like(mean))
    denom = torch.sqrt(mean * mean + (CV_FLOOR * CV_FLOOR) * var + 1e-12)
    return torch.cat([mean, std, std / denom], dim=-1)


class FeatureExtractor:
    """Computes ``Features`` of windows ``[B, M, H+1, C, Hg, Wg]`` for one ``FeatureSchema``."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema

    def _check(self, window: Tensor) -> Tensor:
        if not isinstance(window, Tensor):
            raise TypeError(f"window must be a torch.Tensor, got {type(window).__name__}")
        if window.dim() != 6:
            raise ValueError(f"window must be [B, M, H+1, C, Hg, Wg] (6 dims), got shape "
                             f"{tuple(window.shape)}")
        if window.shape[2] != self.schema.states:
            raise ValueError(
                f"window holds {window.shape[2]} states, expected H + 1 = {self.schema.states} "
                f"(horizon {self.schema.horizon}); cut it with feature_window()")
        if min(window.shape) < 1:
            raise ValueError(f"window has an empty axis: shape {tuple(window.shape)}")
        if not window.is_floating_point() or window.dtype in (torch.float16, torch.bfloat16):
            window = window.float()
        return window

    def __call__(self, window: Tensor, live: slice | None = None) -> Features:
        """All families of ``window [B, M, H+1, C, Hg, Wg]``.

        ``live``: the states (a slice of the H + 1) a gradient is wanted for; the others are
        treated as constants, which makes the backward cost the live states only
        (``frame_stats.window_stats``). None: all states. The values do not depend on it.
        """
        window = self._check(window)
        stats = window_stats(window, live)
        x0 = window[:, :, 0]
        if live_span(live, window.shape[2])[0] > 0:
            x0 = x0.detach()
        per_realization = self._summary_per_realization(stats)
        return Features(self.initial(x0.mean(1)), stats.temporal, per_realization,
                        aggregate_realizations(per_realization))

    def initial(self, x0: Tensor) -> Tensor:
        """``[B, C, Hg, Wg] → [B, 14]`` (the channel-mean initial condition's features)."""
        if x0.dtype in (torch.float16, torch.bfloat16) or not x0.is_floating_point():
            x0 = x0.float()
        return initial_features(x0)

    @staticmethod
    def _summary_per_realization(stats: FrameStats) -> Tensor:
        ser = realization_series(stats.mean, stats.energy, stats.var)
        return torch.cat([temporal_summary_features(ser), drift_features(stats.norms),
                          causality_features(ser, stats.flow, stats.grad_ms, stats.std)],
                         dim=-1)


def tokenizer_input(f: Features) -> Tensor:
    """``[B, D_in]`` = initial ⊕ summary ⊕ temporal mean over time ⊕ temporal std over time."""
    return torch.cat([f.initial, f.summary, f.temporal.mean(1), std_over(f.temporal, 1)], dim=-1)


def feature_window(trajectories: Tensor, context: int, horizon: int) -> Tensor:
    """States ``context … context + horizon`` of ``trajectories [..., S+1, C, Hg, Wg]``.

    The time axis is the fourth from the end (``[B, M, S+1, C, Hg, Wg]`` or ``[M, S+1, ...]``).
    ``ValueError`` naming both counts when S < context + horizon.
    """
    if trajectories.dim() < 4:
        raise ValueError(f"trajectories must be [..., S+1, C, Hg, Wg], got shape "
                         f"{tuple(trajectories.shape)}")
    if context < 0 or horizon < 1:
        raise ValueError(f"expected context ≥ 0 and horizon ≥ 1, got {context}, {horizon}")
    states = trajectories.shape[-4]
    need = context + horizon + 1
    if states < need:
        raise ValueError(
            f"trajectories hold {states} states (S = {states - 1} steps), the feature window "
            f"needs context {context} + horizon {horizon} + 1 = {need} states "
            f"(S ≥ {need - 1}); replay with --steps {need - 1} or more")
    return trajectories.narrow(-4, context, horizon + 1)
