"""Codebook and topology metrics shared by tokenizer training and NOA evaluation."""

from __future__ import annotations

from typing import Any

import torch


def codebook_metrics(codes: torch.Tensor, sizes: list[int]) -> dict[str, Any]:
    """Per-codebook utilization (unique codes / K, 0–1) and perplexity exp(H), and their means.

    codes: token ids [B, Q]; sizes: K per codebook (Q entries).
    """
    per = []
    for q, k in enumerate(sizes):
        counts = torch.bincount(codes[:, q], minlength=k).double()
        p = counts / counts.sum().clamp_min(1)
        entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
        per.append({"codes": k, "used": int((counts > 0).sum()),
                    "utilization": float((counts > 0).sum()) / k,
                    "entropy": entropy, "perplexity": float(torch.tensor(entropy).exp())})
    n = max(len(per), 1)
    return {"utilization": sum(c["utilization"] for c in per) / n,
            "perplexity": sum(c["perplexity"] for c in per) / n, "per_codebook": per}


def topographic_correlation(x: torch.Tensor, z: torch.Tensor) -> float:
    """Pearson r between pairwise distances of inputs x [B, D] and of latents z [B, d]."""
    if len(x) < 3:
        return float("nan")
    iu = torch.triu_indices(len(x), len(x), 1)
    dx = torch.cdist(x.double(), x.double())[iu[0], iu[1]]
    dz = torch.cdist(z.double(), z.double())[iu[0], iu[1]]
    dx, dz = dx - dx.mean(), dz - dz.mean()
    denom = (dx.norm() * dz.norm()).clamp_min(1e-12)
    return float((dx * dz).sum() / denom)
