"""The categorical hierarchical VQ-VAE: per category an encoder, three parallel level heads, one
EMA codebook per (category, level), a shared decoder and per-quantizer partial decoders.

Quantizers and tokens are category-major: (cat0, L0), (cat0, L1), (cat0, L2), (cat1, L0), …

``encode`` and ``decode`` take ``row_independent``: each row then runs through the layers on its
own, so its result is bitwise the same whatever batch it sits in. A GEMM's blocking, hence its
float32 rounding, changes with the number of rows; the NOA's alignment loss needs the split-batch
property (DDP ranks each see part of the global batch) because its steep terms amplify that
rounding to about 1e-6 of the gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from noa_core.config import VQConfig
from noa_core.tokenizer.quantizer import EMAQuantizer

LEVELS = 3
SHARED_DECODER_HIDDEN = 256
PARTIAL_DECODER_HIDDEN = 128


def codebook_sizes(n: int, cap: int) -> tuple[int, int, int]:
    """Codes per level for a category of n features (the original's rule, capped at ``cap``).

    b = ⌊7·log2 n⌋; K0 = max(15, 4⌊b/4⌋), K1 = max(6, ⌊b/2⌋), K2 = max(6, ⌊b/4⌋).
    """
    b = math.floor(7 * math.log2(max(n, 2)))
    ks = (max(15, 4 * (b // 4)), max(6, b // 2), max(6, b // 4))
    return tuple(min(k, cap) for k in ks)  # type: ignore[return-value]


def level_dims(n: int, ratios: tuple[float, ...]) -> tuple[int, ...]:
    """Latent width per level: max(4, 4⌈n·r/4⌉)."""
    return tuple(max(4, 4 * math.ceil(n * r / 4)) for r in ratios)


def row_by_row(fn: Callable[[torch.Tensor], list[torch.Tensor]], x: torch.Tensor
               ) -> list[torch.Tensor]:
    """``fn(x)`` for x [B, D], each row on its own: ``fn`` of a fresh [1, D] copy gives tensors
    [1, ·], each concatenated over the rows to [B, ·].

    Every row then meets the same kernels with the same shapes and an equally aligned buffer, so
    its result is bitwise independent of B (a batched GEMM's blocking changes with B, and so
    does ``bmm``'s). Meant for a frozen module: B small calls instead of one.
    """
    rows = [fn(r.clone(memory_format=torch.contiguous_format)) for r in x.split(1)]
    return [torch.cat(parts) for parts in zip(*rows, strict=True)]


@dataclass
class VQOutput:
    """One forward pass: reconstruction [B, D], per-quantizer latents and codes [B, Q]."""

    x_hat: torch.Tensor
    latents: list[torch.Tensor]
    z_q: list[torch.Tensor]
    codes: torch.Tensor
    commit: torch.Tensor
    partial: list[torch.Tensor]


class CategoricalVQVAE(nn.Module):
    """VQ-VAE over a normalised vector [B, D] whose categories are contiguous slices."""

    def __init__(self, category_sizes: list[int], cfg: VQConfig) -> None:
        super().__init__()
        self.category_sizes = list(category_sizes)
        d_in = sum(category_sizes)
        self.input_dim = d_in
        self.encoders = nn.ModuleList()
        self.heads = nn.ModuleList()
        self.quantizers = nn.ModuleList()
        for n in category_sizes:
            self.encoders.append(nn.Sequential(
                nn.Linear(n, cfg.group_hidden_dim), nn.ReLU(),
                nn.Linear(cfg.group_hidden_dim, cfg.group_embedding_dim),
                nn.LayerNorm(cfg.group_embedding_dim)))
            dims = level_dims(n, cfg.level_ratios)
            self.heads.append(nn.ModuleList(
                nn.Sequential(nn.Linear(cfg.group_embedding_dim, d), nn.LayerNorm(d))
                for d in dims))
            for k, d in zip(codebook_sizes(n, cfg.max_codebook_size), dims, strict=True):
                self.quantizers.append(EMAQuantizer(k, d, cfg.ema_decay, cfg.commitment_beta))
        total = sum(q.dim for q in self.quantizers)
        self.shared_decoder = nn.Sequential(
            nn.Linear(total, SHARED_DECODER_HIDDEN), nn.ReLU(),
            nn.Linear(SHARED_DECODER_HIDDEN, d_in))
        self.partial_decoders = nn.ModuleList(
            nn.Sequential(nn.Linear(q.dim, PARTIAL_DECODER_HIDDEN), nn.ReLU(),
                          nn.Linear(PARTIAL_DECODER_HIDDEN, d_in))
            for q in self.quantizers)

    @property
    def codebook_sizes(self) -> list[int]:
        return [q.num_codes for q in self.quantizers]

    def _slices(self) -> list[slice]:
        out, start = [], 0
        for n in self.category_sizes:
            out.append(slice(start, start + n))
            start += n
        return out

    def encode(self, x: torch.Tensor, row_independent: bool = False) -> list[torch.Tensor]:
        """Pre-quantisation latents of x [B, D], one [B, d_q] per quantizer (category-major)."""
        if row_independent:
            return row_by_row(self._encode, x)
        return self._encode(x)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``encode`` over the whole batch at once."""
        latents = []
        for sl, enc, heads in zip(self._slices(), self.encoders, self.heads, strict=True):
            h = enc(x[:, sl])
            latents.extend(head(h) for head in heads)
        return latents

    def quantize(self, latents: list[torch.Tensor]
                 ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """(z_q per quantizer, codes [B, Q] int64, summed commitment loss)."""
        z_q, codes, commit = [], [], torch.zeros((), device=latents[0].device)
        for z, q in zip(latents, self.quantizers, strict=True):
            zq, c, loss = q(z)
            z_q.append(zq)
            codes.append(c)
            commit = commit + loss
        return z_q, torch.stack(codes, 1), commit

    def decode(self, z_q: list[torch.Tensor], row_independent: bool = False) -> torch.Tensor:
        """Shared reconstruction [B, D] of the normalised input."""
        z = torch.cat(z_q, 1)
        if row_independent:
            return row_by_row(lambda r: [self.shared_decoder(r)], z)[0]
        return self.shared_decoder(z)

    def codes_to_latents(self, codes: torch.Tensor) -> list[torch.Tensor]:
        """The code vectors of token ids [B, Q]."""
        return [q.codebook[codes[:, i]] for i, q in enumerate(self.quantizers)]

    def forward(self, x: torch.Tensor) -> VQOutput:
        latents = self.encode(x)
        z_q, codes, commit = self.quantize(latents)
        partial = [dec(z) for dec, z in zip(self.partial_decoders, z_q, strict=True)]
        return VQOutput(self.decode(z_q), latents, z_q, codes, commit, partial)
