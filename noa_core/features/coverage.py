"""Gradient coverage: which feature columns pass a gradient back to the trajectory.

The NOA's alignment loss backpropagates through the extractor, so a column whose gradient with
respect to the window is zero (or not finite) teaches the model nothing. ``gradient_coverage``
measures, per family of the tokenizer input, the fraction of columns whose gradient is finite
and not identically zero, and names every other column with the reason it is structurally flat
(``schema.structurally_flat``) or ``"unexpected"``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from noa_core.features.extract import FeatureExtractor, tokenizer_input
from noa_core.features.schema import FeatureSchema, structurally_flat


def column_gradients(schema: FeatureSchema, window: Tensor, columns: range) -> Tensor:
    """``[len(columns), B, ...window dims]``: ∂(Σ_b column j of row b) / ∂window, per column.

    One backward pass for all the columns: the window is repeated once per column and replica
    k's loss is column k. This relies on rows being independent (no batch statistics; tested).
    """
    k = len(columns)
    b = window.shape[0]
    rep = window.detach().repeat(k, *([1] * (window.dim() - 1))).requires_grad_(True)
    x = tokenizer_input(FeatureExtractor(schema)(rep)).view(k, b, -1)
    idx = torch.as_tensor(list(columns), device=x.device)
    picked = x.gather(2, idx[:, None, None].expand(k, b, 1))
    (g,) = torch.autograd.grad(picked.sum(), rep)
    return g.view(k, *window.shape)


def gradient_coverage(schema: FeatureSchema, window: Tensor, chunk: int = 64
                      ) -> dict[str, Any]:
    """Coverage report for ``window [B, M, H+1, C, Hg, Wg]``.

    Returns ``{"families": {family: {"columns", "covered", "fraction"}}, "uncovered":
    {column: reason}, "nonfinite": [columns]}``.
    """
    names = schema.tokenizer_input_names
    flat = structurally_flat(schema, channels=int(window.shape[3]),
                             realizations=int(window.shape[1]))
    ok: list[bool] = []
    nonfinite = []
    for lo in range(0, len(names), chunk):     # chunks of columns bound the memory
        cols = range(lo, min(len(names), lo + chunk))
        g = column_gradients(schema, window, cols).flatten(1)
        finite = torch.isfinite(g).all(1)
        nonfinite += [names[j] for j, f in zip(cols, finite.tolist(), strict=True) if not f]
        ok += (finite & (g != 0).any(1)).tolist()
    families = {}
    for family, cols in schema.tokenizer_input_slices().items():
        sel = ok[cols]
        families[family] = {"columns": len(sel), "covered": int(sum(sel)),
                            "fraction": sum(sel) / max(len(sel), 1)}
    uncovered = {names[j]: flat.get(names[j], "unexpected") for j in range(len(ok)) if not ok[j]}
    return {"families": families, "uncovered": uncovered, "nonfinite": nonfinite}
