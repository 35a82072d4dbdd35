"""NOA training losses against the frozen tokenizer.

Tensors compared (B operators, window of H + 1 states, X_start first; the NOA rollout is one
deterministic trajectory, the ground truth has M realizations):

- ``traj``   MSE(pred[:, 1:], mean over M of gt[:, :, 1:]): states [B, H, C, H, W].
- ``latent`` mean over codebooks q of MSE(z_q(features(pred)), z_q(features(gt))): the frozen
             tokenizer's pre-quantisation latents [B, d_q], with its saved normalisation; the
             ground-truth side is precomputed once (``Targets``) and carries no gradient.
- ``commit`` mean over codebooks of MSE(z_q(features(pred)), sg(e_q)), e_q the nearest code:
             how far the predicted latents are from the tokenizer's vocabulary.
- ``heads``  mean over families of MSE(head_f(NOA), E_f(gt)): the NOA's INITIAL 42 / SUMMARY
             128 / TEMPORAL 128 heads against the tokenizer's family embeddings of the ground
             truth.
- ``recon``  (VQ-led) MSE(decode(st(z(features(pred)))), x(gt)): the tokenizer's decoding of
             the predicted latents (straight-through quantised) against the ground truth's
             normalised feature vector [B, D].

MSE-led total = λ_traj·traj + λ_latent·latent + λ_commit·commit + λ_heads·heads (spec defaults
1.0 / 0.1 / 0.5, heads 0.1); VQ-led total = λ_recon·recon + λ_commit·commit + λ_traj·traj +
λ_heads·heads (defaults 1.0 / 0.5 / 0.3 / 0.1).

The tokenizer runs row by row on the prediction's side (``row_independent``): each sample's
latents, hence its loss and gradient, are then the same whatever batch it is in, and a DDP rank's
share of the batch trains as the whole batch does (to the rounding of the final sums).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from noa_core.config import TrainConfig
from noa_core.features.extract import FeatureExtractor
from noa_core.tokenizer.tokenizer import Tokenizer

FAMILIES = ("initial", "summary", "temporal")


@dataclass
class Targets:
    """Ground-truth tokenizer quantities of N operators, computed once, without gradients."""

    x_norm: torch.Tensor  # [N, D_kept]
    latents: list[torch.Tensor]  # per codebook [N, d_q]
    embeddings: dict[str, torch.Tensor]  # family → [N, dim]

    def rows(self, idx: torch.Tensor) -> Targets:
        return Targets(self.x_norm[idx], [z[idx] for z in self.latents],
                       {k: v[idx] for k, v in self.embeddings.items()})

    def to(self, device: torch.device | str) -> Targets:
        """The same targets on ``device``."""
        return Targets(self.x_norm.to(device), [z.to(device) for z in self.latents],
                       {k: v.to(device) for k, v in self.embeddings.items()})

    @staticmethod
    def cat(parts: Sequence[Targets]) -> Targets:
        """The targets of consecutive row blocks, as one."""
        return Targets(torch.cat([p.x_norm for p in parts]),
                       [torch.cat(z) for z in zip(*(p.latents for p in parts), strict=True)],
                       {k: torch.cat([p.embeddings[k] for p in parts]) for k in FAMILIES})


@torch.no_grad()
def window_targets(tok: Tokenizer, extractor: FeatureExtractor, windows: torch.Tensor
                   ) -> Targets:
    """Targets of ground-truth windows [b, M, H+1, C, H, W]."""
    f = extractor(windows)
    return Targets(tok.normalise(f), tok.latents(f),
                   tok.family_embeddings(f, windows[:, :, 0].mean(1)))


def context_targets(tok: Tokenizer, extractor: FeatureExtractor,
                    batches: Iterable[torch.Tensor], contexts: Sequence[int], horizon: int
                    ) -> dict[int, Targets]:
    """Targets of the windows of H + 1 states from each state K in ``contexts``, from one pass
    over batches of whole trajectories [b, M, S, C, H, W] (rows in order:
    ``ReplayWindows.state_batches``): the split is read once and never whole in memory."""
    parts: dict[int, list[Targets]] = {k: [] for k in contexts}
    for states in batches:
        for k in contexts:
            parts[k].append(window_targets(tok, extractor, states.narrow(2, k, horizon + 1)))
    return {k: Targets.cat(p) for k, p in parts.items()}


def trajectory_loss(pred: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """MSE of pred [B, H+1, C, H, W] against the realization mean of window [B, M, H+1, ...],
    over the H predicted states (X_start is given, not predicted)."""
    return F.mse_loss(pred[:, 1:], window[:, :, 1:].mean(1))


def alignment_terms(tok: Tokenizer, extractor: FeatureExtractor, pred: torch.Tensor,
                    target: Targets, with_recon: bool, live: slice | None = None
                    ) -> dict[str, torch.Tensor]:
    """``latent``, ``commit`` (and ``recon``) of a predicted window pred [B, H+1, C, H, W];
    ``live``: the states that carry a gradient (``backbone.grad_states``; None: all), so the
    features' backward runs over those only."""
    f = extractor(pred[:, None], live=live)  # the deterministic rollout is one realization
    z = tok.latents(f, row_independent=True)
    codes = [q.nearest(zq.detach()) for q, zq in zip(tok.vq.quantizers, z, strict=True)]
    codebook = [q.codebook[c] for q, c in zip(tok.vq.quantizers, codes, strict=True)]
    out = {
        "latent": torch.stack([F.mse_loss(a, b) for a, b in
                               zip(z, target.latents, strict=True)]).mean(),
        "commit": torch.stack([F.mse_loss(a, e) for a, e in zip(z, codebook, strict=True)]).mean(),
    }
    if with_recon:
        st = [a + (e - a).detach() for a, e in zip(z, codebook, strict=True)]
        out["recon"] = F.mse_loss(tok.decode(st, row_independent=True), target.x_norm)
    return out


def heads_loss(heads: dict[str, torch.Tensor], target: Targets) -> torch.Tensor:
    """Mean over families of MSE(head, family embedding of the ground truth)."""
    return torch.stack([F.mse_loss(heads[k], target.embeddings[k]) for k in FAMILIES]).mean()


def weighted_total(t: TrainConfig, terms: dict[str, torch.Tensor],
                   share: float = 1.0) -> torch.Tensor:
    """The loss of ``t.loss_mode`` from ``terms`` (``traj``, ``latent``, ``commit``, ``heads``,
    and ``recon`` in VQ-led mode), every weight but the trajectory's times ``share`` (the
    alignment warm-up's)."""
    w = t.weights
    if t.loss_mode == "mse_led":
        return w.traj * terms["traj"] + share * (
            w.latent * terms["latent"] + w.commit * terms["commit"] + w.heads * terms["heads"])
    return share * (w.recon * terms["recon"] + w.commit * terms["commit"]
                    + w.heads * terms["heads"]) + t.vq_led_traj_weight * terms["traj"]
