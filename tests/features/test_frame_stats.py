"""The frame stage in time parts: features of a window whose gradient is wanted in a slice."""

from __future__ import annotations

import pytest
import torch

from noa_core.features.extract import FeatureExtractor
from noa_core.features.frame_stats import live_span, window_stats
from noa_core.features.schema import feature_schema

H = 12  # horizon: 13 states


def _window(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """[B 2, M 2, 13, C 3, 16, 16]: drifting, advected, channel-coupled fields."""
    g = torch.Generator().manual_seed(5)
    base = torch.randn(2, 2, 1, 3, 16, 16, generator=g, dtype=torch.float64)
    steps = torch.randn(2, 2, H + 1, 3, 16, 16, generator=g, dtype=torch.float64)
    shifted = torch.stack([base.roll(t, dims=-1)[:, :, 0] for t in range(H + 1)], dim=2)
    return (shifted + 0.3 * steps.cumsum(2) + 0.5).to(dtype)


def _flat(extractor: FeatureExtractor, x: torch.Tensor, live: slice | None) -> torch.Tensor:
    f = extractor(x, live=live)
    return torch.cat([f.initial, f.temporal.flatten(1), f.summary_per_realization.flatten(1),
                      f.summary], dim=1)


LIVES = [slice(9, 13), slice(1, 5), slice(4, 8), slice(0, 3), slice(12, 13), slice(6, 7),
         slice(0, 13)]


@pytest.mark.parametrize("live", LIVES, ids=str)
def test_a_live_slice_gives_the_whole_windows_values_and_its_gradient_there(live: slice
                                                                             ) -> None:
    """Same features; the gradient on the live states equals the whole window's, and is 0
    elsewhere (float64, so only the parts' summation order may differ)."""
    ex = FeatureExtractor(feature_schema(H))
    x = _window()
    weights = torch.randn(_flat(ex, x, None).shape, generator=torch.Generator().manual_seed(2),
                          dtype=x.dtype)

    def run(lv: slice | None) -> tuple[torch.Tensor, torch.Tensor]:
        leaf = x.clone().requires_grad_()
        v = _flat(ex, leaf, lv)
        (v * weights).sum().backward()
        return v.detach(), leaf.grad

    full, g_full = run(None)
    part, g_part = run(live)
    torch.testing.assert_close(part, full, rtol=1e-12, atol=1e-12)
    inside = torch.zeros(H + 1, dtype=torch.bool)
    inside[live] = True
    torch.testing.assert_close(g_part[:, :, inside], g_full[:, :, inside], rtol=1e-10,
                               atol=1e-12)
    assert not g_part[:, :, ~inside].any()
    assert g_part[:, :, inside].abs().amax() > 0


def test_float32_split_matches_the_whole_window() -> None:
    ex = FeatureExtractor(feature_schema(H))
    x = _window(torch.float32)
    torch.testing.assert_close(_flat(ex, x, slice(9, 13)), _flat(ex, x, None),
                               rtol=1e-5, atol=1e-6)


def test_the_constant_states_keep_no_graph() -> None:
    """The point of the split: only the live states' frame stage is recorded for backward."""
    x = _window().requires_grad_()
    stats = window_stats(x, slice(5, 7))
    # Every per-state quantity's gradient is zero outside states 5 and 6, the flow's too (its
    # pairs 4→5 and 6→7 have a constant end).
    per_state = stats.mean.sum() + stats.norms.sum() + stats.temporal.sum()
    (g,) = torch.autograd.grad(per_state, x, retain_graph=True)
    assert g[:, :, 5:7].abs().amax() > 0 and not g[:, :, :5].any() and not g[:, :, 7:].any()
    (g,) = torch.autograd.grad(stats.flow.sum(), x)
    assert g[:, :, 5:7].abs().amax() > 0 and not g[:, :, :5].any() and not g[:, :, 7:].any()
    assert stats.flow.shape[2] == H
    assert window_stats(x.detach(), slice(5, 7)).mean.grad_fn is None
    assert window_stats(x, slice(4, 4)).mean.grad_fn is None  # nothing live


def test_live_span_reads_python_slices_and_refuses_steps() -> None:
    assert live_span(None, 13) == (0, 13)
    assert live_span(slice(9, None), 13) == (9, 13)
    assert live_span(slice(-4, None), 13) == (9, 13)
    assert live_span(slice(5, 2), 13) == (5, 5)
    with pytest.raises(ValueError, match="contiguous"):
        live_span(slice(0, 13, 2), 13)
    with pytest.raises(TypeError, match="slice"):
        live_span(range(9, 13), 13)  # type: ignore[arg-type]
