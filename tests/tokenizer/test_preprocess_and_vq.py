"""Tokenizer internals on synthetic features: cleaning, categories, EMA quantisation."""

from __future__ import annotations

import numpy as np
import torch

from noa_core.config import CleaningConfig, VQConfig
from noa_core.tokenizer.metrics import codebook_metrics, topographic_correlation
from noa_core.tokenizer.preprocess import Preprocessor, fit_preprocessing
from noa_core.tokenizer.quantizer import EMAQuantizer
from noa_core.tokenizer.vqvae import CategoricalVQVAE, codebook_sizes, level_dims


def _correlated_blocks(n: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Three groups of 4 columns driven by one latent each, a constant and a duplicate column."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    cols, names = [], []
    for g in range(3):
        for j in range(4):
            cols.append(latent[:, g] * (1 + 0.2 * j) + 0.3 * rng.standard_normal(n))
            names.append(f"g{g}_{j}")
    cols.append(np.full(n, 3.0))
    names.append("const")
    cols.append(cols[0] * 2.0 + 1.0)
    names.append("dup_of_g0_0")
    return np.stack(cols, 1), names


def test_cleaning_drops_constant_and_duplicate_and_finds_the_groups() -> None:
    x, names = _correlated_blocks(400)
    fit = fit_preprocessing(x, names, CleaningConfig(), VQConfig(max_categories=6))
    assert fit.dropped == {"const": "constant on the train split",
                           "dup_of_g0_0": "duplicates g0_0 (|r| > 0.99)"}
    groups = [sorted(names[fit.kept[p]][:2] for p in cat) for cat in fit.categories]
    assert sorted(groups) == [["g0"] * 4, ["g1"] * 4, ["g2"] * 4]
    assert fit.silhouette > 0.3


def test_preprocessor_uses_saved_statistics_not_the_batch() -> None:
    x, names = _correlated_blocks(200)
    fit = fit_preprocessing(x, names, CleaningConfig(), VQConfig(max_categories=6))
    pre = Preprocessor(fit)
    full = pre(torch.as_tensor(x, dtype=torch.float32))
    one = pre(torch.as_tensor(x[:1], dtype=torch.float32))
    assert torch.allclose(full[:1], one)
    # NaN → train median; huge values → clipped to the train percentile range.
    bad = torch.as_tensor(x[:1], dtype=torch.float32).clone()
    bad[0, 0], bad[0, 1] = float("nan"), 1e9
    out = pre(bad)
    assert torch.isfinite(out).all() and float(out.abs().max()) < 10


def test_codebook_rule_and_level_dims() -> None:
    assert codebook_sizes(5, 64) == (16, 8, 6)
    assert codebook_sizes(18, 64) == (28, 14, 7)
    assert codebook_sizes(18, 16) == (16, 14, 7)
    assert level_dims(18, (0.5, 1.0, 1.5)) == (12, 20, 28)


def test_ema_quantizer_learns_clusters_and_passes_gradients() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0], [0.0, -3.0]])
    z = centres[torch.randint(4, (512,), generator=gen)] + 0.1 * torch.randn(512, 2, generator=gen)
    q = EMAQuantizer(4, 2, decay=0.9)
    q.init_from(z, gen)
    for _ in range(50):
        q(z)
        q.reset_dead(z, 0.05, gen)
    q.eval()
    zq, codes, _ = q(z)
    assert len(torch.unique(codes)) == 4
    assert float((zq - z).pow(2).mean()) < 0.05
    w = z.clone().requires_grad_(True)
    zq, _, commit = q(w)
    (zq.sum() + commit).backward()
    assert torch.isfinite(w.grad).all() and float(w.grad.abs().sum()) > 0


def test_vqvae_tokens_are_category_major_and_metrics_are_fractions() -> None:
    torch.manual_seed(0)
    model = CategoricalVQVAE([4, 5], VQConfig(max_codebook_size=8))
    x = torch.randn(64, 9)
    gen = torch.Generator().manual_seed(0)
    for z, q in zip(model.encode(x), model.quantizers, strict=True):
        q.init_from(z, gen)
    out = model(x)
    assert out.codes.shape == (64, 6) and out.x_hat.shape == (64, 9)
    m = codebook_metrics(out.codes, model.codebook_sizes)
    assert 0 < m["utilization"] <= 1 and 1 <= m["perplexity"] <= max(model.codebook_sizes)
    assert topographic_correlation(x, x * 2 + 1) > 0.999


def test_row_independent_encode_and_decode_do_not_depend_on_the_batch() -> None:
    """A row's latents, reconstruction and input gradient are bitwise those of the row alone
    (what a DDP rank's share of the batch needs), and equal the batched GEMMs' to rounding."""
    torch.manual_seed(0)
    model = CategoricalVQVAE([40, 60], VQConfig(max_codebook_size=8)).requires_grad_(False)
    x = torch.randn(16, 100)

    def run(rows: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        rows = rows.clone().requires_grad_()
        z = model.encode(rows, row_independent=True)
        x_hat = model.decode(z, row_independent=True)
        (sum(v.square().sum() for v in z) + x_hat.square().sum()).backward()
        return z, x_hat, rows.grad

    z_all, x_hat_all, grad_all = run(x)
    for i in (0, 7, 15):
        z_one, x_hat_one, grad_one = run(x[i:i + 1])
        assert all(torch.equal(a[i:i + 1], b) for a, b in zip(z_all, z_one, strict=True))
        assert torch.equal(x_hat_all[i:i + 1], x_hat_one)
        assert torch.equal(grad_all[i:i + 1], grad_one)
    batched = model.encode(x)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(z_all, batched, strict=True))
    assert torch.allclose(x_hat_all, model.decode(batched), atol=1e-5)
