"""Pull the Phase 0 artifacts (operator dataset and frozen tokenizer) the pipeline starts from.

A Phase 0 prefix is what ``noa bootstrap`` writes and ``noa data push`` publishes:
``{dataset.h5, tokenizer/, MANIFEST.json}``. The tokenizer may also live under a prefix of its
own (its files at the top, with its own ``MANIFEST.json``). Everything is pulled into a staging
directory beside the destinations, verified file by file against the manifest, the dataset is
schema-checked, and only then are the two destinations renamed into place: a failed pull
leaves neither destination behind.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from noa_core.data.manifest import MANIFEST_NAME, parse_manifest
from noa_core.data.s3_client import S3Settings
from noa_core.data.storage import TransferReport, pull
from noa_core.data.validate import check_dataset
from noa_core.errors import StorageError

DATASET_FILE = "dataset.h5"
TOKENIZER_DIR = "tokenizer"
TOKENIZER_WEIGHTS = "weights.pt"


def pull_phase0(src: str, dataset_out: str | Path, tokenizer_out: str | Path, *,
                tokenizer_src: str | None = None, settings: S3Settings | None = None,
                progress: bool = False) -> dict[str, Any]:
    """Fetch ``src`` (``s3://`` or a local directory) into ``dataset_out`` and ``tokenizer_out``.

    Args:
        src: a Phase 0 prefix holding ``dataset.h5`` and ``MANIFEST.json`` (and ``tokenizer/``
            unless ``tokenizer_src`` names another prefix).
        dataset_out: the file the dataset lands in; tokenizer_out: the tokenizer directory.
        tokenizer_src: a prefix holding only the tokenizer's files and their manifest; None or
            empty: the ``tokenizer/`` folder of ``src``.
    Returns:
        ``{"dataset", "tokenizer", "dataset_sha256", "tokenizer_sha256", "bytes", "files"}``;
        ``tokenizer_sha256`` is the sha256 of the tokenizer's weights (what checkpoints record).
    """
    dataset_out, tokenizer_out = Path(dataset_out), Path(tokenizer_out)
    for dest in (dataset_out, tokenizer_out):
        if dest.exists() and not (dest.is_dir() and not any(dest.iterdir())):
            raise StorageError(f"{dest}: already exists; the pull never overwrites a destination")
    dataset_out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".phase0-", dir=dataset_out.parent))
    try:
        reports = [pull(src, staging / "main", settings=settings, progress=progress)]
        tok_dir = staging / "main" / TOKENIZER_DIR
        tok_manifest = (staging / "main", f"{TOKENIZER_DIR}/{TOKENIZER_WEIGHTS}")
        if tokenizer_src:
            reports.append(pull(tokenizer_src, staging / "tok", settings=settings,
                                progress=progress))
            tok_dir = staging / "tok"
            tok_manifest = (tok_dir, TOKENIZER_WEIGHTS)
        dataset = staging / "main" / DATASET_FILE
        _require(dataset, src, "the operator dataset")
        _require(tok_dir / TOKENIZER_WEIGHTS, tokenizer_src or f"{src}/{TOKENIZER_DIR}",
                 "the tokenizer's weights")
        check_dataset(dataset)
        # The pull verified every file against its manifest: the digests are read from there,
        # not computed again over the (gigabyte-sized) dataset.
        summary = {"dataset_sha256": _manifest_sha256(staging / "main", DATASET_FILE),
                   "tokenizer_sha256": _manifest_sha256(*tok_manifest)}
        (tok_dir / MANIFEST_NAME).unlink(missing_ok=True)  # the tokenizer dir is its files only
        _place(dataset, dataset_out)
        _place(tok_dir, tokenizer_out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"dataset": str(dataset_out), "tokenizer": str(tokenizer_out), **summary,
            "bytes": sum(r.bytes_total for r in reports), "files": _files(reports),
            "seconds": round(sum(r.seconds for r in reports), 1)}


def _manifest_sha256(root: Path, rel: str) -> str:
    """The sha256 the verified pull into ``root`` checked ``rel`` against."""
    manifest = root / MANIFEST_NAME
    entry = parse_manifest(manifest.read_bytes(), str(manifest)).find(rel)
    if entry is None:
        raise StorageError(f"{manifest}: lists no {rel}")
    return entry.sha256


def _require(path: Path, origin: str, what: str) -> None:
    if not path.is_file():
        raise StorageError(f"{origin}: its {MANIFEST_NAME} lists no {path.name} ({what})")


def _place(source: Path, dest: Path) -> None:
    """Move a verified file or directory to its destination (an empty directory is replaced)."""
    if dest.is_dir():
        dest.rmdir()
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(dest))  # a rename on one filesystem, a copy across two


def _files(reports: list[TransferReport]) -> int:
    return sum(r.files for r in reports)
