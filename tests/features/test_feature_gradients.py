"""Gradients flow from every feature column back to the trajectory, and nothing is NaN/Inf."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from noa_core.features.coverage import gradient_coverage
from noa_core.features.extract import FeatureExtractor, tokenizer_input
from noa_core.features.schema import feature_schema, structurally_flat

MIN_COVERAGE = 0.95


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These tensors are tiny: one thread avoids OpenMP overhead on shared CI cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _window(b: int = 2, m: int = 3, h: int = 8, c: int = 3, grid: int = 16,
            seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    # A random field plus a slow drift, so the trajectory is not white noise in time.
    x = torch.randn(b, m, h + 1, c, grid, grid, generator=gen)
    t = torch.linspace(0.0, 1.0, h + 1)[None, None, :, None, None, None]
    return x + 0.5 * t * torch.randn(b, m, 1, c, grid, grid, generator=gen)


def test_gradient_coverage_per_family_on_a_random_trajectory() -> None:
    schema = feature_schema(6)
    report = gradient_coverage(schema, _window(b=1, m=3, h=6, c=3))
    print("gradient coverage:", {k: round(v["fraction"], 3) for k, v in report["families"].items()},
          "uncovered:", report["uncovered"])
    assert not report["nonfinite"]
    for family, stats in report["families"].items():
        assert stats["fraction"] >= MIN_COVERAGE, (family, stats, report["uncovered"])
    # Every column without a gradient is one the schema declares structurally flat.
    assert "unexpected" not in report["uncovered"].values(), report["uncovered"]


@pytest.mark.parametrize("shape", [dict(c=1), dict(c=2), dict(m=1), dict(h=2), dict(h=1)])
def test_columns_without_gradient_are_declared_flat(shape: dict[str, int]) -> None:
    shape = {"b": 1, "m": 2, "h": 4, **shape}
    schema = feature_schema(shape["h"])
    report = gradient_coverage(schema, _window(**shape))
    assert not report["nonfinite"]
    assert "unexpected" not in report["uncovered"].values(), report["uncovered"]


def test_single_channel_flat_list_names_the_cross_channel_columns() -> None:
    flat = structurally_flat(feature_schema(8), channels=1, realizations=3)
    assert "temporal_mean:cross_corr_mean" in flat and "mean:lag_asymmetry_max" in flat
    assert "temporal_mean:spatial_std" not in flat


def _fields(kind: str, **shape: int) -> torch.Tensor:
    w = _window(**shape)
    if kind == "zeros":
        return torch.zeros_like(w)
    if kind == "constant":
        return torch.full_like(w, 3.25)
    if kind == "huge":
        return 1e6 * w
    if kind == "huge_offset":
        return 1e6 + w
    return w


CASES = [
    ("zeros", {}), ("constant", {}), ("huge", {}), ("huge_offset", {}),
    ("random", {"m": 1}), ("random", {"c": 1}), ("random", {"h": 2}), ("random", {"h": 1}),
    ("zeros", {"m": 1, "c": 1, "h": 2}), ("constant", {"m": 1, "c": 1, "h": 1}),
    ("random", {"grid": 8}), ("random", {"grid": 12}),
]


@pytest.mark.parametrize(("kind", "shape"), CASES)
def test_values_and_gradients_are_finite(kind: str, shape: dict[str, int]) -> None:
    schema = feature_schema(shape.get("h", 8))
    w = _fields(kind, b=2, **shape).requires_grad_(True)
    feats = FeatureExtractor(schema)(w)
    for name in ("initial", "temporal", "summary_per_realization", "summary"):
        assert torch.isfinite(getattr(feats, name)).all(), (kind, shape, name)
    x = tokenizer_input(feats)
    assert x.shape == (2, schema.tokenizer_input_dim)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    (grad,) = torch.autograd.grad((x * weights).sum(), w)
    assert torch.isfinite(grad).all(), (kind, shape)


def test_single_realization_gives_zero_spread() -> None:
    schema = feature_schema(8)
    feats = FeatureExtractor(schema)(_window(m=1))
    d = schema.summary_dim
    assert torch.equal(feats.summary[:, d:], torch.zeros_like(feats.summary[:, d:]))
    assert torch.allclose(feats.summary[:, :d], feats.summary_per_realization[:, 0])
