"""noa_core.training.field_stats: the train split's statistics, batch by batch, equal those of
the whole split at once."""

from __future__ import annotations

import pytest
import torch

from noa_core.training.field_stats import ChannelMoments, field_stats


def _states(n: int = 7, seed: int = 0) -> torch.Tensor:
    """States [n, M, T, C, H, W] with a different mean and scale per channel."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 5, 3, 4, 4, generator=g).cumsum(2)  # increments ≠ states
    return x * torch.tensor([0.5, 2.0, 30.0])[:, None, None] + torch.tensor([-1.0, 0.0, 100.0]
                                                                            )[:, None, None]


def _whole(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The one-shot float64 reference: mean, std and increment std / std per channel."""
    per = x.transpose(0, 3).flatten(1).double()
    inc = (x[:, :, 1:] - x[:, :, :-1]).transpose(0, 3).flatten(1).double()
    std = per.std(1, correction=0)
    return per.mean(1), std, inc.std(1, correction=0) / std.float().double()


@pytest.mark.parametrize("batch", [1, 2, 3, 7])
def test_batch_by_batch_equals_the_whole_split(batch: int) -> None:
    x = _states()
    stats = field_stats(x[lo:lo + batch] for lo in range(0, len(x), batch))
    mean, std, inc = _whole(x)
    for got, want in ((stats.mean, mean), (stats.std, std), (stats.increment_std, inc)):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=0)
    # In float64 the pairwise update itself is exact to rounding.
    parts = [ChannelMoments.of(x[lo:lo + batch]) for lo in range(0, len(x), batch)]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    torch.testing.assert_close(total.mean, mean, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(total.std(), std, rtol=1e-13, atol=0)
    assert total.count == x[:, :, :, 0].numel()


def test_a_constant_channel_is_left_unscaled() -> None:
    x = _states()
    x[:, :, :, 1] = 4.0
    stats = field_stats([x[:3], x[3:]])
    assert stats.std[1] == 1.0 and stats.increment_std[1] == 1.0 and stats.mean[1] == 4.0
    assert bool((stats.std[[0, 2]] != 1.0).all())


def test_no_states_or_single_states_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one batch"):
        field_stats([])
    with pytest.raises(ValueError, match=r"shape \(2, 2, 1, 3, 4, 4\).*T ≥ 2"):
        field_stats([_states()[:2, :, :1]])
    with pytest.raises(ValueError, match=r"expected \[b, M, T, C, H, W\]"):
        field_stats([_states()[0]])
