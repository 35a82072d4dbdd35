"""Dataset-level field statistics of a train split, accumulated batch by batch.

The NOA normalises a field with the train split's per-channel mean and std μ_f, σ_f [C], and
its context encoder scales increments by their per-channel std, that of (u_{t+1} − u_t)/σ_f.
The moments are accumulated in float64 one batch of operators at a time (the pairwise update of
Chan, Golub and LeVeque), so a split never has to be in memory whole: the `paper` train split
is about 24 GB as float32, and the float64 copy a one-shot std takes would double it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

# Channel axis of a batch of states [b, M, T, C, H, W].
CHANNEL_DIM = 3


@dataclass(frozen=True)
class ChannelMoments:
    """Count, mean [C] and sum of squared deviations [C] (float64) of values per channel."""

    count: int
    mean: torch.Tensor
    m2: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor, channel_dim: int = CHANNEL_DIM) -> ChannelMoments:
        """The moments of every value of x, per index of ``channel_dim``."""
        per = x.movedim(channel_dim, 0).reshape(x.shape[channel_dim], -1).double()
        mean = per.mean(1)
        return cls(per.shape[1], mean, (per - mean[:, None]).square().sum(1))

    def __add__(self, other: ChannelMoments) -> ChannelMoments:
        n = self.count + other.count
        delta = other.mean - self.mean
        return ChannelMoments(n, self.mean + delta * (other.count / n),
                              self.m2 + other.m2 + delta.square() * (self.count * other.count / n))

    def std(self) -> torch.Tensor:
        """Population std [C], float64."""
        return (self.m2 / self.count).sqrt()


@dataclass(frozen=True)
class FieldStats:
    """μ_f, σ_f and the increment std [C] (float32) that ``NOABackbone.set_field_stats`` takes."""

    mean: torch.Tensor
    std: torch.Tensor
    increment_std: torch.Tensor


class FieldMoments:
    """The moments of states and of their increments, added one batch at a time."""

    def __init__(self) -> None:
        self.states: ChannelMoments | None = None
        self.increments: ChannelMoments | None = None

    def add(self, x: torch.Tensor) -> None:
        """Add states [b, M, T, C, H, W] (T ≥ 2; increments are taken along T within the
        batch, so a batch must hold whole trajectories)."""
        if x.ndim != 6 or x.shape[2] < 2 or x.numel() == 0:
            raise ValueError(f"a batch of states of shape {tuple(x.shape)}: expected "
                             "[b, M, T, C, H, W], none empty, with T ≥ 2")
        s = ChannelMoments.of(x)
        d = ChannelMoments.of(x[:, :, 1:] - x[:, :, :-1])
        if self.states is None or self.increments is None:
            self.states, self.increments = s, d
        else:
            self.states, self.increments = self.states + s, self.increments + d

    def result(self) -> FieldStats:
        """The statistics of every state added; a zero std becomes 1 (a constant channel is
        left unscaled)."""
        if self.states is None or self.increments is None:
            raise ValueError("field statistics need at least one batch of states")
        std = _positive(self.states.std())
        return FieldStats(self.states.mean.float(), std,
                          _positive(self.increments.std() / std.double()))


def field_stats(batches: Iterable[torch.Tensor]) -> FieldStats:
    """Statistics of the states given in batches [b, M, T, C, H, W] (``FieldMoments``)."""
    moments = FieldMoments()
    for x in batches:
        moments.add(x)
    return moments.result()


def _positive(std: torch.Tensor) -> torch.Tensor:
    """float64 std [C] → float32, with 1 where it is zero."""
    return torch.where(std > 0, std, torch.ones_like(std)).float()
