"""Overfitting 4 operators with a tiny NOA, in both loss modes (issue 4's acceptance item).

The trainer's own ``train_step`` (rollout, heads, features of the prediction, frozen-tokenizer
alignment terms, backward, clipping, AdamW) runs on a train split cut down to 4 operators, the
same global batch every step. After training:

- ``L_traj`` is below 1e-3 of its value at the first step;
- each alignment term (latent and commit, and recon in VQ-led mode) is at most 1.1× its value
  when the ground-truth realization mean itself is fed as the prediction;
- swapping θ between two of the operators (a convex and a residual one; two convex ones)
  changes the deterministic 8-step prediction from the same start states by at least 10 % of
  each operator's ground-truth field standard deviation.

Setup choices, each for a measured reason:

- Own bootstrap (``OVERFIT``): the ``tiny`` operator family at grid 8 and feature horizon 8 (the
  8-step prediction is the trained horizon), noise scale in [1e-5, 1e-4] and both update
  policies equally likely. With the ``tiny`` preset's noise (σ up to 1) the realization mean of
  a convex operator carries noise no deterministic rollout reproduces: about 8e-4 of MSE for
  the first convex operator of the session fixture, near its whole share of the 1e-3 budget.
- The 4 operators are the first two convex and the first two residual operators of the train
  split: a residual operator (dt = 0.01) barely moves in 8 steps, so a θ swap that must move the
  prediction by 10 % of the field's spread needs a convex operator in each pair.
- Alignment weights at ``ALIGNMENT_SCALE`` (1e-4) times the spec's, λ_traj and λ_heads at the
  spec's. This is what the first two criteria together need, measured on this setup (400
  steps): at the spec weights ``L_traj`` stalls at 3.3 % (MSE-led) and 10.6 % (VQ-led) of its
  initial value, the latent term at 1.17× / 1.23× its ground-truth value; at 1e-3 × the
  weights MSE-led passes (ratio 5.5e-4, latent 1.09×) but VQ-led ends with latent 1.21× and
  commit 1.20× (ratio 6.2e-4). The alignment gradients at the ground truth are large: several
  tokenizer inputs (drift monotonicity, lag asymmetry, ACF decay time) are steep functions of
  a near-static residual trajectory, so invisible changes of the rollout move the latents, and
  the terms' minimum is not the ground truth; the straight-through recon gradient walks the
  latents off it in VQ-led mode. ``test_spec_weights_move_the_optimum_off_the_ground_truth``
  shows this without a model: following the spec-weighted loss over free trajectories from the
  ground truth itself ends with ``L_traj`` above 1e-3 of its initial value, so at the spec
  weights the first criterion would need a trainer that stops short of its own loss's minimum.
- 600 steps (lr 1e-2, cosine to 1e-4). At 400 the run can end inside a recovery from a loss
  spike, where the alignment terms are not yet back: one rounding of the tokenizer's GEMMs ended
  MSE-led at ratio 1.5e-4 with latent 1.003×, another at 2.8e-4 with latent 1.17×. At 600,
  six runs (two roundings and a second training seed, both modes) ended at ratios 2.2e-5 to
  1.35e-4 with every alignment term between 0.97× and 1.02×.
- One intra-op thread: on two shared cores the small kernels run about twice as fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from noa_core.config import NOAConfig, load_config
from noa_core.data.generate import generate_dataset
from noa_core.dynamics.rollout import fixed_num_threads
from noa_core.tokenizer.train import train_tokenizer
from noa_core.training.field_stats import field_stats
from noa_core.training.losses import alignment_terms, trajectory_loss, weighted_total
from noa_core.training.trainer import Trainer

OVERFIT = """\
extends: tiny
dynamics: {grid: 8, feature_horizon: 8}
parameter_space:
  stochastic:
    noise_scale: {type: continuous, bounds: [1.0e-5, 1.0e-4], log_scale: true}
  operator:
    grid_size: {type: constant, value: 8}
  evolution:
    update_policy: {type: choice, choices: [residual, convex], weights: [0.5, 0.5]}
tokenizer:
  training: {epochs: 10, patience: 10, batch_size: 16}
  families: {hidden_dim: 32, training: {epochs: 3, patience: 3, batch_size: 16}}
model:
  base_channels: 24
  levels: 1
  max_channels: 96
  afno_blocks: 2
  modes: 4
  afno_num_blocks: 4
  heads: {initial: 42, summary: 128, temporal: 128, hidden: 32}
training:
  context: 0               # θ alone: the criterion is about θ conditioning (issue 4)
  context_range: null
  batch_size: 4
  max_steps: 600
  warmup_steps: 10
  lr: 1.0e-2
  min_lr_ratio: 0.01
  weight_decay: 0.0
  grad_clip: 10.0
"""
ALIGNMENT_SCALE = 1e-4
OPERATORS = 4
SWAP_STEPS = 8
TRAJ_RATIO = 1e-3
ALIGN_RATIO = 1.1
SWAP_FRACTION = 0.10
# Following the spec-weighted loss over free trajectories: Adam steps and learning rate (in
# field units per element; 1e-3 is already too coarse: one step of it moves the latent term
# by a third while L_traj moves by 1e-6).
FREE_STEPS = 1500
FREE_LR = 1e-4


@pytest.fixture(scope="module")
def overfit_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(config file, dataset with trajectories, tokenizer directory) of the ``OVERFIT`` setup."""
    root = tmp_path_factory.mktemp("overfit")
    config = root / "overfit.yaml"
    config.write_text(OVERFIT)
    data, tok = root / "dataset.h5", root / "tokenizer"
    generate_dataset(load_config(config), data, num_samples=18, workers=1, progress=False)
    train_tokenizer(data, tok, progress=False)
    return config, data, tok


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for the test (the previous count restored after)."""
    with fixed_num_threads(1):
        yield


def prepared_trainer(config: Path, data: Path, tok: Path, out: Path, mode: str,
                     scale: float) -> Trainer:
    """A trainer in loss mode ``mode`` at ``scale`` × the spec's alignment weights, its train
    split cut down to the 4 operators of ``pick_operators``."""
    trainer = Trainer(mode_config(load_config(config), mode, scale), data, tok, out,
                      progress=False)
    restrict_train_split(trainer, pick_operators(list(trainer.train_ds.policies)))
    return trainer


def mode_config(cfg: NOAConfig, mode: str, scale: float) -> NOAConfig:
    """``cfg`` in loss mode ``mode`` with every alignment weight (latent, commit, recon) at
    ``scale`` × its spec value; λ_traj (both modes) and λ_heads stay at the spec's."""
    t = cfg.training
    w = t.weights.model_copy(update={"latent": t.weights.latent * scale,
                                     "commit": t.weights.commit * scale,
                                     "recon": t.weights.recon * scale})
    return cfg.model_copy(update={"training": t.model_copy(
        update={"loss_mode": mode, "weights": w})})


def pick_operators(policies: list[str], n: int = OPERATORS) -> torch.Tensor:
    """Train rows [n]: the first n/2 convex then the first n/2 residual operators."""
    convex = [i for i, p in enumerate(policies) if p == "convex"][:n // 2]
    residual = [i for i, p in enumerate(policies) if p == "residual"][:n - n // 2]
    assert len(convex) + len(residual) == n, f"too few operators of a policy: {policies}"
    return torch.tensor(convex + residual)


def restrict_train_split(trainer: Trainer, keep: torch.Tensor) -> None:
    """Cut the trainer's train split (rows, θ, ids, policies, windows, targets, field
    statistics) down to the rows ``keep`` [n], in that order."""
    ds, idx = trainer.train_ds, keep.numpy()
    ds.rows, ds.sample_ids, ds.policies = ds.rows[idx], ds.sample_ids[idx], ds.policies[idx]
    ds.theta = ds.theta[keep]
    ds._memory = ds.all_states()[keep].clone()
    trainer.targets = {k: t.rows(keep) for k, t in trainer.targets.items()}
    stats = field_stats([ds.all_windows()])
    trainer.model.set_field_stats(stats.mean, stats.std)


@torch.no_grad()
def theta_swap_change(trainer: Trainer, a: int, b: int, steps: int) -> list[float]:
    """RMS change of the deterministic ``steps``-step prediction of operators a and b when
    their θ rows are swapped (same start states), over each one's ground-truth field std."""
    ds, model = trainer.train_ds, trainer.model.eval()
    windows = ds.all_windows()  # [n, M, H+1, C, G, G]
    u0 = windows[:, 0, 0]
    theta = ds.theta.clone()
    swapped = theta.clone()
    swapped[[a, b]] = theta[[b, a]]
    base = model.rollout(theta, u0, steps)[:, 1:]
    moved = model.rollout(swapped, u0, steps)[:, 1:]
    return [float((moved[i] - base[i]).pow(2).mean().sqrt() / windows[i].std())
            for i in (a, b)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["mse_led", "vq_led"])
def test_overfits_four_operators(mode: str, overfit_data: tuple[Path, Path, Path],
                                 tmp_path: Path, one_thread: None) -> None:
    trainer = prepared_trainer(*overfit_data, tmp_path, mode, ALIGNMENT_SCALE)
    cfg = trainer.cfg
    rows = torch.arange(OPERATORS)
    vq = mode == "vq_led"

    first = trainer.train_step(rows)
    assert first is not None
    for _ in range(1, cfg.training.max_steps):
        assert trainer.train_step(rows) is not None
    with torch.no_grad():
        final = {k: float(v) for k, v in trainer.losses(rows).items()}
        gt_mean = trainer.train_ds.all_windows().mean(1)  # [4, H+1, C, G, G]
        target = trainer.targets[trainer.t.context]
        reference = {k: float(v) for k, v in alignment_terms(
            trainer.tok, trainer.extractor, gt_mean, target, with_recon=vq).items()}
    convex, residual = 0, OPERATORS // 2
    swaps = {"convex-residual": theta_swap_change(trainer, convex, residual, SWAP_STEPS),
             "convex-convex": theta_swap_change(trainer, convex, convex + 1, SWAP_STEPS)}
    print(f"{mode}: L_traj {first['traj']:.4g} → {final['traj']:.4g} "
          f"(ratio {final['traj'] / first['traj']:.3g}); alignment / ground truth: "
          + ", ".join(f"{k} {final[k]:.4g}/{reference[k]:.4g}" for k in reference)
          + f"; θ swap / std: {swaps}")

    assert final["traj"] < TRAJ_RATIO * first["traj"]
    assert set(reference) == ({"latent", "commit", "recon"} if vq else {"latent", "commit"})
    for name, value in reference.items():
        assert final[name] <= ALIGN_RATIO * value, (name, final[name], value)
    for pair, change in swaps.items():
        assert min(change) >= SWAP_FRACTION, (pair, change)


def spec_total(trainer: Trainer, pred: torch.Tensor, window: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(the trainer's weighted total, ``L_traj``) of a predicted window pred [4, H+1, C, G, G]
    against the ground-truth windows [4, M, H+1, C, G, G]. The heads term counts as 0: it reads
    the model's heads, not the trajectory."""
    terms = {"traj": trajectory_loss(pred, window), "heads": pred.new_zeros(())}
    terms.update(alignment_terms(trainer.tok, trainer.extractor, pred,
                                 trainer.targets[trainer.t.context],
                                 with_recon=trainer.t.loss_mode == "vq_led"))
    return weighted_total(trainer.t, terms), terms["traj"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["mse_led", "vq_led"])
def test_spec_weights_move_the_optimum_off_the_ground_truth(
        mode: str, overfit_data: tuple[Path, Path, Path], tmp_path: Path,
        one_thread: None) -> None:
    """Why the overfit test scales the alignment weights, measured without a model.

    The predicted trajectory is a free tensor that starts at the ground-truth realization mean
    (L_traj = 0) and follows the gradient of the spec-weighted loss, as the trainer's would.
    Its reference is persistence, L_traj of u_start held (0.3806 here; a fresh model, a small
    residual, starts at 0.3808). The ground truth is not a minimum: the commitment (its
    latents are not codewords: 0.076 there) and the latent term (a deterministic trajectory's
    features against the realization ensemble's: 0.153 there) both have gradients at it. In
    MSE-led mode the total falls while L_traj rises past 1e-3 of the reference; in VQ-led mode
    the straight-through recon gradient (the tokenizer's own reconstruction error at the ground
    truth) pushes it past 1e-3 as well. Were the loss's minimum the ground truth, both would
    stay near it and this test would fail, and the scale in the overfit test would be moot."""
    trainer = prepared_trainer(*overfit_data, tmp_path, mode, 1.0)
    window = trainer.train_ds.all_windows()  # [4, M, H+1, C, G, G]
    gt = window.mean(1)
    persistence = float(trajectory_loss(window[:, 0, :1].expand_as(gt), window))
    free = gt[:, 1:].clone().requires_grad_(True)  # X_start is given, not predicted
    opt = torch.optim.Adam([free], lr=FREE_LR)
    for _ in range(FREE_STEPS):
        opt.zero_grad()
        spec_total(trainer, torch.cat([gt[:, :1], free], 1), window)[0].backward()
        opt.step()
    with torch.no_grad():
        start = float(spec_total(trainer, gt, window)[0])
        end, traj = (float(v) for v in spec_total(trainer, torch.cat([gt[:, :1], free], 1),
                                                   window))
    ratio = traj / persistence
    print(f"{mode}: total {start:.5g} → {end:.5g}; L_traj 0 → {traj:.4g} "
          f"= {ratio:.3g} of persistence ({persistence:.4g})")
    assert ratio > TRAJ_RATIO
    if mode == "mse_led":  # a true gradient: following it lowers the loss
        assert end < start
