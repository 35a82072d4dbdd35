"""Stage ``noa replay --tokenizer DIR``: replay, then store ground-truth features and tokens.

The replay file gains the feature groups (window [0, H], ``noa_core.features.io``) and
``tokens/ids`` [N, Q] (int64, one token per codebook, category-major) with the tokenizer's
weights sha256, codebook sizes and feature-schema digest as attributes. The file appears at
``out`` only once all of it is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import torch

from noa_core.data.manifest import sha256_file
from noa_core.data.replay_stage import replay_dataset
from noa_core.features.io import add_feature_groups, read_features
from noa_core.tokenizer.tokenizer import WEIGHTS_FILE, Tokenizer

TOKENS = "tokens/ids"
ATTR_TOKENIZER_SHA256 = "tokenizer_weights_sha256"
ATTR_CODEBOOK_SIZES = "codebook_sizes"
ATTR_SCHEMA_DIGEST = "feature_schema_digest"
TOKEN_BATCH = 64


def write_tokens(path: Path, tok: Tokenizer, tokenizer_dir: Path) -> int:
    """Tokens of the feature groups stored in ``path``, written beside them; returns Q."""
    features, schema = read_features(path)
    tok.check_schema(schema, f"{path}: features")
    with torch.no_grad():
        ids = torch.cat([tok.tokens(features.rows(slice(lo, lo + TOKEN_BATCH)))
                         for lo in range(0, len(features), TOKEN_BATCH)])
    with h5py.File(path, "r+") as f:
        if TOKENS in f:
            del f[TOKENS]
        ds = f.create_dataset(TOKENS, data=ids.numpy().astype("int64"))
        ds.attrs[ATTR_TOKENIZER_SHA256] = sha256_file(tokenizer_dir / WEIGHTS_FILE)
        ds.attrs[ATTR_CODEBOOK_SIZES] = json.dumps(tok.codebook_sizes)
        ds.attrs[ATTR_SCHEMA_DIGEST] = schema.digest()
    return int(ids.shape[1])


def replay_with_ground_truth(dataset: str | Path, out: str | Path, tokenizer_dir: str | Path,
                             *, progress: bool = True, **replay: Any) -> dict[str, Any]:
    """``replay_dataset`` into ``out`` plus ground-truth features and tokens."""
    tokenizer_dir = Path(tokenizer_dir)
    tok = Tokenizer.from_checkpoint(tokenizer_dir)  # fail before the replay, not after
    out = Path(out)
    tmp = out.with_name(f".{out.name}.gt-tmp")
    try:
        summary = replay_dataset(dataset, tmp, progress=progress, **replay)
        summary["features"] = add_feature_groups(tmp, progress=progress)
        summary["codebooks"] = write_tokens(tmp, tok, tokenizer_dir)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    summary["out"] = str(out)
    return summary
