"""Whole-or-nothing file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` (str as UTF-8) to a hidden temporary beside ``path`` (named after this
    process, so concurrent writers never share one), then rename it over ``path`` (same
    directory, so the rename is atomic). A failed write leaves no temporary behind."""
    tmp = path.with_name(f".{path.name}.noa-tmp-{os.getpid()}")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
