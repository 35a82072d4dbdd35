"""Lineage values a stage can establish by itself (the keys of ``LINEAGE_TAGS``).

- ``dataset_sha256``: sha256 of the Phase 0 ``dataset.h5`` the model learnt from. A replay file
  records it (``/metadata`` attribute ``source_sha256``, written by ``noa replay``); a dataset
  file given directly as the replay is hashed itself.
- ``tokenizer_sha256``: sha256 of the frozen tokenizer's ``weights.pt`` (the identity the
  checkpoint, ``noa evaluate`` and the exported graph's metadata already record and check).
- ``git_commit``: ``$NOA_GIT_COMMIT`` when set (an image built from a known revision), else
  ``git rev-parse HEAD`` of the source checkout the package runs from, suffixed ``-dirty`` when
  tracked files differ from it; else unknown.

Whatever cannot be established is ``LINEAGE_UNKNOWN``, never a made-up value.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from noa_core.tracking.constants import ENV_GIT_COMMIT, LINEAGE_UNKNOWN

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_GIT_TIMEOUT_S = 10.0  # a hung git (network filesystem) must not stall a stage


def is_sha256(value: object) -> bool:
    """True for 64 lowercase hex digits."""
    return isinstance(value, str) and bool(_HEX64.match(value))


def dataset_sha256(replay: str | Path) -> str:
    """sha256 of the dataset behind ``replay`` (module docstring), or ``LINEAGE_UNKNOWN`` for a
    replay file that does not record a valid one."""
    from noa_core.data import layout as L
    from noa_core.data.hdf5_reader import DatasetReader
    from noa_core.data.manifest import sha256_file

    with DatasetReader(replay) as reader:
        kind = reader.kind
        recorded = reader.attrs.get(L.ATTR_SOURCE_SHA256)
    if kind != L.KIND_REPLAY:
        return sha256_file(Path(replay))
    text = recorded.decode() if isinstance(recorded, bytes) else recorded
    return text if is_sha256(text) else LINEAGE_UNKNOWN


def tokenizer_sha256(tokenizer_dir: str | Path) -> str:
    """sha256 of ``tokenizer_dir/weights.pt``."""
    from noa_core.data.manifest import sha256_file
    from noa_core.tokenizer.tokenizer import WEIGHTS_FILE

    return sha256_file(Path(tokenizer_dir) / WEIGHTS_FILE)


def git_commit() -> str:
    """The commit the running code comes from (module docstring), or ``LINEAGE_UNKNOWN``."""
    from_env = os.environ.get(ENV_GIT_COMMIT, "").strip()
    if from_env:
        return from_env
    source = Path(__file__).resolve().parent
    try:
        # this very file must be tracked there: an installed copy inside some other repository
        # (a virtual environment in a project) must not report that repository's commit
        _git(source, "ls-files", "--error-unmatch", Path(__file__).name)
        head = _git(source, "rev-parse", "HEAD")
        dirty = subprocess.run(["git", "-C", str(source), "diff", "--quiet", "HEAD", "--"],
                               capture_output=True, timeout=_GIT_TIMEOUT_S).returncode == 1
    except (OSError, subprocess.SubprocessError):
        return LINEAGE_UNKNOWN
    if not re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", head):
        return LINEAGE_UNKNOWN
    return f"{head}-dirty" if dirty else head


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                          timeout=_GIT_TIMEOUT_S, check=True)
    return done.stdout.strip()


def training_lineage(replay: str | Path, tokenizer_dir: str | Path,
                     pipeline_run_id: str | None = None) -> dict[str, str]:
    """What training knows of its lineage: dataset and tokenizer sha256, git commit, and the
    pipeline run when given (a subset of ``LINEAGE_TAGS``' keys)."""
    out = {"dataset_sha256": dataset_sha256(replay),
           "tokenizer_sha256": tokenizer_sha256(tokenizer_dir), "git_commit": git_commit()}
    if pipeline_run_id:
        out["pipeline_run_id"] = pipeline_run_id
    return out
