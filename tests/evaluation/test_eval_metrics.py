"""Every metric, baseline and interval on constructed cases with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from noa_core.evaluation import baselines as B
from noa_core.evaluation import bootstrap as BS
from noa_core.evaluation import metrics as M
from noa_core.evaluation.criteria import Criteria
from noa_core.evaluation.evaluate import _Collected, compute_metrics, json_safe

SIZES = [4, 6, 3]


def _tokens(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, k, n) for k in SIZES], axis=1)


# --- rollout fidelity -----------------------------------------------------------------------


def test_step_mse_is_zero_for_identical_and_c_squared_for_an_offset() -> None:
    x = np.random.default_rng(0).normal(size=(3, 5, 2, 4, 4))
    assert np.array_equal(M.step_mse(x, x), np.zeros((3, 5)))
    np.testing.assert_allclose(M.step_mse(x + 0.3, x), np.full((3, 5), 0.09))


def test_normalised_mse_of_each_operators_mean_is_one() -> None:
    target = np.random.default_rng(1).normal(size=(4, 6, 2, 3, 3))
    pred = np.broadcast_to(target.mean(axis=(1, 2, 3, 4), keepdims=True), target.shape)
    per_sample = M.step_mse(pred, target).mean(1)
    assert M.normalised_mse(per_sample, M.target_variance(target)) == pytest.approx(1.0)
    assert M.normalised_mse(np.zeros(4), np.zeros(4)) is None


def test_a_model_returning_one_realization_scores_at_the_noise_floor() -> None:
    """Scored against the other M − 1 it is the noise floor exactly; against all M (the
    NOA's scale) it is ((M − 1)/M)² of it, per operator and step."""
    m = 3
    window = np.random.default_rng(2).normal(size=(5, m, 9, 2, 4, 4))
    r0, others = B.noise_floor_pair(window)
    floor = M.step_mse(r0, others)
    model = window[:, 0, 1:]  # the "model": ground-truth realization 0
    assert np.array_equal(M.step_mse(model, others), floor)
    vs_all = M.step_mse(model, window[:, :, 1:].mean(1))
    np.testing.assert_allclose(vs_all, ((m - 1) / m) ** 2 * floor, rtol=1e-10)
    with pytest.raises(ValueError, match="M ≥ 2"):
        B.noise_floor_pair(window[:, :1])


def test_persistence_and_theta_only_predictors() -> None:
    u = np.random.default_rng(3).normal(size=(3, 2, 4, 4)).astype(np.float32)
    pers = B.persistence(u, 4)
    assert pers.shape == (3, 4, 2, 4, 4) and np.array_equal(pers[:, 3], u)
    th = B.theta_only(u, 4, ["residual", "convex", "autoregressive"], alpha=0.5)
    assert np.array_equal(th[0], pers[0])
    np.testing.assert_allclose(th[1, 2], 0.125 * u[1], rtol=1e-6)  # 0.5^3
    assert not th[2].any()
    with pytest.raises(ValueError, match="policy"):
        B.theta_only(u[:1], 2, ["spiral"], 0.5)
    assert B.new_weight_seed(7) == B.new_weight_seed(7) != B.new_weight_seed(8) != 7


# --- codebook space -------------------------------------------------------------------------


def test_identical_tokens_give_error_zero_agreement_one_ratio_one() -> None:
    tok = _tokens(40, 0)
    codes = [np.random.default_rng(q).normal(size=(k, 5)) for q, k in enumerate(SIZES)]
    zq = [codes[q][tok[:, q]] for q in range(len(SIZES))]
    assert np.array_equal(M.codebook_mse(zq, zq), np.zeros(40))
    assert np.array_equal(M.token_agreement(tok, tok), np.ones(40))
    assert M.entropy_ratio(tok, tok, SIZES) == 1.0


def test_codebook_mse_averages_per_codebook_not_pooled() -> None:
    a = [np.zeros((2, 2)), np.zeros((2, 6))]
    b = [np.zeros((2, 2)), np.ones((2, 6))]
    np.testing.assert_allclose(M.codebook_mse(a, b), [0.5, 0.5])  # (0 + 1) / 2 per sample


def test_entropy_ratio_known_values() -> None:
    gt = np.array([[0], [1], [2], [3]])
    assert M.codebook_entropies(gt, [4])[0] == pytest.approx(np.log(4))
    relabelled = (gt + 1) % 4
    assert M.entropy_ratio(relabelled, gt, [4]) == pytest.approx(1.0)  # relabelling keeps H
    assert M.entropy_ratio(np.zeros_like(gt), gt, [4]) == 0.0  # a collapsed model
    half = np.array([[0], [0], [1], [1]])
    assert M.entropy_ratio(half, gt, [4]) == pytest.approx(np.log(2) / np.log(4))
    const = np.zeros_like(gt)
    assert M.entropy_ratio(const, const, [4]) == 1.0
    assert M.entropy_ratio(gt, const, [4]) is None


def test_utilization_counts_unique_codes_per_codebook() -> None:
    every = np.stack([np.arange(12) % k for k in SIZES], axis=1)
    assert M.utilization(every, SIZES) == 1.0
    one = np.zeros((12, 3), dtype=np.int64)
    assert M.utilization(one, SIZES) == pytest.approx(np.mean([1 / k for k in SIZES]))


# --- clustering -----------------------------------------------------------------------------


def test_ari_identical_relabelled_independent_and_a_hand_computed_case() -> None:
    rng = np.random.default_rng(4)
    a = rng.integers(0, 12, 3000)
    assert M.adjusted_rand_index(a, a) == 1.0
    perm = rng.permutation(12)
    assert M.adjusted_rand_index(a, perm[a]) == pytest.approx(1.0)
    b = rng.integers(0, 12, 3000)
    assert abs(M.adjusted_rand_index(a, b)) < 0.01
    # contingency [[2, 0, 0], [0, 1, 1]]: (1 − 1/3) / (3/2 − 1/3) = 4/7
    assert M.adjusted_rand_index(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2])) == \
        pytest.approx(4 / 7)
    assert M.adjusted_rand_index(np.zeros(5), np.zeros(5)) == 1.0


def test_ari_agrees_with_scikit_learn() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    for _ in range(5):
        a, b = rng.integers(0, 5, 60), rng.integers(0, 4, 60)
        b[:30] = a[:30]
        assert M.adjusted_rand_index(a, b) == pytest.approx(sk.adjusted_rand_score(a, b))


def test_kmeans_is_seeded_and_recovers_separated_blobs() -> None:
    rng = np.random.default_rng(6)
    centres = rng.normal(scale=20, size=(12, 8))
    truth = np.repeat(np.arange(12), 10)
    x = centres[truth] + rng.normal(scale=0.1, size=(120, 8))
    labels = M.kmeans(x, 12, seed=0)
    assert M.adjusted_rand_index(labels, truth) == 1.0
    assert np.array_equal(labels, M.kmeans(x, 12, seed=0))
    with pytest.raises(ValueError, match="at least k"):
        M.kmeans(x[:5], 12, seed=0)


def test_contingency_table() -> None:
    t = M.contingency(np.array([0, 0, 1, 1, 1]), np.array([5, 7, 7, 7, 5]))
    assert t.tolist() == [[1, 1], [1, 2]]


# --- bootstrap ------------------------------------------------------------------------------


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    x = np.random.default_rng(7).normal(size=50)
    idx = BS.bootstrap_indices(50, 500, seed=3)
    assert np.array_equal(idx, BS.bootstrap_indices(50, 500, seed=3))
    lo, hi = BS.mean_ci(x, idx, 0.95)
    assert lo < x.mean() < hi
    assert BS.mean_ci(np.full(50, 2.0), idx, 0.95) == [2.0, 2.0]
    assert BS.ratio_ci(2 * x ** 2, x ** 2, idx, 0.9) == pytest.approx([2.0, 2.0])
    assert BS.statistic_ci(lambda r: None, idx[:3], 0.9) is None


def test_a_subset_interval_brackets_the_subset_mean_only() -> None:
    """Per-policy intervals come from the same resamples: each one's mean over the members
    it drew. Two groups far apart give two disjoint intervals, each around its own mean."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0.0, 1.0, 40), rng.normal(10.0, 1.0, 10)])
    member = np.arange(50) >= 40
    idx = BS.bootstrap_indices(50, 500, seed=2)
    lo, hi = BS.subset_mean_ci(x, member, idx, 0.95)
    assert lo < x[member].mean() < hi and lo > 5
    lo0, hi0 = BS.subset_mean_ci(x, ~member, idx, 0.95)
    assert lo0 < x[~member].mean() < hi0 < 5
    assert BS.subset_mean_ci(x, np.zeros(50, bool), idx, 0.95) is None  # no member drawn


# --- assembly -------------------------------------------------------------------------------


def test_compute_metrics_on_a_perfect_model() -> None:
    """NOA tokens and latents equal to the ground truth's: error 0, ratio 1, ARI 1."""
    n, t = 24, 5
    rng = np.random.default_rng(8)
    tok = _tokens(n, 1)
    lat = rng.normal(size=(n, 6)) + 10 * rng.integers(0, 3, (n, 1))
    col = _Collected()
    target = rng.normal(size=(n, t))
    col.step["noa"] = [np.abs(target) * 0.1]
    col.step["persistence"] = [np.abs(target)]
    col.step["theta_only"] = [np.abs(target) * 0.5]
    col.step["noise_floor"] = [np.abs(target) * 0.01]
    col.step["noise_floor_vs_all"] = [np.abs(target) * 0.01 * 4 / 9]
    col.variance, col.zq_err, col.agree = [np.ones(n)], [np.zeros(n)], [np.ones(n)]
    col.tokens_pred, col.tokens_gt = [tok], [tok.copy()]
    col.latents_pred, col.latents_gt = [lat], [lat.copy()]
    col.heads = {f: [np.zeros(n)] for f in ("initial", "summary", "temporal")}
    crit = Criteria(min_samples=2, clustering={"k": 3, "n_init": 2, "max_iter": 50},
                    bootstrap={"resamples": 50, "level": 0.9})
    policies = np.array(["residual"] * 20 + ["convex"] * 4)
    m = compute_metrics(col, policies, SIZES, crit, None)
    assert m["vq_recon_error"]["value"] == 0.0
    assert m["token_agreement"]["value"] == 1.0
    assert m["token_entropy_ratio"]["value"] == 1.0
    assert m["cluster_ari"]["value"] == 1.0
    assert m["codebook_utilization"]["value"] == m["codebook_utilization"]["ground_truth"]
    assert m["skill_vs_persistence"]["value"] == pytest.approx(0.1)
    assert m["skill_vs_theta_only"]["value"] == pytest.approx(0.2)
    assert m["rollout_mse"]["by_policy"]["convex"]["n"] == 4
    assert m["new_weights"]["value"] is None and "disabled" in m["new_weights"]["reason"]
    for key in ("rollout_mse", "vq_recon_error", "token_entropy_ratio", "cluster_ari"):
        assert m[key]["n"] == n and m[key]["ci"] is not None and m[key]["formula"]


def test_a_nonfinite_rollout_is_reported_not_averaged() -> None:
    col = _Collected()
    steps = np.ones((4, 3))
    steps[1, 2] = np.inf
    col.step["noa"] = [steps]
    for k in ("persistence", "theta_only"):
        col.step[k] = [np.ones((4, 3))]
    col.variance, col.zq_err, col.agree = [np.ones(4)], [np.zeros(4)], [np.ones(4)]
    col.tokens_pred = col.tokens_gt = [_tokens(4, 2)]
    col.latents_pred, col.latents_gt = [np.full((4, 4), np.nan)], [np.eye(4)]
    col.heads = {f: [np.array([0.0, np.nan, 0.0, 0.0])] for f in ("initial", "summary",
                                                                   "temporal")}
    crit = Criteria(min_samples=1, clustering={"k": 2, "n_init": 1, "max_iter": 10},
                    bootstrap={"resamples": 20, "level": 0.9})
    m = compute_metrics(col, np.array(["residual"] * 4), SIZES, crit, None)
    assert m["rollout_mse"]["value"] is None
    assert "non-finite on 1 of 4" in m["rollout_mse"]["reason"]
    assert m["skill_vs_persistence"]["value"] is None
    assert m["cluster_ari"]["value"] is None and "non-finite" in m["cluster_ari"]["reason"]
    safe = json_safe(m)  # what metrics.json receives: strict JSON, nothing lost but NaN
    assert safe["heads_mse"]["per_family"]["initial"] is None
    json.dumps(safe, allow_nan=False)
