"""Stage ``noa tokenizer train``: fit preprocessing on train, train the VQ-VAE and the family
encoders with early stopping on the validation split, write the checkpoint directory.

The test split is never read here: cleaning, categories and normalisation see train rows only,
early stopping sees val rows only.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from noa_core.config import NOAConfig, TrainingLoopConfig, config_from_dict, load_config
from noa_core.data import layout as L
from noa_core.data.hdf5_reader import DatasetReader
from noa_core.dynamics.rollout import fixed_num_threads
from noa_core.errors import DatasetError
from noa_core.features.extract import FeatureExtractor, Features, feature_window, tokenizer_input
from noa_core.features.io import (
    ATTR_SCHEMA_DIGEST,
    ATTR_WINDOW_START,
    FEATURES_GROUP,
    read_features,
)
from noa_core.features.schema import FEATURE_WINDOW_START, FeatureSchema, feature_schema
from noa_core.tokenizer.metrics import codebook_metrics, topographic_correlation
from noa_core.tokenizer.preprocess import fit_preprocessing
from noa_core.tokenizer.tokenizer import Tokenizer

EXTRACT_BATCH = 4  # operators per feature call: larger batches only add cache misses on a CPU


@dataclass
class TokenizerData:
    """Features of every row, the window's first state x0 [N, C, H, W] and the split [N]."""

    features: Features
    x0: torch.Tensor
    split: np.ndarray
    schema: FeatureSchema


def load_training_data(dataset: str | Path, cfg: NOAConfig, progress: bool = True
                       ) -> TokenizerData:
    """Features of the window [0, H] of every stored trajectory: read from the file when it
    stores them for exactly this window and schema (``noa bootstrap`` has just extracted them),
    computed here otherwise."""
    schema = feature_schema(cfg.dynamics.feature_horizon)
    with DatasetReader(dataset) as r:
        if not r.has_trajectories:
            raise DatasetError(f"{dataset}: outputs/fields is missing; the tokenizer needs "
                               "trajectories (generate with store_trajectories: true)")
        stored = _stored_features(r, schema)
        if stored is None:
            feats, starts = _computed_features(r, schema, progress)
        else:
            feats = stored
            window = r.file[L.OUTPUTS][:, :, FEATURE_WINDOW_START]  # [N, M, C, H, W]
            starts = torch.from_numpy(np.asarray(window, dtype=np.float32)).mean(1)
        split = r.split.copy()
    return TokenizerData(feats, starts, split, schema)


def _stored_features(r: DatasetReader, schema: FeatureSchema) -> Features | None:
    """The file's feature groups when they were extracted from ``[FEATURE_WINDOW_START, H]``
    with ``schema`` (same digest); None when absent or different."""
    group = r.file.get(FEATURES_GROUP)
    if group is None or group.attrs.get(ATTR_WINDOW_START) != FEATURE_WINDOW_START:
        return None
    if str(group.attrs.get(ATTR_SCHEMA_DIGEST, "")) != schema.digest():
        return None
    features, _ = read_features(r.path)
    return features


def _computed_features(r: DatasetReader, schema: FeatureSchema, progress: bool
                       ) -> tuple[Features, torch.Tensor]:
    extractor = FeatureExtractor(schema)
    parts: list[Features] = []
    starts = []
    n = r.num_samples
    bar = tqdm(total=n, desc="features", unit="op", disable=not progress)
    for lo in range(0, n, EXTRACT_BATCH):
        traj = torch.from_numpy(r.trajectories(slice(lo, min(n, lo + EXTRACT_BATCH))))
        window = feature_window(traj, FEATURE_WINDOW_START, schema.horizon)
        with torch.no_grad():
            parts.append(extractor(window))
        starts.append(window[:, :, 0].mean(1))
        bar.update(len(traj))
    bar.close()
    return Features.concat(parts), torch.cat(starts)


def _batches(n: int, size: int, gen: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    return [perm[i:i + size] for i in range(0, n, size)]


def _fit_loop(params: list[torch.nn.Parameter], n_train: int, loop: TrainingLoopConfig,
              step: Callable[[torch.Tensor], torch.Tensor], validate: Callable[[], float],
              module: torch.nn.Module, desc: str, progress: bool,
              after_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Adam with early stopping on ``validate()``; restores the best state; returns history."""
    opt = torch.optim.Adam(params, lr=loop.lr)
    gen = torch.Generator().manual_seed(loop.seed)
    best, best_state, best_epoch, waited, steps = float("inf"), None, 0, 0, 0
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    bar = tqdm(range(loop.epochs), desc=desc, unit="epoch", disable=not progress)
    for epoch in bar:
        module.train()
        total = 0.0
        batches = _batches(n_train, loop.batch_size, gen)
        for idx in batches:
            loss = step(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            steps += 1
            if after_step is not None:
                after_step(steps)
        module.eval()
        val = validate()
        history["train_loss"].append(total / len(batches))
        history["val_loss"].append(val)
        bar.set_postfix(train=f"{total / len(batches):.4f}", val=f"{val:.4f}")
        if val < best - loop.min_delta:
            best, best_state, best_epoch, waited = val, copy.deepcopy(module.state_dict()), epoch, 0
        else:
            waited += 1
            if waited >= loop.patience:
                break
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    return {**history, "best_epoch": best_epoch, "best_val_loss": best,
            "epochs_run": len(history["val_loss"])}


def train_vqvae(tok: Tokenizer, x_train: torch.Tensor, x_val: torch.Tensor, progress: bool
                ) -> dict[str, Any]:
    """Train the VQ-VAE on normalised rows; early stopping on the val reconstruction MSE."""
    cfg = tok.cfg
    vq = tok.vq
    gen = torch.Generator().manual_seed(cfg.training.seed + 1)
    with torch.no_grad():
        for z, q in zip(vq.encode(x_train), vq.quantizers, strict=True):
            q.init_from(z, gen)
    w_partial = cfg.vq.partial_decoder_weight
    current: dict[str, torch.Tensor] = {}

    def step(idx: torch.Tensor) -> torch.Tensor:
        x = x_train[idx]
        out = vq(x)
        current["x"] = x
        recon = torch.nn.functional.mse_loss(out.x_hat, x)
        partial = torch.stack([torch.nn.functional.mse_loss(p, x) for p in out.partial]).mean()
        return recon + out.commit + w_partial * partial

    def validate() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(vq(x_val).x_hat, x_val))

    def reset(steps: int) -> None:
        interval = cfg.vq.dead_code_interval
        if interval and steps % interval == 0:
            with torch.no_grad():
                for z, q in zip(vq.encode(current["x"]), vq.quantizers, strict=True):
                    q.reset_dead(z, cfg.vq.dead_code_threshold, gen)

    params = [p for p in vq.parameters() if p.requires_grad]
    return _fit_loop(params, len(x_train), cfg.training, step, validate, vq, "tokenizer",
                     progress, after_step=reset)


def train_families(tok: Tokenizer, train: TokenizerData, tr: np.ndarray, va: np.ndarray,
                   progress: bool) -> dict[str, Any]:
    """Fit the family standardisers on train rows, then each autoencoder with early stopping."""
    fam = tok.families
    f_tr, f_va = train.features.rows(tr), train.features.rows(va)
    x_tr, x_va = train.x0[tr], train.x0[va]
    fam.initial.manual.fit(f_tr.initial)
    fam.summary.norm.fit(f_tr.summary)
    fam.temporal.norm.fit(f_tr.temporal)
    loop = tok.cfg.families.training
    jobs = {
        "initial": (fam.initial, lambda f, x: fam.initial.reconstruction_loss(f.initial, x)),
        "summary": (fam.summary, lambda f, x: fam.summary.reconstruction_loss(f.summary)),
        "temporal": (fam.temporal, lambda f, x: fam.temporal.reconstruction_loss(f.temporal)),
    }
    history = {}
    for name, (module, loss_fn) in jobs.items():
        def step(idx: torch.Tensor, loss_fn=loss_fn) -> torch.Tensor:
            return loss_fn(f_tr.rows(idx), x_tr[idx])

        def validate(loss_fn=loss_fn) -> float:
            with torch.no_grad():
                return float(loss_fn(f_va, x_va))

        params = [p for p in module.parameters() if p.requires_grad]
        history[name] = _fit_loop(params, len(tr), loop, step, validate, module,
                                  f"family {name}", progress)
    return history


def evaluate(tok: Tokenizer, x_val: torch.Tensor) -> dict[str, Any]:
    """Contract metrics on the val split: ``recon_mse``, ``utilization``, ``perplexity``, …"""
    with torch.no_grad():
        out = tok.vq(x_val)
        cb = codebook_metrics(out.codes, tok.codebook_sizes)
        return {
            "recon_mse": float(torch.nn.functional.mse_loss(out.x_hat, x_val)),
            "utilization": cb["utilization"], "perplexity": cb["perplexity"],
            "per_codebook": cb["per_codebook"],
            "topographic_correlation": topographic_correlation(x_val, torch.cat(out.latents, 1)),
        }


def train_tokenizer(dataset: str | Path, out: str | Path, config: str | Path | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Train and save a tokenizer; returns the metrics written to ``out/metrics.json``."""
    started = time.perf_counter()
    with DatasetReader(dataset) as r:
        stored = r.config
    if config is not None:
        cfg = load_config(config)
    elif stored is not None:
        cfg = config_from_dict(stored, f"{dataset}:/metadata@config")
    else:
        raise DatasetError(f"{dataset}: /metadata@config is missing; pass --config")
    torch.manual_seed(cfg.tokenizer.training.seed)  # once, from the config: runs repeat
    data = load_training_data(dataset, cfg, progress)
    tr = np.flatnonzero(data.split == "train")
    va = np.flatnonzero(data.split == "val")
    if len(tr) < 8 or len(va) < 1:
        raise DatasetError(f"{dataset}: the tokenizer needs ≥ 8 train and ≥ 1 val rows, found "
                           f"{len(tr)} and {len(va)}")
    x_all = tokenizer_input(data.features).double().numpy()
    fit = fit_preprocessing(x_all[tr], list(data.schema.tokenizer_input_names),
                            cfg.tokenizer.cleaning, cfg.tokenizer.vq)
    tok = Tokenizer(data.schema, fit, cfg.tokenizer, cfg.dynamics.channels)
    with torch.no_grad():
        x_norm = tok.normalise(data.features)
    # Batches of 64 through MLPs this small gain nothing from intra-op threads, and on shared
    # cores a second thread waiting on the first made each epoch ~7× slower (measured).
    with fixed_num_threads(1):
        history = {"vqvae": train_vqvae(tok, x_norm[tr], x_norm[va], progress)}
        history["families"] = train_families(tok, data, tr, va, progress)
    tok.eval()
    metrics = evaluate(tok, x_norm[va])
    metrics.update({
        "family_recon_mse": {k: v["best_val_loss"] for k, v in history["families"].items()},
        "preprocessing": fit.summary(), "num_codebooks": len(tok.codebook_sizes),
        "codebook_sizes": tok.codebook_sizes, "train_rows": len(tr),
        "val_rows": len(va), "best_epoch": history["vqvae"]["best_epoch"],
        "epochs_run": history["vqvae"]["epochs_run"], "feature_schema": data.schema.describe(),
        "seconds": round(time.perf_counter() - started, 1),
    })
    tok.save(out, metrics, history)
    return metrics
