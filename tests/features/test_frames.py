"""Frames: the periodic central differences and their hand-written backward."""

from __future__ import annotations

import pytest
import torch

from noa_core.features.frames import CentralDifferences, Frames, central_differences


@pytest.mark.parametrize("shape", [(2, 3, 8, 12), (5, 7), (1, 2, 3, 4, 6, 5)])
def test_central_differences_match_rolled_differences(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gx, gy = central_differences(x)
    torch.testing.assert_close(gx, (x.roll(-1, -1) - x.roll(1, -1)) / 2, rtol=0, atol=1e-15)
    torch.testing.assert_close(gy, (x.roll(-1, -2) - x.roll(1, -2)) / 2, rtol=0, atol=1e-15)


@pytest.mark.parametrize("shape", [(2, 3, 8, 12), (3, 5, 7)])
def test_central_differences_backward_is_the_adjoint(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64,
                    requires_grad=True)
    assert torch.autograd.gradcheck(CentralDifferences.apply, (x,))
    assert torch.autograd.gradgradcheck(CentralDifferences.apply, (x,))


def test_one_used_difference_gets_its_own_gradient() -> None:
    # Only ∂x feeds the loss: the gradient is that of ∂x alone (the unused ∂y's grad is zero).
    x = torch.randn(4, 6, 10, generator=torch.Generator().manual_seed(2), requires_grad=True)
    w = torch.randn(4, 6, 10, generator=torch.Generator().manual_seed(3))
    (g,) = torch.autograd.grad((Frames(x).grad[0] * w).sum(), x)
    xr = x.detach().requires_grad_(True)
    (g_ref,) = torch.autograd.grad((((xr.roll(-1, -1) - xr.roll(1, -1)) / 2) * w).sum(), xr)
    torch.testing.assert_close(g, g_ref)
