"""``MANIFEST.json``: the size and SHA-256 of every file of a published directory.

A manifest lists files by their path relative to the directory, in POSIX form, sorted, with no
timestamp, so the same files always give the same manifest bytes. It is the contract between
``noa data push`` (which writes it last, after every file) and ``noa data pull`` (which reads it
first and verifies every file against it). A path that is absolute, empty, or that climbs out of
the directory (``..``) is refused on read, so a manifest can never make a pull write outside its
destination.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from noa_core.atomic import write_atomic
from noa_core.errors import StorageError

MANIFEST_NAME = "MANIFEST.json"
MANIFEST_VERSION = 1
# Names that are never published: the manifest itself and transfer leftovers (partial downloads
# and their resume state, written by ``s3_download``, and temporary names of atomic writes).
TRANSIENT_MARKERS: tuple[str, ...] = (".noa-part", ".noa-tmp")
HASH_BLOCK = 4 << 20  # bytes read per hashing step


@dataclass(frozen=True)
class ManifestEntry:
    """One file: ``path`` relative to the manifest's directory (POSIX), ``size`` in bytes."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """Every file of a directory, sorted by path."""

    entries: tuple[ManifestEntry, ...]

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries)

    def to_json(self) -> str:
        files = [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in self.entries]
        return json.dumps({"version": MANIFEST_VERSION, "files": files}, indent=2) + "\n"

    def find(self, path: str) -> ManifestEntry | None:
        return next((e for e in self.entries if e.path == path), None)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks (hashlib releases the GIL per block)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def is_transient(name: str) -> bool:
    """True for transfer leftovers (partial downloads, temporary names): never published."""
    return any(m in name for m in TRANSIENT_MARKERS)


def list_files(root: Path) -> list[Path]:
    """Regular files under ``root`` (recursively, sorted), without the manifest and leftovers."""
    if not root.is_dir():
        raise StorageError(f"{root}: expected a directory to publish, found "
                           f"{'a file' if root.exists() else 'nothing'}")
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            top_manifest = name == MANIFEST_NAME and Path(dirpath) == root
            if top_manifest or is_transient(name):
                continue
            if p.is_file():
                found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def build_manifest(root: Path) -> Manifest:
    """Hash every file under ``root`` (the manifest and transfer leftovers excluded)."""
    entries = []
    for p in list_files(root):
        entries.append(ManifestEntry(path=p.relative_to(root).as_posix(), size=p.stat().st_size,
                                     sha256=sha256_file(p)))
    return Manifest(tuple(entries))


def write_manifest(root: Path) -> Manifest:
    """Build the manifest of ``root`` and write ``root/MANIFEST.json`` atomically."""
    manifest = build_manifest(root)
    write_atomic(root / MANIFEST_NAME, manifest.to_json())
    return manifest



def safe_relative_path(path: Any, origin: str) -> str:
    """Return ``path`` if it is a plain relative POSIX path inside the directory, else raise.

    Refused: non-strings, empty paths, absolute paths, backslashes, NUL, ``.``/``..`` or empty
    components, and the manifest's own name (a pull would overwrite the manifest it verifies).
    """
    bad = None
    if not isinstance(path, str) or not path:
        bad = "is not a non-empty string"
    elif path.startswith("/") or "\\" in path or "\x00" in path:
        bad = "is absolute or not a POSIX path"
    elif any(part in ("", ".", "..") for part in path.split("/")):
        bad = "has an empty, '.' or '..' component and would land outside the destination"
    elif path == MANIFEST_NAME or is_transient(PurePosixPath(path).name):
        bad = "is a reserved name"
    if bad:
        raise StorageError(f"{origin}: file path {path!r} {bad}; refusing to pull")
    return path


def parse_manifest(text: str | bytes, origin: str) -> Manifest:
    """Parse and validate manifest bytes read from ``origin`` (named in every error)."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StorageError(f"{origin}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("version") != MANIFEST_VERSION:
        raise StorageError(f"{origin}: expected a manifest object with \"version\": "
                           f"{MANIFEST_VERSION}")
    files = doc.get("files")
    if not isinstance(files, list):
        raise StorageError(f"{origin}: expected \"files\" to be a list")
    entries: dict[str, ManifestEntry] = {}
    for i, item in enumerate(files):
        entry = _parse_entry(item, f"{origin}: files[{i}]")
        if entry.path in entries:
            raise StorageError(f"{origin}: file path {entry.path!r} is listed twice")
        entries[entry.path] = entry
    return Manifest(tuple(sorted(entries.values(), key=lambda e: e.path)))


def _parse_entry(item: Any, where: str) -> ManifestEntry:
    if not isinstance(item, dict):
        raise StorageError(f"{where}: expected an object with path, size, sha256")
    path = safe_relative_path(item.get("path"), where)
    size, digest = item.get("size"), item.get("sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise StorageError(f"{where} ({path}): size must be an integer ≥ 0, got {size!r}")
    if (not isinstance(digest, str) or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)):
        raise StorageError(f"{where} ({path}): sha256 must be 64 lowercase hex digits")
    return ManifestEntry(path=path, size=size, sha256=digest)


def destination_path(dest_root: Path, rel: str) -> Path:
    """``dest_root/rel``, checked once more after resolving links to lie inside ``dest_root``."""
    root = dest_root.resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise StorageError(f"{dest_root}: file path {rel!r} resolves outside the destination "
                           f"(through a link); refusing to pull")
    return root / rel
