"""Feature values: per-sample independence, known answers, units, and input checks."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from noa_core.features.extract import FeatureExtractor, Features, feature_window, tokenizer_input
from noa_core.features.order_stats import quantiles
from noa_core.features.schema import feature_schema


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These tensors are tiny: one thread avoids OpenMP overhead on shared CI cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _window(b: int = 3, m: int = 2, h: int = 6, c: int = 3, grid: int = 16,
            seed: int = 0) -> torch.Tensor:
    return torch.randn(b, m, h + 1, c, grid, grid, generator=torch.Generator().manual_seed(seed))


def _column(f: Features, schema_h: int, family: str, name: str) -> torch.Tensor:
    schema = feature_schema(schema_h)
    names = {"initial": schema.initial, "temporal": schema.temporal,
             "summary_per_realization": schema.summary}[family]
    return getattr(f, family)[..., names.index(name)]


def test_batched_equals_per_sample() -> None:
    schema = feature_schema(6)
    w = _window(b=4)
    w = w * torch.tensor([1.0, 10.0, 0.01, 3.0])[:, None, None, None, None, None]  # mixed scales
    ex = FeatureExtractor(schema)
    batched = tokenizer_input(ex(w))
    single = torch.cat([tokenizer_input(ex(w[i:i + 1])) for i in range(len(w))])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


def test_tokenizer_input_layout_follows_the_schema() -> None:
    schema = feature_schema(6)
    f = FeatureExtractor(schema)(_window())
    x = tokenizer_input(f)
    sl = schema.tokenizer_input_slices()
    assert x.shape[1] == schema.tokenizer_input_dim == len(schema.tokenizer_input_names)
    torch.testing.assert_close(x[:, sl["initial"]], f.initial)
    torch.testing.assert_close(x[:, sl["summary"]], f.summary)
    torch.testing.assert_close(x[:, sl["temporal"]][:, :schema.temporal_dim], f.temporal.mean(1))
    assert f.initial.shape == (3, 14)
    assert f.temporal.shape == (3, 7, schema.temporal_dim)
    assert f.summary_per_realization.shape == (3, 2, schema.summary_dim)
    assert f.summary.shape == (3, 3 * schema.summary_dim)
    # mean | std | cv over realizations, agg-major.
    d = schema.summary_dim
    torch.testing.assert_close(f.summary[:, :d], f.summary_per_realization.mean(1))


def test_spatial_statistics_match_torch() -> None:
    schema = feature_schema(2)
    w = _window(b=2, m=1, h=2, c=1)
    f = FeatureExtractor(schema)(w)
    x = w[:, 0, :, 0].flatten(-2)                                      # [B, T, N]
    for name, ref in (("spatial_mean", x.mean(-1)), ("spatial_std", x.std(-1, correction=0)),
                      ("spatial_p50", x.quantile(0.5, dim=-1)),
                      ("spatial_min", x.amin(-1)), ("spatial_max", x.amax(-1)),
                      ("spatial_iqr", x.quantile(0.75, dim=-1) - x.quantile(0.25, dim=-1))):
        torch.testing.assert_close(_column(f, 2, "temporal", name), ref, rtol=1e-4, atol=1e-5)


def _plane_wave(cycles: int, grid: int = 32) -> torch.Tensor:
    j = torch.arange(grid, dtype=torch.float32)
    return torch.cos(2 * math.pi * cycles * j / grid)[None, :].expand(grid, grid)


@pytest.mark.parametrize(("cycles", "band"), [(2, 0), (3, 1), (6, 2), (12, 3)])
def test_spectral_frequencies_are_in_cycles_per_pixel(cycles: int, band: int) -> None:
    # k cycles across a 32-pixel grid is k/32 cycles per pixel; the octave bands are
    # (0, 1/16], (1/16, 1/8], (1/8, 1/4], (1/4, 1/2], (1/2, √2/2].
    wave = _plane_wave(cycles)
    w = wave.expand(1, 1, 3, 1, 32, 32).clone()
    f = FeatureExtractor(feature_schema(2))(w)
    bands = torch.stack([_column(f, 2, "temporal", f"spectral_band_{k}") for k in range(5)], -1)
    assert torch.argmax(bands[0, 0]).item() == band
    assert bands[0, 0, band].item() == pytest.approx(1.0, abs=1e-4)
    for name in ("spectral_centroid", "spectral_dominant_freq"):
        assert _column(f, 2, "temporal", name)[0, 0].item() == pytest.approx(cycles / 32, rel=1e-3)
    assert _column(f, 2, "temporal", "spectral_bandwidth")[0, 0].item() < 1e-3
    # INITIAL: the radial peak bin is the wavenumber over the number of bins (grid / 2).
    peak = f.initial[0, feature_schema(2).initial.index("ic_spectral_peak_bin")].item()
    assert peak == pytest.approx(cycles / 16, rel=1e-3)


def test_cross_channel_of_identical_and_single_channels() -> None:
    schema = feature_schema(2)
    base = _window(b=1, m=1, h=2, c=1)
    same = FeatureExtractor(schema)(base.expand(1, 1, 3, 3, 16, 16).clone())
    expect = {"cross_corr_mean": 1.0, "cross_corr_min": 1.0, "cross_corr_std": 0.0,
              "cross_top_eigenvalue": 3.0, "cross_participation": 1.0}
    for name, value in expect.items():
        got = _column(same, 2, "temporal", name)
        torch.testing.assert_close(got, torch.full_like(got, value), rtol=1e-4, atol=1e-4)
    one = FeatureExtractor(schema)(base)
    for name, value in {"cross_corr_mean": 1.0, "cross_top_eigenvalue": 1.0,
                        "cross_participation": 1.0}.items():
        got = _column(one, 2, "temporal", name)
        torch.testing.assert_close(got, torch.full_like(got, value))
    # Independent channels: correlations near 0, participation near C.
    ind = FeatureExtractor(schema)(_window(b=1, m=1, h=2, c=3, grid=32))
    assert _column(ind, 2, "temporal", "cross_corr_mean").abs().max() < 0.15
    assert _column(ind, 2, "temporal", "cross_participation").min() > 2.7


def test_energy_growth_and_drift_of_an_exponential_trajectory() -> None:
    h = 8
    rate = 0.05
    t = torch.arange(h + 1, dtype=torch.float32)
    base = _window(b=1, m=2, h=0, c=2)
    w = base * torch.exp(rate * t)[None, None, :, None, None, None]
    f = FeatureExtractor(feature_schema(h))(w)
    growth = _column(f, h, "summary_per_realization", "energy_growth_rate")
    torch.testing.assert_close(growth, torch.full_like(growth, 2 * rate), rtol=1e-3, atol=1e-4)
    mono = _column(f, h, "summary_per_realization", "drift_raw_l2_monotonicity")
    assert (mono > 0.99).all()
    ratio = _column(f, h, "summary_per_realization", "drift_raw_l1_log_ratio")
    torch.testing.assert_close(ratio, torch.full_like(ratio, rate * h), rtol=1e-2, atol=1e-3)
    # Scale-free: the same trajectory times 1e6 has the same SUMMARY.
    f6 = FeatureExtractor(feature_schema(h))(w * 1e6)
    torch.testing.assert_close(f6.summary_per_realization, f.summary_per_realization,
                               rtol=1e-3, atol=1e-3)


def test_initial_features_of_simple_fields() -> None:
    g = 32
    yy, xx = torch.meshgrid(torch.arange(g) - (g - 1) / 2, torch.arange(g) - (g - 1) / 2,
                            indexing="ij")
    blob = torch.exp(-(xx ** 2 + yy ** 2) / (2 * 4.0 ** 2))
    names = feature_schema(2).initial
    f = FeatureExtractor(feature_schema(2)).initial(blob.expand(1, 2, g, g))
    assert f[0, names.index("ic_rotation_symmetry")].item() == pytest.approx(1.0, abs=1e-3)
    assert f[0, names.index("ic_centroid_distance")].item() < 0.02
    assert f[0, names.index("ic_morans_i")].item() > 0.9           # smooth: strongly correlated
    white = _window(b=1, m=1, h=0, c=1, grid=g)[:, 0, 0]
    noise = FeatureExtractor(feature_schema(2)).initial(white)
    assert abs(noise[0, names.index("ic_morans_i")].item()) < 0.1
    assert noise[0, names.index("ic_entropy")].item() > 0.7


def test_window_length_and_shape_are_checked() -> None:
    ex = FeatureExtractor(feature_schema(6))
    with pytest.raises(ValueError, match=r"holds 5 states, expected H \+ 1 = 7"):
        ex(_window(h=4))
    with pytest.raises(ValueError, match="6 dims"):
        ex(_window()[0])


def test_feature_window_cuts_context_and_horizon() -> None:
    traj = torch.arange(10, dtype=torch.float32)[None, None, :, None, None, None].expand(
        2, 1, 10, 1, 4, 4)
    w = feature_window(traj, context=2, horizon=5)
    assert w.shape[2] == 6 and w[0, 0, 0, 0, 0, 0] == 2 and w[0, 0, -1, 0, 0, 0] == 7
    assert feature_window(traj[0], context=0, horizon=9).shape[1] == 10
    with pytest.raises(ValueError, match=r"hold 10 states.*needs context 4 \+ horizon 6"):
        feature_window(traj, context=4, horizon=6)


def test_half_precision_and_double_inputs() -> None:
    schema = feature_schema(2)
    w = _window(b=1, m=1, h=2, c=2)
    f16 = FeatureExtractor(schema)(w.half())
    assert f16.summary.dtype == torch.float32 and torch.isfinite(f16.summary).all()
    f64 = FeatureExtractor(schema)(w.double())
    assert f64.summary.dtype == torch.float64
    torch.testing.assert_close(f64.summary.float(), FeatureExtractor(schema)(w).summary,
                               rtol=1e-3, atol=1e-3)


def test_gradients_match_finite_differences() -> None:
    schema = feature_schema(3)
    w = _window(b=1, m=2, h=3, c=2, grid=8).double().requires_grad_(True)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return tokenizer_input(FeatureExtractor(schema)(x))

    assert torch.autograd.gradcheck(fn, (w,), fast_mode=True, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_quantiles_match_torch_quantile_with_gradients(dtype: torch.dtype) -> None:
    # float16 on CPU takes the torch.sort path (the one used on accelerators).
    levels = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0, 1 / 32, 31 / 32)
    x = torch.randn(4, 3, 33, generator=torch.Generator().manual_seed(2)).to(dtype)
    x.requires_grad_(True)
    ours = quantiles(x, levels)
    ref = torch.quantile(x.double(), torch.tensor(levels, dtype=torch.float64), dim=-1)
    torch.testing.assert_close(ours.double(), ref.movedim(0, -1), rtol=1e-3, atol=1e-3)
    w = torch.randn(ours.shape, generator=torch.Generator().manual_seed(3))
    (g,) = torch.autograd.grad((ours.double() * w).sum(), x)
    xd = x.detach().double().requires_grad_(True)
    ref = torch.quantile(xd, torch.tensor(levels, dtype=torch.float64), dim=-1).movedim(0, -1)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), xd)
    torch.testing.assert_close(g.double(), g_ref, rtol=1e-3, atol=1e-3)
