"""``MANIFEST.json``: deterministic bytes, what is listed, and what a reader refuses."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from s3_test_support import write_tree

from noa_core.data.manifest import (
    MANIFEST_NAME,
    build_manifest,
    parse_manifest,
    safe_relative_path,
    write_manifest,
)
from noa_core.errors import StorageError


def test_manifest_lists_sizes_and_digests_and_round_trips(tmp_path: Path) -> None:
    files = write_tree(tmp_path, {"b.bin": b"\x00" * 10, "a/z.txt": b"z", "a/MANIFEST.json": b"{}"})
    (tmp_path / ".b.bin.noa-part").write_bytes(b"partial")  # a transfer leftover
    (tmp_path / "a" / ".x.noa-tmp-1").write_bytes(b"temporary")
    written = write_manifest(tmp_path)
    assert [(e.path, e.size, e.sha256) for e in written.entries] == [
        (p, len(files[p]), hashlib.sha256(files[p]).hexdigest())
        for p in ("a/MANIFEST.json", "a/z.txt", "b.bin")]
    text = (tmp_path / MANIFEST_NAME).read_text()
    assert parse_manifest(text, "m") == written
    assert write_manifest(tmp_path).to_json() == text, "no timestamps: same files, same bytes"
    assert build_manifest(tmp_path) == written, "the top-level manifest is never listed"


@pytest.mark.parametrize("path", ["../x", "/abs", "a/../../x", "a/./b", "a//b", "", "x\\y",
                                  "MANIFEST.json", "d/.f.noa-part", 3, None])
def test_unsafe_paths_are_refused(path: object) -> None:
    with pytest.raises(StorageError, match="refusing to pull"):
        safe_relative_path(path, "origin")


def test_duplicate_paths_are_refused() -> None:
    entry = '{"path": "a", "size": 0, "sha256": "' + "0" * 64 + '"}'
    with pytest.raises(StorageError, match="listed twice"):
        parse_manifest('{"version": 1, "files": [' + entry + ", " + entry + "]}", "m")


def test_publishing_a_file_instead_of_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(StorageError, match="expected a directory to publish, found a file"):
        build_manifest(tmp_path / "f")
