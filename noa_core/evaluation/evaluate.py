"""Stage ``noa evaluate``: the five Phase 1 criteria, baselines and skill on the test split.

For each test operator (θ, its ground-truth window of H + 1 states from state K with all M
realizations):

1. the NOA rolls out deterministically (no noise) for H steps from u_start = realization 0's
   state K (K = ``training.context`` unless overridden; the window is [0, H] for K = 0, as in
   training and validation), given realization 0's observed states u_0 … u_K as its context;
   every baseline starts from the same u_K and is scored on the same steps K + 1 … K + H.
   With ``ablate_context`` it also rolls out with the context of another operator (a seeded
   derangement of the test operators) to measure what the context contributes;
2. the same feature pipeline gives features of the NOA rollout (one realization, M = 1) and of
   the ground truth (all M realizations, as the tokenizer was trained); the frozen tokenizer
   gives latents, tokens and the chosen code vectors of both;
3. metrics (``noa_core.evaluation.metrics``), baselines (``baselines``) and bootstrap intervals
   (``bootstrap``) are computed on exactly these operators and steps, and the gate
   (``gate``) decides from the criteria file.

Outputs in ``out``: ``metrics.json``, ``gate.json``, ``report.md``, ``report.html``. The global
RNG is seeded once from the criteria's seed. The function returns normally whether or not the
model passes; only bad input raises (a ``NOAError``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from noa_core.atomic import write_atomic
from noa_core.config import NOAConfig, config_from_dict
from noa_core.data.hdf5_reader import DatasetReader
from noa_core.data.manifest import sha256_file
from noa_core.errors import EvaluationError, ReplayError
from noa_core.evaluation import baselines as B
from noa_core.evaluation import bootstrap as BS
from noa_core.evaluation import metrics as M
from noa_core.evaluation.criteria import Criteria, load_criteria
from noa_core.evaluation.gate import gate
from noa_core.evaluation.report import ReportFrames, write_reports
from noa_core.features.extract import FeatureExtractor
from noa_core.features.schema import FeatureSchema, feature_schema
from noa_core.models.registry import model_inputs
from noa_core.tokenizer.tokenizer import WEIGHTS_FILE, Tokenizer
from noa_core.tracking.reachability import reachable_tracking_uri
from noa_core.training.checkpoint import load_model_checkpoint
from noa_core.training.data import ReplayWindows

METRICS_FILE = "metrics.json"
GATE_FILE = "gate.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
FORMAT = "noa-evaluation"
VERSION = 1
FAMILIES = ("initial", "summary", "temporal")
STORED_TOKENS = "tokens/ids"
REPORT_SAMPLES = 2  # operators whose frames the report shows

FORMULAS: dict[str, str] = {
    "rollout_mse": "mean_{i,t,c,y,x} (û_it − ū_it)², ū = mean of the M realizations, "
                   "t = 1 … H (deterministic NOA rollout)",
    "rollout_nmse": "Σ_i MSE_i / Σ_i var_{t,c,y,x}(ū_i)",
    "vq_recon_error": "mean_i (1/Q) Σ_q (1/d_q) ‖e_q(tok^NOA_iq) − e_q(tok^gt_iq)‖² "
                      "(e_q: the code vectors, z_q)",
    "token_agreement": "mean_i (1/Q) Σ_q [tok^NOA_iq = tok^gt_iq]",
    "token_entropy_ratio": "Σ_q H_q(NOA tokens) / Σ_q H_q(ground-truth tokens), "
                           "H_q = −Σ_k p_qk ln p_qk over the test operators",
    "codebook_utilization": "(1/Q) Σ_q |codes of q used by NOA tokens| / K_q",
    "cluster_ari": "ARI(k-means_k(NOA latents), k-means_k(ground-truth latents)), latents = "
                   "concatenated pre-quantisation latents of all codebooks",
    "skill_vs_persistence": "rollout_mse / persistence MSE (same operators and steps)",
    "skill_vs_theta_only": "rollout_mse / θ-only MSE (same operators and steps)",
    "skill_vs_new_weights": "rollout_mse / new-weights MSE (operators where both exist)",
    "heads_mse": "(1/3) Σ_f mean_i mean_d (head_f − E_f(ground truth))², f ∈ {initial, "
                 "summary, temporal}",
    "persistence": "MSE of û_t = u_start against ū",
    "theta_only": "MSE of û_t = u_start (residual), α^t·u_start (convex), 0 (autoregressive) "
                  "against ū",
    "noise_floor": "MSE of realization 0 against the mean of realizations 1 … M−1",
    "new_weights": "MSE of the realization mean of the same θ, IC and noise seeds with another "
                   "weight seed, against ū",
    "context_ablation": "rollout_mse with operator i given the context of operator π(i) (π: a "
                        "seeded derangement of the test operators), everything else unchanged",
}

ASYMMETRY_NOTE = (
    "NOA features come from one deterministic rollout (M = 1, so the SUMMARY std and cv over "
    "realizations are 0); ground-truth features come from all M realizations, as the "
    "tokenizer was trained. Token-space criteria therefore compare a single trajectory's "
    "description with an ensemble's.")


@dataclass
class _Collected:
    """Per-operator quantities gathered batch by batch (everything else is derived)."""

    step: dict[str, list[np.ndarray]] = field(default_factory=lambda: {
        k: [] for k in ("noa", "persistence", "theta_only", "noise_floor", "noise_floor_vs_all",
                        "noa_shuffled_context")})
    # Per operator: RMS(shuffled-context rollout − rollout) / RMS(rollout − u_start).
    ablation_change: list[np.ndarray] = field(default_factory=list)
    variance: list[np.ndarray] = field(default_factory=list)
    zq_err: list[np.ndarray] = field(default_factory=list)
    agree: list[np.ndarray] = field(default_factory=list)
    tokens_pred: list[np.ndarray] = field(default_factory=list)
    tokens_gt: list[np.ndarray] = field(default_factory=list)
    latents_pred: list[np.ndarray] = field(default_factory=list)
    latents_gt: list[np.ndarray] = field(default_factory=list)
    heads: dict[str, list[np.ndarray]] = field(default_factory=lambda: {f: [] for f in FAMILIES})
    frames: ReportFrames | None = None

    @staticmethod
    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def test_ids_sha256(sample_ids: np.ndarray) -> str:
    """sha256 of the sorted test sample ids as little-endian int64 (recorded in gate.json)."""
    ids = np.sort(np.asarray(sample_ids, dtype="<i8"))
    return hashlib.sha256(ids.tobytes()).hexdigest()


# --- inputs ---------------------------------------------------------------------------------


def _check_pairing(meta: dict[str, Any], checkpoint_dir: Path, tok: Tokenizer,
                   tokenizer_dir: Path, cfg: NOAConfig) -> FeatureSchema:
    """The checkpoint was trained against this tokenizer and this feature schema."""
    want = (meta.get("tokenizer") or {}).get("weights_sha256")
    got = sha256_file(tokenizer_dir / WEIGHTS_FILE)
    if want != got:
        raise EvaluationError(
            f"{checkpoint_dir}/config.yaml: tokenizer.weights_sha256 is {want}, but "
            f"{tokenizer_dir}/{WEIGHTS_FILE} has sha256 {got}: the checkpoint was trained "
            "against another tokenizer")
    schema = feature_schema(cfg.dynamics.feature_horizon)
    stored = meta.get("feature_schema")
    if stored is not None and FeatureSchema.from_dict(stored).digest() != schema.digest():
        raise EvaluationError(
            f"{checkpoint_dir}/config.yaml: feature_schema is "
            f"[{FeatureSchema.from_dict(stored).describe()}], this code computes "
            f"[{schema.describe()}]")
    tok.check_schema(schema, f"{checkpoint_dir}: features")
    return schema


# --- the batch loop -------------------------------------------------------------------------


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of range(n) with no fixed point (a single random cycle), n ≥ 2."""
    if n < 2:
        raise EvaluationError(f"shuffling contexts needs at least 2 test operators, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)
    return perm


@torch.no_grad()
def _collect(model: Any, tok: Tokenizer, extractor: FeatureExtractor, ds: ReplayWindows,
             cfg: NOAConfig, batch: int, device: torch.device, progress: bool,
             shuffle: np.ndarray | None = None) -> _Collected:
    """Roll out, extract, tokenise and score every test operator, ``batch`` at a time;
    ``shuffle`` [N]: also roll out operator i with the context of operator shuffle[i]."""
    col = _Collected()
    horizon, alpha = cfg.dynamics.feature_horizon, cfg.dynamics.alpha
    n = len(ds)
    bar = tqdm(total=n, desc="evaluate", unit="op", disable=not progress)
    for lo in range(0, n, batch):
        rows = list(range(lo, min(n, lo + batch)))
        window = torch.stack([ds.window(i) for i in rows]).to(device)  # [b, M, T+1, C, H, W]
        theta = ds.theta[rows].to(device)
        u0 = window[:, 0, 0]
        context = ds.contexts(rows, device=device)
        pred = model.rollout(theta, u0, horizon, context).float()  # [b, T+1, C, H, W]
        mean_gt = window[:, :, 1:].mean(1)
        if shuffle is not None:
            other = ds.contexts([int(shuffle[i]) for i in rows], device=device)
            moved = model.rollout(theta, u0, horizon, other).float()
            col.step["noa_shuffled_context"].append(M.step_mse(_np(moved[:, 1:]),
                                                               _np(mean_gt)))
            change = (moved - pred).square().flatten(1).mean(1).sqrt()
            motion = (pred - u0[:, None]).square().flatten(1).mean(1).sqrt()
            col.ablation_change.append(_np(change / motion.clamp_min(1e-12)))
        w_np, pred_np, mean_np, u0_np = _np(window), _np(pred), _np(mean_gt), _np(u0)
        col.step["noa"].append(M.step_mse(pred_np[:, 1:], mean_np))
        col.step["persistence"].append(M.step_mse(B.persistence(u0_np, horizon), mean_np))
        col.step["theta_only"].append(M.step_mse(
            B.theta_only(u0_np, horizon, list(ds.policies[rows]), alpha), mean_np))
        if w_np.shape[1] >= 2:
            r0, others = B.noise_floor_pair(w_np)
            col.step["noise_floor"].append(M.step_mse(r0, others))
            col.step["noise_floor_vs_all"].append(M.step_mse(r0, mean_np))
        col.variance.append(M.target_variance(mean_np))

        f_pred, f_gt = extractor(pred[:, None]), extractor(window)
        z_pred, z_gt = tok.latents(f_pred), tok.latents(f_gt)
        t_pred, t_gt = tok.quantize(z_pred)[1], tok.quantize(z_gt)[1]
        zq_pred, zq_gt = tok.vq.codes_to_latents(t_pred), tok.vq.codes_to_latents(t_gt)
        col.zq_err.append(M.codebook_mse([_np(z) for z in zq_pred], [_np(z) for z in zq_gt]))
        col.agree.append(M.token_agreement(t_pred.cpu().numpy(), t_gt.cpu().numpy()))
        col.tokens_pred.append(t_pred.cpu().numpy())
        col.tokens_gt.append(t_gt.cpu().numpy())
        col.latents_pred.append(_np(torch.cat(z_pred, 1)))
        col.latents_gt.append(_np(torch.cat(z_gt, 1)))

        heads = model.heads(u0, theta, context, rollout=pred)
        emb = tok.family_embeddings(f_gt, window[:, :, 0].mean(1))
        for f in FAMILIES:
            col.heads[f].append(M.family_mse(_np(heads[f]), _np(emb[f])))
        if col.frames is None:
            k = min(REPORT_SAMPLES, len(rows))
            col.frames = ReportFrames(
                sample_ids=[int(s) for s in ds.sample_ids[rows[:k]]],
                noa=pred_np[:k, :, 0], ground_truth=np.concatenate(
                    [w_np[:k, 0, :1, 0], mean_np[:k, :, 0]], axis=1))
        bar.update(len(rows))
    bar.close()
    return col


def _replayer(replay: Path, cfg: NOAConfig) -> Any:
    """The operator family of the replay file (its stored configuration, else the model's)."""
    from noa_core.dynamics.replay import CNOReplayer

    with DatasetReader(replay) as r:
        stored = r.config
    source = cfg if stored is None else config_from_dict(stored, f"{replay}:/metadata@config")
    return CNOReplayer(source, cache_size=0, device="cpu", isolate=False)


def _new_weights(replay: Path, ds: ReplayWindows, cfg: NOAConfig, progress: bool
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Step errors [N, T] of the same-θ-new-weights operator (rows of NaN where its rollout
    diverged) and a mask [N] of the operators it covers."""
    horizon, k = ds.horizon, ds.context
    m = ds.window_shape[0]
    out = np.full((len(ds), horizon), np.nan)
    replayer = _replayer(replay, cfg)
    bar = tqdm(total=len(ds), desc="new-weights baseline", unit="op", disable=not progress)
    with DatasetReader(replay) as r, replayer:
        for i, row in enumerate(ds.rows):
            seeds = r.seeds(int(row))
            try:
                traj = replayer.rollout(r.theta[int(row)], r.ic(int(row)), k + horizon, m,
                                        weight_seed=B.new_weight_seed(seeds["weights"]),
                                        noise_seed=seeds["noise"])
            except ReplayError:
                bar.update(1)
                continue  # that operator diverges with other weights: excluded and counted
            pred = traj[:, k + 1:k + horizon + 1].mean(0).numpy()[None]
            target = ds.window(i)[:, 1:].mean(0).numpy()[None]
            out[i] = M.step_mse(pred, target)[0]
            bar.update(1)
    bar.close()
    return out, np.isfinite(out).all(1)


def _stored_token_agreement(replay: Path, ds: ReplayWindows, tokenizer_dir: Path,
                            tokens_gt: np.ndarray) -> float | None:
    """Agreement of the recomputed ground-truth tokens with those ``noa replay --tokenizer``
    stored (same tokenizer and window only), a consistency monitor."""
    if ds.context != 0:
        return None
    with DatasetReader(replay) as r:
        obj = r.file.get(STORED_TOKENS)
        if obj is None or obj.attrs.get("tokenizer_weights_sha256") != \
                sha256_file(tokenizer_dir / WEIGHTS_FILE):
            return None
        stored = np.asarray(obj[()])[ds.rows]
    if stored.shape != tokens_gt.shape:
        return None
    return float((stored == tokens_gt).mean())


# --- metrics --------------------------------------------------------------------------------


def _entry(value: float | None, n: int, ci: list[float] | None, name: str,
           reason: str = "", **extra: Any) -> dict[str, Any]:
    finite = value is not None and np.isfinite(value)
    out: dict[str, Any] = {"value": float(value) if finite else None, "n": int(n),
                           "ci": ci if finite else None}
    if not finite:
        out["reason"] = reason or f"{name} is not finite"
    if name in FORMULAS:
        out["formula"] = FORMULAS[name]
    out.update(extra)
    return out


def _by_policy(per_sample: np.ndarray, policies: np.ndarray, idx: np.ndarray | None = None,
               level: float = 0.95) -> dict[str, dict[str, Any]]:
    """Per update policy: the mean, the count and (with ``idx``) its interval from the same
    resamples as the whole."""
    out = {}
    for p in sorted(set(policies.tolist())):
        sel = policies == p
        v = per_sample[sel]
        finite = bool(np.isfinite(v).all())
        out[p] = {"value": float(v.mean()) if finite else None, "n": int(sel.sum())}
        if idx is not None and finite:
            out[p]["ci"] = BS.subset_mean_ci(per_sample, sel, idx, level)
    return out


def _error_entry(name: str, steps: np.ndarray, policies: np.ndarray, idx: np.ndarray,
                 level: float) -> dict[str, Any]:
    """A rollout-error entry (NOA or baseline) from its step errors [N, T]."""
    per_sample = steps.mean(1)
    bad = int((~np.isfinite(per_sample)).sum())
    if bad:
        return _entry(None, len(per_sample), None, name,
                      reason=f"non-finite on {bad} of {len(per_sample)} operators",
                      per_step=None, by_policy=_by_policy(per_sample, policies))
    return _entry(float(per_sample.mean()), len(per_sample), BS.mean_ci(per_sample, idx, level),
                  name, per_step=[float(x) for x in steps.mean(0)],
                  by_policy=_by_policy(per_sample, policies, idx, level))


def _skill(name: str, noa: np.ndarray, base: np.ndarray, crit: Criteria, baseline: str
           ) -> dict[str, Any]:
    """Paired ratio mean(NOA error) / mean(baseline error) over the operators where both are
    finite (the NOA must be finite on all); the bootstrap resamples those operators, the same
    indices on both sides."""
    if not np.isfinite(noa).all():
        return _entry(None, len(noa), None, name, baseline=baseline,
                      reason="the NOA rollout is non-finite on some operators")
    keep = np.isfinite(base)  # a new-weights replay may diverge: that operator is left out
    n = int(keep.sum())
    if n == 0 or float(base[keep].mean()) <= 0:
        return _entry(None, n, None, name, baseline=baseline,
                      reason=f"no finite, non-zero {baseline} error to compare with")
    a, b = noa[keep], base[keep]
    idx = BS.bootstrap_indices(n, crit.bootstrap.resamples, crit.seed)
    return _entry(float(a.mean() / b.mean()), n, BS.ratio_ci(a, b, idx, crit.bootstrap.level),
                  name, baseline=baseline)


def _clusters(lat_pred: np.ndarray, lat_gt: np.ndarray, crit: Criteria, idx: np.ndarray
              ) -> dict[str, Any]:
    k, n = crit.clustering.k, len(lat_pred)
    if not (np.isfinite(lat_pred).all() and np.isfinite(lat_gt).all()):
        return _entry(None, n, None, "cluster_ari", k=k,
                      reason="non-finite latents (a NOA rollout left the finite range)")
    if n < k:
        return _entry(None, n, None, "cluster_ari", k=k,
                      reason=f"insufficient data: k-means with k = {k} needs at least {k} "
                             f"operators, got {n}")
    c = crit.clustering
    a = M.kmeans(lat_pred, k, crit.seed, c.n_init, c.max_iter)
    b = M.kmeans(lat_gt, k, crit.seed, c.n_init, c.max_iter)
    ci = BS.statistic_ci(lambda rows: M.adjusted_rand_index(a[rows], b[rows]), idx,
                         crit.bootstrap.level)
    return _entry(M.adjusted_rand_index(a, b), n, ci, "cluster_ari", k=k,
                  contingency=M.contingency(a, b).tolist(),
                  ci_note="clusters fixed, operators resampled")


def _ablation(steps: Mapping[str, np.ndarray], change: np.ndarray, policies: np.ndarray,
              crit: Criteria, idx: np.ndarray) -> dict[str, Any]:
    """The shuffled-context entry: its rollout error beside the NOA's, the share of the NOA's
    gain over θ-only that shuffling loses, and how much the predictions move."""
    level = crit.bootstrap.level
    shuffled = steps["noa_shuffled_context"]
    entry = _error_entry("context_ablation", shuffled, policies, idx, level)
    noa, theta = steps["noa"].mean(1), steps["theta_only"].mean(1)
    gain = float(theta.mean() - noa.mean())
    lost = float((shuffled.mean(1).mean() - noa.mean()) / gain) if gain > 0 else None
    entry.update(
        rollout_mse_with_context=float(noa.mean()),
        skill_vs_theta_only=float(shuffled.mean(1).mean() / theta.mean()),
        skill_lost=lost,
        skill_lost_note="(MSE shuffled − MSE NOA) / (MSE θ-only − MSE NOA): 1 = every gain "
                        "over θ-only is lost; null when the NOA does not beat θ-only",
        prediction_change=float(change.mean()),
        prediction_change_ci=BS.mean_ci(change, idx, level),
        prediction_change_note="mean over operators of RMS(shuffled − NOA rollout) / "
                               "RMS(NOA rollout − u_start)")
    return entry


def compute_metrics(col: _Collected, policies: np.ndarray, sizes: list[int], crit: Criteria,
                    new_weights: tuple[np.ndarray, np.ndarray] | None) -> dict[str, Any]:
    """Every metric entry of metrics.json from the collected per-operator quantities."""
    n = len(policies)
    level = crit.bootstrap.level
    idx = BS.bootstrap_indices(n, crit.bootstrap.resamples, crit.seed)
    steps = {k: np.concatenate(v) if v else None for k, v in col.step.items()}
    out: dict[str, Any] = {}

    noa = steps["noa"]
    out["rollout_mse"] = _error_entry("rollout_mse", noa, policies, idx, level)
    var = col.cat(col.variance)
    per_noa = noa.mean(1)
    nmse = M.normalised_mse(per_noa, var) if np.isfinite(per_noa).all() else None
    out["rollout_nmse"] = _entry(nmse, n, BS.statistic_ci(
        lambda r: M.normalised_mse(per_noa[r], var[r]), idx, level) if nmse is not None else None,
        "rollout_nmse")

    out["persistence"] = _error_entry("persistence", steps["persistence"], policies, idx, level)
    out["theta_only"] = _error_entry("theta_only", steps["theta_only"], policies, idx, level)
    if steps["noise_floor"] is not None:
        out["noise_floor"] = _error_entry("noise_floor", steps["noise_floor"], policies, idx,
                                          level)
        vs_all = steps["noise_floor_vs_all"]
        out["noise_floor"]["value_vs_all_realizations"] = float(vs_all.mean())
        out["noise_floor"]["per_step_vs_all_realizations"] = [float(x) for x in vs_all.mean(0)]
        out["noise_floor"]["note"] = (
            "value_vs_all_realizations scores realization 0 like the NOA (against the mean of "
            "all M, itself included) = ((M−1)/M)² × value: what a model reproducing one "
            "realization exactly scores on rollout_mse")
    else:
        out["noise_floor"] = _entry(None, n, None, "noise_floor",
                                    reason="needs at least 2 realizations")
    if new_weights is None:
        out["new_weights"] = _entry(None, 0, None, "new_weights",
                                    reason="disabled in the criteria (baselines.new_weights)")
    else:
        nw_steps, mask = new_weights
        entry = _error_entry("new_weights", nw_steps[mask], policies[mask],
                             BS.bootstrap_indices(max(1, int(mask.sum())),
                                                  crit.bootstrap.resamples, crit.seed), level) \
            if mask.any() else _entry(None, 0, None, "new_weights",
                                      reason="every replay with new weights diverged")
        entry["diverged"] = int((~mask).sum())
        out["new_weights"] = entry

    out["skill_vs_persistence"] = _skill("skill_vs_persistence", per_noa,
                                         steps["persistence"].mean(1), crit, "persistence")
    out["skill_vs_theta_only"] = _skill("skill_vs_theta_only", per_noa,
                                        steps["theta_only"].mean(1), crit, "theta_only")
    if new_weights is not None:
        out["skill_vs_new_weights"] = _skill("skill_vs_new_weights", per_noa,
                                             new_weights[0].mean(1), crit, "new_weights")

    if steps["noa_shuffled_context"] is not None:
        out["context_ablation"] = _ablation(steps, col.cat(col.ablation_change), policies, crit,
                                            idx)

    zq = col.cat(col.zq_err)
    out["vq_recon_error"] = _entry(float(zq.mean()), n, BS.mean_ci(zq, idx, level),
                                   "vq_recon_error")
    agree = col.cat(col.agree)
    out["token_agreement"] = _entry(float(agree.mean()), n, BS.mean_ci(agree, idx, level),
                                    "token_agreement")
    tp, tg = np.concatenate(col.tokens_pred), np.concatenate(col.tokens_gt)
    h_pred, h_gt = M.codebook_entropies(tp, sizes), M.codebook_entropies(tg, sizes)
    out["token_entropy_ratio"] = _entry(
        M.entropy_ratio(tp, tg, sizes), n,
        BS.statistic_ci(lambda r: M.entropy_ratio(tp[r], tg[r], sizes), idx, level),
        "token_entropy_ratio", reason="ground-truth tokens have zero entropy",
        sum_entropy_pred=float(h_pred.sum()), sum_entropy_gt=float(h_gt.sum()),
        per_codebook=[{"codes": int(k), "entropy_pred": float(a), "entropy_gt": float(b),
                       "counts_pred": cp.tolist(), "counts_gt": cg.tolist()}
                      for k, a, b, cp, cg in zip(sizes, h_pred, h_gt, M.token_counts(tp, sizes),
                                                 M.token_counts(tg, sizes), strict=True)])
    out["codebook_utilization"] = _entry(
        M.utilization(tp, sizes), n,
        BS.statistic_ci(lambda r: M.utilization(tp[r], sizes), idx, level),
        "codebook_utilization", ground_truth=M.utilization(tg, sizes),
        ci_note="a resample holds fewer distinct operators, so this interval leans low")
    out["cluster_ari"] = _clusters(np.concatenate(col.latents_pred),
                                   np.concatenate(col.latents_gt), crit, idx)

    heads = {f: col.cat(v) for f, v in col.heads.items()}
    mean_heads = np.mean([heads[f] for f in FAMILIES], axis=0)
    out["heads_mse"] = _entry(float(mean_heads.mean()), n, BS.mean_ci(mean_heads, idx, level),
                              "heads_mse", per_family={f: float(heads[f].mean())
                                                       for f in FAMILIES})
    return out


# --- the stage ------------------------------------------------------------------------------


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (strict JSON has no NaN/Inf; every
    entry that can be non-finite also carries a reason)."""
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(doc, indent=2, allow_nan=False))


def flatten_metrics(metrics: Mapping[str, Any], gate_doc: Mapping[str, Any]
                    ) -> dict[str, float]:
    """The numeric scalars to log into the run: ``name`` (the value), ``name.n``,
    ``name.ci_low``/``name.ci_high``, ``name.<policy>`` and the gate's pass flags (1/0)."""
    flat: dict[str, float] = {}
    for name, entry in metrics.items():
        if not isinstance(entry, Mapping) or "value" not in entry:
            continue
        if entry["value"] is not None:
            flat[name] = float(entry["value"])
        flat[f"{name}.n"] = float(entry.get("n", 0))
        if entry.get("ci"):
            flat[f"{name}.ci_low"], flat[f"{name}.ci_high"] = map(float, entry["ci"])
        for policy, sub in (entry.get("by_policy") or {}).items():
            if sub.get("value") is not None:
                flat[f"{name}.{policy}"] = float(sub["value"])
    flat["gate.passed"] = float(bool(gate_doc["passed"]))
    for c in gate_doc["criteria"]:
        flat[f"gate.{c['name']}.passed"] = float(bool(c["passed"]))
    return flat


def _load_champion(source: Mapping[str, Any] | str | Path | None) -> Mapping[str, Any] | None:
    if source is None or isinstance(source, Mapping):
        return source
    path = Path(source)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise EvaluationError(f"{path}: no such champion metrics file") from None
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"{path}: not a readable JSON metrics file ({exc})") from None
    if not isinstance(doc, dict):
        raise EvaluationError(f"{path}: expected a JSON object of metrics")
    return doc


def _context_of(cfg: NOAConfig, checkpoint_dir: Path, context: int | None, ablate: bool) -> int:
    """K to evaluate with: checked against the replayed context and the model's encoder."""
    k = cfg.training.context if context is None else int(context)
    if k < 0 or k > cfg.dynamics.context_max:
        raise EvaluationError(f"context {k}: expected 0 … dynamics.context_max = "
                              f"{cfg.dynamics.context_max}")
    if k > cfg.model.context_max:
        raise EvaluationError(
            f"context {k}: {checkpoint_dir}/config.yaml has model.context_max = "
            f"{cfg.model.context_max}; this model reads at most that many observed steps")
    if ablate and k == 0:
        raise EvaluationError("--ablate-context shuffles the observed context: it needs "
                              "--context ≥ 1 (a model trained with context)")
    return k


def evaluate(checkpoint_dir: str | Path, replay: str | Path, tokenizer_dir: str | Path,
             out: str | Path, criteria: str | Path | Criteria | None = None,
             tracking_uri: str | None = None, run_id: str | None = None,
             context: int | None = None, progress: bool = True,
             champion_metrics: Mapping[str, Any] | str | Path | None = None,
             ablate_context: bool = False) -> dict[str, Any]:
    """Evaluate a checkpoint on the test split of ``replay``; write metrics, gate and reports.

    Args:
        criteria: a criteria file path (or ``Criteria``); None: the built-in Phase 1 criteria.
        tracking_uri, run_id: both or neither; with both, the flattened metrics, gate.json and
            the reports are logged into that run (never a guessed URI).
        context: K, the observed transitions (states u_0 … u_K of realization 0) given to
            the model; rollout and scoring start at u_K. None: ``training.context``.
        ablate_context: also roll out with shuffled contexts (``metrics["context_ablation"]``);
            needs K ≥ 1.
        champion_metrics: the champion's metrics (a mapping or a metrics.json path) for the
            champion rule; None: no comparison.
    Returns:
        ``{"passed", "gate", "metrics", "out"}``.
    """
    if (tracking_uri is None) != (run_id is None):
        raise EvaluationError("--tracking-uri and --run-id go together: evaluation logs into "
                              "the run that training opened")
    if tracking_uri is not None:
        tracking_uri = reachable_tracking_uri(tracking_uri)  # before minutes of rollouts
    crit = load_criteria(criteria)
    champion = _load_champion(champion_metrics)
    torch.manual_seed(crit.seed)  # once, from the criteria
    checkpoint_dir, replay, tokenizer_dir, out = (Path(p) for p in
                                                  (checkpoint_dir, replay, tokenizer_dir, out))
    model, cfg, meta = load_model_checkpoint(checkpoint_dir)
    tok = Tokenizer.from_checkpoint(tokenizer_dir)
    schema = _check_pairing(meta, checkpoint_dir, tok, tokenizer_dir, cfg)
    k = _context_of(cfg, checkpoint_dir, context, ablate_context)
    ds = ReplayWindows(replay, "test", cfg.dynamics.feature_horizon, k,
                       model_inputs=model_inputs(cfg))
    shuffle = derangement(len(ds), crit.seed) if ablate_context else None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    tok.to(device)
    col = _collect(model, tok, FeatureExtractor(schema), ds, cfg, crit.batch_size, device,
                   progress, shuffle)
    nw = _new_weights(replay, ds, cfg, progress) if crit.baselines.new_weights else None
    sizes = list(tok.codebook_sizes)
    metrics: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "split": "test",
        "samples": {"test": len(ds), "by_policy": {p: int((ds.policies == p).sum())
                                                   for p in sorted(set(ds.policies.tolist()))}},
        "test_ids_sha256": test_ids_sha256(ds.sample_ids),
        "horizon": ds.horizon, "context": k, "context_fed": k > 0,
        "context_ablation_seed": crit.seed if ablate_context else None,
        "realizations": ds.window_shape[0], "codebooks": len(sizes), "codebook_sizes": sizes,
        "seed": crit.seed, "bootstrap": crit.bootstrap.model_dump(),
        "criteria_name": crit.name, "criteria_sha256": crit.digest(),
        "checkpoint": {"step": (meta.get("info") or {}).get("step"),
                       "tokenizer_weights_sha256": meta["tokenizer"]["weights_sha256"]},
        "asymmetry": ASYMMETRY_NOTE,
        **compute_metrics(col, ds.policies, sizes, crit, nw),
    }
    stored = _stored_token_agreement(replay, ds, tokenizer_dir,
                                     np.concatenate(col.tokens_gt))
    metrics["monitors"] = {"stored_token_agreement": stored}
    metrics = json_safe(metrics)
    g = gate(metrics, crit, champion)
    g["test_ids_sha256"] = metrics["test_ids_sha256"]
    g["samples"] = len(ds)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / METRICS_FILE, metrics)
    _write_json(out / GATE_FILE, g)
    write_reports(out / REPORT_MD, out / REPORT_HTML, metrics, g, col.frames)
    if tracking_uri is not None and run_id is not None:
        _log(tracking_uri, run_id, metrics, g, out)
    return {"passed": g["passed"], "gate": g, "metrics": metrics, "out": str(out)}


def _log(tracking_uri: str, run_id: str, metrics: Mapping[str, Any], g: Mapping[str, Any],
         out: Path) -> None:
    from noa_core.tracking import log_artifact, log_metrics

    log_metrics(tracking_uri, run_id, flatten_metrics(metrics, g))
    for name in (METRICS_FILE, GATE_FILE, REPORT_MD, REPORT_HTML):
        log_artifact(tracking_uri, run_id, out / name, "evaluation")

