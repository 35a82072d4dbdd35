"""Helpers for the tracking tests: the stand-in model's type and lineage values."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from noa_core.tracking import LINEAGE_TAGS


@dataclass(frozen=True)
class StandIn:
    """The stand-in for the NOA: ``module`` (eval mode), its ONNX file and an input example."""

    module: torch.nn.Module
    onnx_path: Path
    example: dict[str, np.ndarray]


def lineage(tag: str) -> dict[str, str]:
    """Lineage for one pipeline run, distinct per ``tag``."""
    def h(x: str) -> str:
        return hashlib.sha256(f"{tag}/{x}".encode()).hexdigest()

    values = {"pipeline_run_id": f"kfp-run-{tag}", "image_digest": f"sha256:{h('image')}",
              "git_commit": h("git")[:40], "dataset_sha256": h("dataset"),
              "tokenizer_sha256": h("tokenizer"), "criteria_hash": h("criteria")}
    assert set(values) == set(LINEAGE_TAGS)
    return values
