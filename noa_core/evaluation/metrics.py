"""The Phase 1 success metrics and monitors as pure functions of arrays (numpy, float64).

Notation: N test operators, Q codebooks (category-major, as the tokenizer orders them), K_q codes
in codebook q, d_q its code width; T = H scored steps (the states after the start state);
[C, Hg, Wg] one field.

Per-sample functions return one value per operator, so the headline value is their mean and the
bootstrap resamples operators (``noa_core.evaluation.bootstrap``). Set-level statistics
(entropy ratio, utilization, ARI) are functions of the whole sample set and are recomputed per
resample instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# --- rollout fidelity -----------------------------------------------------------------------


def step_mse(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Squared error per operator and step: ``e[i, t] = mean_{c,y,x} (pred − target)²``.

    pred, target: [N, T, C, Hg, Wg] (the scored states, start state excluded) → [N, T].
    The rollout fidelity of the gate is ``mean_{i,t} e[i, t]`` with target = the mean of the M
    ground-truth realizations (ARCHITECTURE.md, *rollout fidelity*).
    """
    if pred.shape != target.shape or pred.ndim != 5:
        raise ValueError(f"pred {pred.shape} and target {target.shape} must both be "
                         "[N, T, C, H, W]")
    diff = pred.astype(np.float64) - target.astype(np.float64)
    return (diff * diff).reshape(*diff.shape[:2], -1).mean(-1)


def target_variance(target: np.ndarray) -> np.ndarray:
    """Spread of each operator's target: ``v[i] = var_{t,c,y,x}(target[i])`` (population),
    [N, T, C, Hg, Wg] → [N]; the denominator of the normalised rollout error."""
    flat = target.astype(np.float64).reshape(target.shape[0], -1)
    return flat.var(axis=1)


def normalised_mse(per_sample_mse: np.ndarray, variance: np.ndarray) -> float | None:
    """``nMSE = Σ_i MSE_i / Σ_i v_i``: the fraction of the targets' spread left unexplained
    (0 perfect; 1 as bad as predicting each operator's space-time mean). None if Σ v_i = 0."""
    denom = float(np.sum(variance))
    return None if denom <= 0 else float(np.sum(per_sample_mse) / denom)


# --- codebook space -------------------------------------------------------------------------


def codebook_mse(zq_pred: Sequence[np.ndarray], zq_gt: Sequence[np.ndarray]) -> np.ndarray:
    """VQ reconstruction error per operator: ``e_i = (1/Q) Σ_q (1/d_q) ‖z_q^pred_i − z_q^gt_i‖²``.

    zq_pred, zq_gt: per codebook q the quantised latents (the chosen code vectors) [N, d_q]
    → [N]. Its mean over operators is the spec's MSE(pred_z_q, gt_z_q), averaged per codebook
    (never pooled across codebooks of different widths).
    """
    if len(zq_pred) != len(zq_gt) or not zq_pred:
        raise ValueError(f"expected the same non-zero number of codebooks, got {len(zq_pred)} "
                         f"and {len(zq_gt)}")
    per_q = [((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).mean(1)
             for a, b in zip(zq_pred, zq_gt, strict=True)]
    return np.mean(per_q, axis=0)


def token_agreement(tokens_pred: np.ndarray, tokens_gt: np.ndarray) -> np.ndarray:
    """Exact token agreement per operator: ``a_i = (1/Q) Σ_q [tok^pred_iq = tok^gt_iq]``,
    tokens [N, Q] → [N] in [0, 1]."""
    if tokens_pred.shape != tokens_gt.shape:
        raise ValueError(f"token arrays differ in shape: {tokens_pred.shape} vs "
                         f"{tokens_gt.shape}")
    return (tokens_pred == tokens_gt).mean(axis=1)


def token_counts(tokens: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    """Histogram of each codebook: ``counts[q][k] = #{i : tok_iq = k}``, tokens [N, Q]."""
    if tokens.ndim != 2 or tokens.shape[1] != len(sizes):
        raise ValueError(f"tokens must be [N, Q={len(sizes)}], got {tokens.shape}")
    return [np.bincount(tokens[:, q], minlength=k) for q, k in enumerate(sizes)]


def codebook_entropies(tokens: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Per-codebook entropy (nats) of the empirical token distribution over operators:
    ``H_q = −Σ_k p_qk log p_qk``, p_qk = counts[q][k] / N; tokens [N, Q] → [Q]."""
    out = []
    for counts in token_counts(tokens, sizes):
        p = counts[counts > 0] / max(1, counts.sum())
        out.append(float(-(p * np.log(p)).sum()))
    return np.asarray(out)


def entropy_ratio(tokens_pred: np.ndarray, tokens_gt: np.ndarray,
                  sizes: Sequence[int]) -> float | None:
    """Token distribution match: ``R = Σ_q H_q(pred) / Σ_q H_q(gt)`` (per codebook, never
    pooled). Both sums 0 (both constant): R = 1. Ground truth 0 but pred not: undefined (None).
    """
    h_pred = codebook_entropies(tokens_pred, sizes).sum()
    h_gt = codebook_entropies(tokens_gt, sizes).sum()
    if h_gt <= 0:
        return 1.0 if h_pred <= 0 else None
    return float(h_pred / h_gt)


def utilization(tokens: np.ndarray, sizes: Sequence[int]) -> float:
    """Codebook utilization: ``U = (1/Q) Σ_q |{tok_iq : i}| / K_q`` in [0, 1] (unique codes
    used over the sample set, as the tokenizer's trainer reports it)."""
    per = [np.count_nonzero(c) / k for c, k in zip(token_counts(tokens, sizes), sizes,
                                                   strict=True)]
    return float(np.mean(per))


# --- behavioural clustering -----------------------------------------------------------------


def _sq_dist(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] - 2 * x @ centres.T + (centres * centres).sum(1)[None]
    return np.maximum(d, 0.0)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each next centre drawn with probability ∝ D(x)²."""
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = _sq_dist(x, np.asarray(centres)).min(1)
        total = d.sum()
        idx = rng.integers(len(x)) if total <= 0 else rng.choice(len(x), p=d / total)
        centres.append(x[idx])
    return np.asarray(centres)


def _lloyd(x: np.ndarray, centres: np.ndarray, max_iter: int) -> tuple[np.ndarray, float]:
    labels = np.full(len(x), -1)
    for _ in range(max_iter):
        d = _sq_dist(x, centres)
        new = d.argmin(1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(len(centres)):
            members = x[labels == j]
            if len(members):
                centres[j] = members.mean(0)
            else:  # an empty cluster takes the point farthest from its centre
                far = int(d[np.arange(len(x)), labels].argmax())
                centres[j] = x[far]
                labels[far] = j
    inertia = float(_sq_dist(x, centres)[np.arange(len(x)), labels].sum())
    return labels, inertia


def kmeans(x: np.ndarray, k: int, seed: int, n_init: int = 10, max_iter: int = 300
           ) -> np.ndarray:
    """Seeded k-means labels [N] of points x [N, D]: minimise ``Σ_i ‖x_i − μ_{c(i)}‖²``.

    k-means++ initialisation from ``numpy.random.default_rng(seed)``, Lloyd iterations until
    the labels stop changing, the lowest inertia of ``n_init`` starts. Same inputs, same labels.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < k:
        raise ValueError(f"k-means with k = {k} needs at least k points [N, D], got {x.shape}")
    rng = np.random.default_rng(seed)
    best: tuple[np.ndarray, float] | None = None
    for _ in range(n_init):
        labels, inertia = _lloyd(x, _kmeans_pp(x, k, rng), max_iter)
        if best is None or inertia < best[1] - 1e-12:
            best = (labels, inertia)
    assert best is not None
    return best[0]


def contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Contingency table ``n[r, s] = #{i : a_i = r, b_i = s}`` over the labels present
    (rows: sorted unique labels of a; columns: of b)."""
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    return table


def _comb2(n: np.ndarray | float) -> np.ndarray | float:
    return n * (n - 1) / 2.0


def adjusted_rand_index(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labellings of the same N points (Hubert & Arabie):

    ``ARI = (Σ_rs C(n_rs) − E) / (½(Σ_r C(a_r) + Σ_s C(b_s)) − E)``, with C(n) = n(n−1)/2,
    a_r, b_s the row and column sums of the contingency table and
    E = Σ_r C(a_r)·Σ_s C(b_s) / C(N). 1 for identical partitions (up to relabelling), ≈ 0 for
    independent ones. When the denominator is 0 (both partitions trivial and equal: one
    cluster, or all singletons) the partitions agree and ARI = 1.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"label arrays must be 1-D of equal length, got {a.shape}, {b.shape}")
    n = len(a)
    if n < 2:
        return 1.0
    table = contingency(a, b).astype(np.float64)
    index = float(_comb2(table).sum())
    rows, cols = float(_comb2(table.sum(1)).sum()), float(_comb2(table.sum(0)).sum())
    expected = rows * cols / _comb2(float(n))
    maximum = 0.5 * (rows + cols)
    denom = maximum - expected
    if denom == 0:
        return 1.0
    return float((index - expected) / denom)


# --- monitors -------------------------------------------------------------------------------


def family_mse(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-operator MSE of a feature head against its family embedding: [N, dim] → [N]."""
    return ((np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2).mean(1)
