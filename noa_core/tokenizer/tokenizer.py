"""``Tokenizer``: preprocessing + VQ-VAE + family encoders, and its checkpoint directory.

A checkpoint directory holds
- ``config.yaml``: plain YAML (format, version, feature schema, tokenizer config, channels,
  preprocessing: kept columns, categories, dropped columns with reasons, codebook sizes);
- ``weights.pt``: a state dict of tensors only (loaded with ``weights_only=True``), including
  the preprocessing statistics (medians, clip bounds, means, stds) and the EMA codebooks;
- ``metrics.json`` (``recon_mse``, ``utilization``, ``perplexity``, …) and ``history.json``.

``Tokenizer.from_checkpoint(dir)`` returns a frozen eval-mode module. A features schema that is
not the checkpoint's is refused with both schemas named: the original's silent 171-vs-187
mismatch cannot happen.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from noa_core.atomic import write_atomic
from noa_core.config import TokenizerConfig
from noa_core.errors import TokenizerError
from noa_core.features.extract import Features, tokenizer_input
from noa_core.features.schema import FeatureSchema
from noa_core.tokenizer.family import FamilyEncoders
from noa_core.tokenizer.preprocess import PreprocessingFit, Preprocessor
from noa_core.tokenizer.vqvae import CategoricalVQVAE
from noa_core.yaml_text import parse_yaml

CHECKPOINT_FORMAT = "noa-tokenizer"
CHECKPOINT_VERSION = 1
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "weights.pt"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE, HISTORY_FILE)


class Tokenizer(nn.Module):
    """Features → normalised vector → latents per codebook → tokens; plus family embeddings."""

    def __init__(self, schema: FeatureSchema, fit: PreprocessingFit, cfg: TokenizerConfig,
                 channels: int) -> None:
        super().__init__()
        self.schema = schema
        self.fit_info = fit
        self.cfg = cfg
        self.channels = channels
        self.pre = Preprocessor(fit)
        self.vq = CategoricalVQVAE([len(c) for c in fit.categories], cfg.vq)
        fam = cfg.families
        self.families = FamilyEncoders(channels, len(schema.summary) * len(schema.aggregations),
                                       len(schema.temporal), fam.initial_cnn_dim, fam.summary_dim,
                                       fam.temporal_dim, fam.hidden_dim)

    # --- schema ---------------------------------------------------------------------------

    def check_schema(self, schema: FeatureSchema, origin: str = "features") -> None:
        """Refuse features of another schema, naming both."""
        if schema.digest() != self.schema.digest():
            raise TokenizerError(
                f"{origin} have feature schema [{schema.describe()}] but the tokenizer was "
                f"trained on [{self.schema.describe()}]; re-extract the features or retrain")

    # --- the token path -------------------------------------------------------------------

    def normalise(self, features: Features) -> torch.Tensor:
        """Cleaned, normalised tokenizer input [B, D_kept] (differentiable)."""
        return self.pre(tokenizer_input(features))

    def latents(self, features: Features, row_independent: bool = False) -> list[torch.Tensor]:
        """Pre-quantisation latents, one [B, d_q] per codebook (category-major);
        ``row_independent``: each row's result bitwise independent of the batch (``vqvae``)."""
        return self.vq.encode(self.normalise(features), row_independent)

    def quantize(self, latents: list[torch.Tensor]
                 ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """(z_q per codebook, token ids [B, Q], commitment loss)."""
        return self.vq.quantize(latents)

    def tokens(self, features: Features) -> torch.Tensor:
        """Token ids [B, Q] (int64), one per codebook."""
        return self.quantize(self.latents(features))[1]

    def decode(self, z_q: list[torch.Tensor], row_independent: bool = False) -> torch.Tensor:
        """Reconstruction [B, D_kept] of the normalised input."""
        return self.vq.decode(z_q, row_independent)

    def family_embeddings(self, features: Features, x0: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"initial": [B, 42], "summary": [B, 128], "temporal": [B, 128]} from the features and
        the window's first state x0 [B, C, H, W]."""
        return self.families(features.initial, features.summary, features.temporal, x0)

    @property
    def codebook_sizes(self) -> list[int]:
        return self.vq.codebook_sizes

    def freeze(self) -> Tokenizer:
        """Eval mode (no EMA updates) and no gradients into the tokenizer's own weights."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    # --- checkpoint -----------------------------------------------------------------------

    def save(self, directory: str | Path, metrics: dict[str, Any],
             history: dict[str, Any]) -> None:
        """Write the checkpoint directory (each file via a temporary name, then renamed)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        fit = self.fit_info
        names = fit.input_names
        config = {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "feature_schema": self.schema.to_dict(), "channels": self.channels,
            "tokenizer": self.cfg.model_dump(mode="json"),
            "preprocessing": {
                "input_names": names, "kept": [names[i] for i in fit.kept],
                "categories": [[names[fit.kept[p]] for p in cat] for cat in fit.categories],
                "dropped": fit.dropped, "silhouette": float(fit.silhouette),
            },
            "codebook_sizes": self.codebook_sizes,
        }
        write_atomic(d / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False).encode())
        tmp = d / f".{WEIGHTS_FILE}.tmp"
        torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, tmp)
        tmp.replace(d / WEIGHTS_FILE)
        write_atomic(d / METRICS_FILE, json.dumps(metrics, indent=2).encode())
        write_atomic(d / HISTORY_FILE, json.dumps(history).encode())

    @classmethod
    def from_checkpoint(cls, directory: str | Path) -> Tokenizer:
        """Load a checkpoint directory as a frozen eval-mode tokenizer."""
        d = Path(directory)
        if not d.is_dir():
            raise TokenizerError(f"{d}: no such tokenizer directory")
        missing = [f for f in REQUIRED_FILES if not (d / f).is_file()]
        if missing:
            raise TokenizerError(f"{d}: missing file(s) {', '.join(missing)} "
                                 "(not a complete tokenizer checkpoint)")
        cfg = _read_config(d / CONFIG_FILE)
        schema = FeatureSchema.from_dict(cfg["feature_schema"])
        pre = cfg["preprocessing"]
        names = list(pre["input_names"])
        if names != list(schema.tokenizer_input_names):
            raise TokenizerError(f"{d / CONFIG_FILE}: preprocessing.input_names disagree with "
                                 "the stored feature schema")
        index = {n: i for i, n in enumerate(names)}
        kept = [index[n] for n in pre["kept"]]
        pos = {n: p for p, n in enumerate(pre["kept"])}
        zeros = np.zeros(len(kept))
        fit = PreprocessingFit(names, kept, [[pos[n] for n in cat] for cat in pre["categories"]],
                               zeros, zeros, zeros, zeros, zeros + 1, dict(pre["dropped"]),
                               float(pre["silhouette"]))
        tok = cls(schema, fit, TokenizerConfig.model_validate(cfg["tokenizer"]),
                  int(cfg["channels"]))
        tok.load_state_dict(_read_weights(d / WEIGHTS_FILE), strict=True)
        tok.fit_info = _fit_with_statistics(fit, tok.pre)
        return tok.freeze()


def _fit_with_statistics(fit: PreprocessingFit, pre: Preprocessor) -> PreprocessingFit:
    """``fit`` with the statistics (median, clip bounds, mean, std [D_kept]) the loaded
    ``pre`` applies: the YAML holds names and categories, the weights file the numbers."""
    stats = {name: getattr(pre, name).double().numpy().copy()
             for name in ("median", "clip_low", "clip_high", "mean", "std")}
    return replace(fit, **stats)


def _read_config(path: Path) -> dict[str, Any]:
    cfg = parse_yaml(path.read_text(), path, TokenizerError)
    fmt = cfg.get("format") if isinstance(cfg, dict) else None
    if fmt != CHECKPOINT_FORMAT:
        raise TokenizerError(f"{path}: format is {fmt!r}, expected {CHECKPOINT_FORMAT!r}")
    if cfg.get("version") != CHECKPOINT_VERSION:
        raise TokenizerError(f"{path}: checkpoint version {cfg.get('version')!r}, this code reads "
                             f"version {CHECKPOINT_VERSION}")
    for key in ("feature_schema", "preprocessing", "tokenizer", "channels"):
        if key not in cfg:
            raise TokenizerError(f"{path}: missing key {key!r}")
    return cfg


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise TokenizerError(f"{path}: refused: the file carries objects other than tensors "
                             f"(weights_only load failed: {str(exc).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise TokenizerError(f"{path}: unreadable weights: {exc}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TokenizerError(f"{path}: expected a mapping of tensor names to tensors")
    return state
