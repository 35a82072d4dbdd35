"""Stage ``noa bootstrap``: the Phase 0 stand-ins the pipeline pulls from object storage.

``DIR/dataset.h5`` (operators, trajectories and their features), ``DIR/tokenizer/`` (trained on
that dataset's train split) and ``DIR/MANIFEST.json`` (size and sha256 of every file, written
last, so a directory with a manifest is complete).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from noa_core.config import load_config
from noa_core.data.generate import generate_dataset
from noa_core.data.manifest import write_manifest
from noa_core.features.io import extract_file
from noa_core.tokenizer.train import train_tokenizer

DATASET_FILE = "dataset.h5"
TOKENIZER_DIR = "tokenizer"


def bootstrap(preset: str | Path, out: str | Path, *, num_samples: int | None = None,
              seed: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Generate, extract features, train the tokenizer, write the manifest; returns a summary."""
    started = time.perf_counter()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    cfg = load_config(preset)
    plain = root / f".{DATASET_FILE}.plain"
    try:
        gen = generate_dataset(cfg, plain, num_samples=num_samples, seed=seed, progress=progress)
        extract_file(plain, root / DATASET_FILE, progress=progress)
    finally:
        plain.unlink(missing_ok=True)
    metrics = train_tokenizer(root / DATASET_FILE, root / TOKENIZER_DIR, progress=progress)
    manifest = write_manifest(root)
    return {"out": str(root), "num_samples": gen["num_samples"], "tokenizer": metrics,
            "manifest_files": len(manifest.entries),
            "seconds": round(time.perf_counter() - started, 1)}
