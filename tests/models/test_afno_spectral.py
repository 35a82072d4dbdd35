"""AFNO spectral path: negative k_y modes are kept; soft-shrink acts alike at every resolution."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from noa_core.models import afno
from noa_core.models.afno import SpectralFilter, place_modes, select_modes

C, BLOCKS, COND = 8, 2, 4


@pytest.fixture(autouse=True)
def _one_thread():  # small tensors: one thread is faster, and immune to a busy shared CPU
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)



def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, x) coordinates in [0, 1) on an n × n grid, [n, n] each."""
    y, x = torch.meshgrid(torch.arange(n) / n, torch.arange(n) / n, indexing="ij")
    return y, x


def _filter(modes: int, sparsity: float) -> SpectralFilter:
    torch.manual_seed(0)
    return SpectralFilter(C, BLOCKS, 1.0, modes, sparsity, COND)


def _diagonal_wave(n: int) -> torch.Tensor:
    """cos 2π(2x − 2y): in the half spectrum it lives only at (k_y = −2, k_x = 2). [1, C, n, n]"""
    y, x = _grid(n)
    return torch.cos(2 * math.pi * (2 * x - 2 * y)).expand(1, C, n, n).clone()


@torch.no_grad()
@pytest.mark.parametrize("fft", [False, True], ids=["dft-matrices", "fft"])
def test_a_negative_ky_mode_passes_and_a_positive_only_filter_drops_it(
        monkeypatch: pytest.MonkeyPatch, fft: bool) -> None:
    n, m = 16, 4
    field, cond = _diagonal_wave(n), torch.zeros(1, COND)
    spec = torch.fft.rfft2(field, norm="forward")
    assert spec[..., n - 2, 2].abs().min() > 0.4  # k_y = −2
    assert spec[..., 2, 2].abs().max() < 1e-6  # nothing at k_y = +2
    filt = _filter(m, 0.0)
    filt.fft = fft
    out = filt(field, cond)
    out_spec = torch.fft.rfft2(out, norm="forward").abs()
    assert out_spec[..., n - 2, 2].min() > 1e-3  # the mode went through the spectral MLP
    assert float(out_spec.sum()) == pytest.approx(float(out_spec[..., n - 2, 2].sum()), rel=1e-4)

    # The original's selection, the positive corner [:m, :m], loses it entirely (shown on the
    # FFT form, whose mode helpers it replaces; the DFT matrices equal that form, test below).
    filt.fft = True
    monkeypatch.setattr(afno, "select_modes", lambda s, k: s[..., :k, :k])
    monkeypatch.setattr(afno, "place_modes",
                        lambda s, h, wr, k: F.pad(s, (0, wr - k, 0, h - k)))
    dropped = filt(field, cond)
    assert dropped.abs().max() < 1e-6 < out.abs().max()


@pytest.mark.parametrize("h, w, modes", [(8, 8, 8), (16, 16, 4), (12, 10, 4), (9, 7, 3),
                                         (6, 6, 8)])
def test_the_dft_matrices_are_the_fft_form(h: int, w: int, modes: int) -> None:
    """Outputs and gradients of the two transform forms agree in float64: even and odd grids,
    truncated rows (2m < h, both signs of k_y), the Nyquist column, modes beyond the grid."""
    torch.manual_seed(0)
    filt = SpectralFilter(C, BLOCKS, 1.0, modes, 0.01, COND).double()
    torch.nn.init.normal_(filt.mod.weight, std=0.3)
    cond = torch.randn(3, COND, dtype=torch.float64)
    field = torch.randn(3, C, h, w, dtype=torch.float64)
    results = []
    for form in (False, True):
        filt.fft = form
        x = field.clone().requires_grad_(True)
        out = filt(x, cond)
        weights = [filt.w1, filt.w2, filt.mod.weight]
        grads = torch.autograd.grad((out * torch.cos(out)).sum(), [x, *weights])
        results.append((out.detach(), grads))
    (out_dft, grads_dft), (out_fft, grads_fft) = results
    assert out_fft.abs().max() > 1.0 and (out_fft == 0).float().mean() < 0.5
    # float64 rounding, relative to values of order 1 to 100 (a wrong term would be O(1)).
    for a, b in zip((out_dft, *grads_dft), (out_fft, *grads_fft), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_fft_transforms_switches_every_filter_and_restores_them() -> None:
    block = afno.AFNOBlock(C, num_blocks=BLOCKS, hidden_factor=1.0, modes=4, sparsity=0.0,
                           mlp_ratio=1.0, cond_dim=COND, dropout=0.0)
    with pytest.raises(RuntimeError), afno.fft_transforms(block):
        assert block.filter.fft
        raise RuntimeError("inside")
    assert not block.filter.fft


def test_select_and_place_modes_round_trip_both_signs() -> None:
    spec = torch.randn(2, 3, 16, 9)
    kept = select_modes(spec, 4)
    assert kept.shape == (2, 3, 8, 4)  # k_y ∈ {0..3, −4..−1}, k_x ∈ {0..3}
    back = place_modes(kept, 16, 9, 4)
    mask = torch.zeros(16, 9, dtype=torch.bool)
    mask[:4, :4] = mask[12:, :4] = True
    assert torch.equal(back, torch.where(mask, spec, torch.zeros(())))
    assert torch.equal(place_modes(select_modes(spec, 8), 16, 9, 8),
                       F.pad(spec[..., :8], (0, 1)))  # 2m ≥ h: every row kept


@torch.no_grad()
def test_soft_shrink_threshold_is_the_same_at_16_and_32() -> None:
    """The same band-limited function at 16² and 32² has the same kept modes after the MLP
    and soft-shrink (norm="forward"), and the same output function."""
    def field(n: int) -> torch.Tensor:
        y, x = _grid(n)
        f = (0.7 * torch.cos(2 * math.pi * (x + 2 * y)) + 0.3 * torch.sin(2 * math.pi * (3 * x - y))
             + 0.2)
        return torch.stack([f * (1 + 0.1 * c) for c in range(C)])[None]

    filt, cond = _filter(4, 0.05), torch.zeros(1, COND)
    per_grid = []
    for n in (16, 32):
        spec = torch.fft.rfft2(field(n), norm="forward")
        re = select_modes(spec.real, 4).permute(0, 2, 3, 1)
        im = select_modes(spec.imag, 4).permute(0, 2, 3, 1)
        per_grid.append((re, filt.filter_modes(re, im, cond)))
    (in16, (re16, im16)), (in32, (re32, im32)) = per_grid
    torch.testing.assert_close(in16, in32, atol=1e-6, rtol=0)
    torch.testing.assert_close(re16, re32, atol=1e-6, rtol=0)
    torch.testing.assert_close(im16, im32, atol=1e-6, rtol=0)
    shrunk = torch.cat([re16, im16]).flatten()
    assert (shrunk == 0).any() and (shrunk != 0).any()  # λ really acts, on some modes only
    out16, out32 = filt(field(16), cond), filt(field(32), cond)
    torch.testing.assert_close(out32[..., ::2, ::2], out16, atol=1e-5, rtol=0)
    # With norm="ortho" the coefficients would grow with the grid (×2 from 16² to 32²).
    o16 = torch.fft.rfft2(field(16), norm="ortho")[..., 2, 1].abs()
    o32 = torch.fft.rfft2(field(32), norm="ortho")[..., 2, 1].abs()
    torch.testing.assert_close(o32, 2 * o16, rtol=1e-4, atol=0)


@torch.no_grad()
def test_the_block_mlp_is_the_complex_mlp_it_stands_for() -> None:
    """``filter_modes`` against complex arithmetic written out here: per block, h = x·W1 + b1,
    the per-sample gain on both parts and a complex shift, ReLU on each part, then h·W2 + b2
    and soft-shrink on each part (float64, conditioning non-zero)."""
    torch.manual_seed(0)
    filt = SpectralFilter(C, BLOCKS, 1.5, 4, 0.05, COND).double()
    torch.nn.init.normal_(filt.mod.weight, std=0.3)
    torch.nn.init.normal_(filt.b1, std=0.3)
    torch.nn.init.normal_(filt.b2, std=0.3)
    g = torch.Generator().manual_seed(1)
    b, r, kx, n, blk, hid = 3, 4, 3, BLOCKS, C // BLOCKS, filt.hidden
    re, im = (torch.randn(b, r, kx, C, generator=g, dtype=torch.float64) for _ in range(2))
    cond = torch.randn(b, COND, generator=g, dtype=torch.float64)

    def cplx(w: torch.Tensor) -> torch.Tensor:
        return torch.complex(w[0], w[1])

    def parts(z: torch.Tensor, fn) -> torch.Tensor:  # a real map on each part
        return torch.complex(fn(z.real), fn(z.imag))

    x = torch.complex(re, im).view(b, r, kx, n, blk)
    mod = filt.mod(cond).view(b, 3, n, hid)[:, :, None, None]  # [B, 3, 1, 1, n, hid]
    h = torch.einsum("brknc,nco->brkno", x, cplx(filt.w1)) + cplx(filt.b1)
    h = torch.complex(h.real * (1 + mod[:, 0]) + mod[:, 1], h.imag * (1 + mod[:, 0]) + mod[:, 2])
    h = parts(h, F.relu)
    out = torch.einsum("brkno,noc->brknc", h, cplx(filt.w2)) + cplx(filt.b2)
    out = parts(out, lambda t: F.softshrink(t, 0.05)).reshape(b, r, kx, C)
    got_re, got_im = filt.filter_modes(re, im, cond)
    assert (out.real != 0).any() and (out.real == 0).any()  # soft-shrink acts on some only
    torch.testing.assert_close(got_re, out.real, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_im, out.imag, rtol=1e-12, atol=1e-12)
