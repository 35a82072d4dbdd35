"""The frame stage of the feature families: every field-sized computation, per state.

The families split in two. The *frame stage* reduces each state of a window to a few numbers
(moments, order statistics, derivatives, spectra, the low-pass copy, the flow's products of
consecutive spectra): all of the field-sized work, local in time. The *series stage*
(``extract``, ``temporal_summary``, ``drift``, ``causality``) combines those rows over time: a
few hundred values per window.

Locality in time is what ``window_stats(x, live)`` uses. A TBPTT rollout carries a gradient
only in the states of its window (``live``); the warm-up's states, and those after it, are
constants. Their frame stage then runs on detached tensors: no graph, sorts without
permutations, and a backward over the live states only. The values are those of the whole
window's stage (same ops, on slices of the time axis); only the gradient with respect to the
constant states, which nothing needs, is not computed (it is zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import Tensor

from noa_core.features.causality import flow_dots
from noa_core.features.cross_channel import cross_channel_features
from noa_core.features.drift import drift_norms
from noa_core.features.frames import Frames
from noa_core.features.spatial import spatial_features
from noa_core.features.spectral import spectral_features

#: Axis of the states in a window ``[B, M, T, C, H, W]`` and in every ``FrameStats`` field.
TIME_DIM = 2


@dataclass
class FrameStats:
    """Per-state quantities of a window ``[B, M, T, C, H, W]`` (field units per the name).

    ``temporal`` is the TEMPORAL family itself, already averaged over M (its time axis is 1);
    every other field has the state axis at ``TIME_DIM``.
    """

    temporal: Tensor    # [B, T, D_t]
    mean: Tensor        # [B, M, T, C] spatial mean
    var: Tensor         # [B, M, T, C] spatial variance
    energy: Tensor      # [B, M, T, C] mean square
    std: Tensor         # [B, M, T, C] floored spatial std (``Frames.std``)
    norms: Tensor       # [B, M, T, C, 2, 4] ``drift_norms``
    grad_ms: Tensor     # [B, M, T, C, 2] mean squares of ∂x and ∂y (Parseval)
    flow: Tensor        # [B, M, T−1, C, 2] ``flow_dots`` of consecutive states


def temporal_per_state(fr: Frames) -> Tensor:
    """The TEMPORAL family ``[B, T, D_t]`` of ``Frames`` with leading dims ``[B, M, T, C]``:
    spatial ⊕ spectral statistics averaged over C, ⊕ cross-channel ones, averaged over M."""
    per_channel = torch.cat([spatial_features(fr), spectral_features(fr)], dim=-1)
    per_state = torch.cat([per_channel.mean(3), cross_channel_features(fr.z)], dim=-1)
    return per_state.mean(1)


def frame_stats(fr: Frames) -> FrameStats:
    """``FrameStats`` of ``Frames`` with leading dims ``[B, M, T, C]``."""
    sums = fr.power_sums
    return FrameStats(
        temporal=temporal_per_state(fr), mean=fr.mean, var=fr.var, energy=fr.energy,
        std=fr.std, norms=drift_norms(fr),
        grad_ms=torch.stack([sums["dx2"], sums["dy2"]], dim=-1) / fr.pixels,
        flow=flow_dots(fr.spectrum, fr.shape))


def _join(parts: list[FrameStats], bridges: list[Tensor]) -> FrameStats:
    """The parts' stats in time order; ``bridges[i]``: the flow of the pair that straddles
    parts i and i + 1 ([B, M, 1, C, 2])."""
    def cat(name: str, dim: int = TIME_DIM) -> Tensor:
        return torch.cat([getattr(p, name) for p in parts], dim=dim)

    flow = [parts[0].flow]
    for bridge, part in zip(bridges, parts[1:], strict=True):
        flow += [bridge, part.flow]
    return FrameStats(temporal=cat("temporal", dim=1), mean=cat("mean"), var=cat("var"),
                      energy=cat("energy"), std=cat("std"), norms=cat("norms"),
                      grad_ms=cat("grad_ms"), flow=torch.cat(flow, dim=TIME_DIM))


def live_span(live: slice | None, states: int) -> tuple[int, int]:
    """``(start, stop)`` of ``live`` on a window of ``states`` states (None: all of them).
    ``TypeError`` for anything but a slice, ``ValueError`` for a step other than 1."""
    if live is None:
        return 0, states
    if not isinstance(live, slice):
        raise TypeError(f"live states must be a slice of the window's states or None, got "
                        f"{type(live).__name__}")
    if live.step not in (None, 1):
        raise ValueError(f"live states must be a contiguous slice, got step {live.step}")
    start, stop, _ = live.indices(states)
    return start, max(start, stop)


def window_stats(x: Tensor, live: slice | None = None) -> FrameStats:
    """``FrameStats`` of a window ``x [B, M, T, C, H, W]`` whose states ``live`` (an index
    slice of T; None: all) are the only ones a gradient is wanted for: the others are
    treated as constants (detached)."""
    states = x.shape[TIME_DIM]
    start, stop = live_span(live, states)
    if (start, stop) == (0, states):
        return frame_stats(Frames(x))
    bounds = sorted({0, start, stop, states})
    frames, parts = [], []
    for lo, hi in pairwise(bounds):
        piece = x.narrow(TIME_DIM, lo, hi - lo)
        fr = Frames(piece if (lo, hi) == (start, stop) else piece.detach())
        frames.append(fr)
        parts.append(frame_stats(fr))
    bridges = [flow_dots(torch.cat([a.spectrum.narrow(TIME_DIM, a.x.shape[TIME_DIM] - 1, 1),
                                    b.spectrum.narrow(TIME_DIM, 0, 1)], dim=TIME_DIM),
                         a.shape)
               for a, b in pairwise(frames)]
    return _join(parts, bridges)
