"""The tokenizer's fixed preprocessing, fitted on the train split only.

``fit_preprocessing`` learns, from train rows of the tokenizer input [N, D_in]:
1. cleaning: drop near-constant columns, de-duplicate |r| > threshold (first column kept),
   impute with the train median, clip to train percentiles;
2. categories: Ward clustering of the kept columns on 1 − |r|, the count chosen by silhouette
   (a cut with a singleton cluster scores −1), small clusters merged into the closest one;
3. normalisation: per-column z-scores with train statistics (never batch statistics).

``Preprocessor`` applies it in torch, differentiably, to any batch: [B, D_in] → [B, D_kept],
columns ordered category by category so each category is a contiguous slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from noa_core.config import CleaningConfig, VQConfig


@dataclass
class PreprocessingFit:
    """What was learned from the train split (plain data: saved as YAML + tensors)."""

    input_names: list[str]
    kept: list[int]  # input column indices, in category-major order
    categories: list[list[int]]  # per category, positions into ``kept``
    median: np.ndarray  # [D_kept]
    clip_low: np.ndarray  # [D_kept]
    clip_high: np.ndarray  # [D_kept]
    mean: np.ndarray  # [D_kept], after clipping
    std: np.ndarray  # [D_kept]
    dropped: dict[str, str]  # input name → reason
    silhouette: float

    def summary(self) -> dict[str, Any]:
        return {
            "input_dim": len(self.input_names), "kept_dim": len(self.kept),
            "num_categories": len(self.categories),
            "category_sizes": [len(c) for c in self.categories],
            "dropped": len(self.dropped), "silhouette": round(self.silhouette, 4),
        }


def _abs_corr(x: np.ndarray) -> np.ndarray:
    z = (x - x.mean(0)) / np.maximum(x.std(0), 1e-12)
    r = z.T @ z / len(x)
    return np.abs(np.clip(r, -1.0, 1.0))


def _clean_columns(x: np.ndarray, names: list[str], cfg: CleaningConfig
                   ) -> tuple[list[int], dict[str, str]]:
    dropped: dict[str, str] = {}
    med = np.nanmedian(x, axis=0)
    filled = np.where(np.isnan(x), med, x)
    live = []
    for j in range(x.shape[1]):
        if not np.isfinite(med[j]):
            dropped[names[j]] = "no finite value on the train split"
        elif filled[:, j].std() <= cfg.min_std * (1 + abs(med[j])):
            dropped[names[j]] = "constant on the train split"
        else:
            live.append(j)
    r = _abs_corr(filled[:, live])
    kept: list[int] = []
    for a, j in enumerate(live):
        twin = next((live[b] for b in range(a) if live[b] in kept and r[a, b] > cfg.dedup_abs_corr),
                    None)
        if twin is None:
            kept.append(j)
        else:
            dropped[names[j]] = f"duplicates {names[twin]} (|r| > {cfg.dedup_abs_corr})"
    return kept, dropped


def _silhouette_cut(dist: np.ndarray, cfg: VQConfig) -> tuple[np.ndarray, float]:
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.metrics import silhouette_score

    n = len(dist)
    if n < 4:
        return np.ones(n, dtype=int), 0.0
    tree = linkage(squareform(dist, checks=False), method="ward")
    best, best_score = np.ones(n, dtype=int), -2.0
    for k in range(min(cfg.min_categories, n - 1), min(cfg.max_categories, n - 1) + 1):
        labels = fcluster(tree, k, criterion="maxclust")
        if len(set(labels)) < 2:
            continue
        singleton = bool((np.bincount(labels)[1:] == 1).any())
        score = -1.0 if singleton else float(silhouette_score(dist, labels, metric="precomputed"))
        if score > best_score:
            best, best_score = labels, score
    return best, best_score


def _merge_small(labels: np.ndarray, r: np.ndarray, min_size: int) -> list[list[int]]:
    groups = {int(g): list(np.flatnonzero(labels == g)) for g in np.unique(labels)}
    while len(groups) > 1:
        small = [g for g, m in groups.items() if len(m) < min_size]
        if not small:
            break
        g = min(small, key=lambda k: (len(groups[k]), k))
        members = groups.pop(g)
        # The cluster whose members correlate most with the orphan's, on average.
        target = max(groups, key=lambda k: float(r[np.ix_(members, groups[k])].mean()))
        groups[target] = sorted(groups[target] + members)
    return [groups[g] for g in sorted(groups, key=lambda k: min(groups[k]))]


def fit_preprocessing(x: np.ndarray, names: list[str], cleaning: CleaningConfig, vq: VQConfig
                      ) -> PreprocessingFit:
    """Fit cleaning, categories and normalisation on train rows ``x`` [N, D_in]."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"train features have shape {x.shape}, expected [N, {len(names)}]")
    if len(x) < 8:
        raise ValueError(f"need at least 8 train rows to fit the tokenizer, got {len(x)}")
    live, dropped = _clean_columns(x, names, cleaning)
    med = np.nanmedian(x[:, live], axis=0)
    filled = np.where(np.isnan(x[:, live]), med, x[:, live])
    lo_p, hi_p = cleaning.clip_percentiles
    lo, hi = np.percentile(filled, lo_p, axis=0), np.percentile(filled, hi_p, axis=0)
    clipped = np.clip(filled, lo, hi)
    r = _abs_corr(clipped)
    labels, score = _silhouette_cut(1.0 - r, vq)
    groups = _merge_small(labels, r, vq.min_features_per_category)
    order = [i for g in groups for i in g]
    positions, start = [], 0
    for g in groups:
        positions.append(list(range(start, start + len(g))))
        start += len(g)
    std = clipped.std(0)
    return PreprocessingFit(
        input_names=list(names), kept=[live[i] for i in order], categories=positions,
        median=med[order], clip_low=lo[order], clip_high=hi[order], mean=clipped.mean(0)[order],
        std=np.where(std[order] < 1e-8, 1.0, std[order]), dropped=dropped, silhouette=score,
    )


class Preprocessor(nn.Module):
    """Applies a ``PreprocessingFit``: [B, D_in] → normalised [B, D_kept] (differentiable)."""

    def __init__(self, fit: PreprocessingFit) -> None:
        super().__init__()
        self.input_dim = len(fit.input_names)
        self.categories = [list(c) for c in fit.categories]
        for name in ("median", "clip_low", "clip_high", "mean", "std"):
            self.register_buffer(name, torch.as_tensor(getattr(fit, name), dtype=torch.float32))
        self.register_buffer("kept", torch.as_tensor(fit.kept, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"tokenizer input has shape {list(x.shape)}, expected "
                             f"[B, {self.input_dim}]")
        v = x.index_select(1, self.kept)
        v = torch.where(torch.isfinite(v), v, self.median)
        v = torch.minimum(torch.maximum(v, self.clip_low), self.clip_high)
        return (v - self.mean) / self.std

    def category_slices(self) -> list[slice]:
        return [slice(c[0], c[-1] + 1) for c in self.categories]
