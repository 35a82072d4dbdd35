"""One interface for ``s3://bucket/prefix`` and local directories: verified pull and push.

- ``push(SRC, DST)`` publishes a local directory: it hashes every file, uploads (or copies) the
  files, and writes ``MANIFEST.json`` last, so a reader never sees a manifest before its files.
  If SRC already holds a manifest, the files must still match it (a stale manifest is refused,
  never silently replaced).
- ``pull(SRC, DST)`` reads SRC's manifest first, refuses any path that would land outside DST,
  then fetches every file to a temporary name, verifies size and SHA-256 and renames it into
  place. Files already present and verified are skipped; an interrupted S3 download resumes by
  byte range (``s3_download``). DST's manifest is removed at the start and written again only
  when every file is verified, so a DST with a manifest is always complete.

Failures raise ``StorageError`` with one line naming the object and, for a mismatch, the
expected against the actual value.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from noa_core.atomic import write_atomic
from noa_core.data.manifest import (
    HASH_BLOCK,
    MANIFEST_NAME,
    Manifest,
    ManifestEntry,
    build_manifest,
    destination_path,
    parse_manifest,
    sha256_file,
)
from noa_core.data.s3_client import (
    S3Settings,
    S3Url,
    error_code,
    is_s3_url,
    make_client,
    parse_s3_url,
    storage_error,
)
from noa_core.data.s3_download import ByteCallback, download_verified
from noa_core.errors import StorageError

SHA256_METADATA = "sha256"  # object metadata written by push, so a re-push can skip a file


@dataclass(frozen=True)
class TransferReport:
    """What a pull or push did. Sizes in bytes; ``bytes_transferred`` counts bytes actually
    moved (received over the network or copied), not bytes reused from a resumed partial file
    or from files already present."""

    source: str
    destination: str
    files: int
    files_transferred: int
    files_skipped: int
    files_resumed: int
    bytes_total: int
    bytes_transferred: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Progress:
    """Thread-safe byte counter feeding an optional tqdm bar and an optional user callback."""

    def __init__(self, total: int, desc: str, show: bool, callback: ByteCallback | None) -> None:
        from tqdm import tqdm

        self._lock = threading.Lock()
        self._callback = callback
        self.transferred = 0
        self._bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                         file=sys.stderr, disable=not show, leave=False)

    def moved(self, n: int) -> None:
        """``n`` bytes received or copied (called from worker threads)."""
        with self._lock:
            self.transferred += n
            self._bar.update(n)
            if self._callback is not None:
                self._callback(n)

    def reused(self, n: int) -> None:
        """``n`` bytes already present and verified: they advance the bar only."""
        with self._lock:
            self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


@contextmanager
def _progress(total: int, desc: str, show: bool,
              callback: ByteCallback | None) -> Iterator[_Progress]:
    prog = _Progress(total, desc, show, callback)
    try:
        yield prog
    finally:
        prog.close()


# ----------------------------------------------------------------------------------------- pull

def pull(src: str | Path, dst: str | Path, *, settings: S3Settings | None = None,
         progress: bool = False, on_bytes: ByteCallback | None = None) -> TransferReport:
    """Fetch the directory published at ``src`` (``s3://`` or local) into the local ``dst``.

    ``on_bytes(n)`` is called with every block moved (from worker threads); an exception it
    raises aborts the pull and leaves partial S3 downloads in place for a later resume.
    """
    src_s, dst_s = str(src), str(dst)
    if is_s3_url(dst_s):
        raise StorageError(f"{dst_s}: pull writes into a local directory (to publish to S3, "
                           f"use push)")
    settings = settings or S3Settings.from_env()
    started = time.perf_counter()
    dest_root = Path(dst_s)
    if is_s3_url(src_s):
        loc = parse_s3_url(src_s)
        client = make_client(settings)
        manifest = _read_s3_manifest(client, loc)

        def fetch(entry: ManifestEntry, dest: Path, prog: _Progress) -> int:
            got = download_verified(client, loc, entry, dest, settings, prog.moved)
            prog.reused(got.resumed_from)
            return got.resumed_from
    else:
        src_root = Path(src_s)
        manifest = _read_local_manifest(src_root)

        def fetch(entry: ManifestEntry, dest: Path, prog: _Progress) -> int:
            source = src_root / entry.path
            if not source.is_file():
                raise StorageError(f"{source}: no such file (listed in "
                                   f"{src_root / MANIFEST_NAME})")
            copy_verified(source, entry, dest, prog.moved)
            return 0

    targets = [(e, destination_path(dest_root, e.path)) for e in manifest.entries]
    dest_root.mkdir(parents=True, exist_ok=True)
    (dest_root / MANIFEST_NAME).unlink(missing_ok=True)  # DST is incomplete until the end
    skipped = resumed = 0
    with _progress(manifest.total_bytes, "pull", progress, on_bytes) as prog:
        for entry, dest in targets:
            if _present_and_verified(dest, entry):
                prog.reused(entry.size)
                skipped += 1
                continue
            dest.unlink(missing_ok=True)  # a file that fails its manifest never stays at DST
            dest.parent.mkdir(parents=True, exist_ok=True)
            resumed += fetch(entry, dest, prog) > 0
        write_atomic(dest_root / MANIFEST_NAME, manifest.to_json())
    return TransferReport(src_s, dst_s, len(targets), len(targets) - skipped, skipped, resumed,
                          manifest.total_bytes, prog.transferred,
                          time.perf_counter() - started)


def _present_and_verified(dest: Path, entry: ManifestEntry) -> bool:
    return (dest.is_file() and dest.stat().st_size == entry.size
            and sha256_file(dest) == entry.sha256)


def _read_s3_manifest(client: Any, loc: S3Url) -> Manifest:
    url = loc.url(MANIFEST_NAME)
    try:
        body = client.get_object(Bucket=loc.bucket, Key=loc.key(MANIFEST_NAME))["Body"]
        text = body.read()
    except Exception as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            raise StorageError(f"{url}: no such object (a published directory has a "
                               f"{MANIFEST_NAME}, written by `noa data push`)") from None
        raise storage_error(exc, url, loc.bucket) from None
    return parse_manifest(text, url)


def _read_local_manifest(root: Path) -> Manifest:
    path = root / MANIFEST_NAME
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise StorageError(f"{path}: no such file (a published directory has a "
                           f"{MANIFEST_NAME}, written by `noa data push`)") from None
    except OSError as exc:
        raise StorageError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_manifest(text, str(path))


def copy_verified(source: Path, entry: ManifestEntry, dest: Path, on_bytes: ByteCallback) -> None:
    """Copy ``source`` to ``dest`` through a temporary name, hashing while copying; rename only
    if size and SHA-256 match ``entry``."""
    tmp = dest.with_name(f".{dest.name}.noa-tmp-{os.getpid()}")
    hasher, size = hashlib.sha256(), 0
    try:
        with open(source, "rb") as fin, open(tmp, "wb") as fout:
            while block := fin.read(HASH_BLOCK):
                fout.write(block)
                hasher.update(block)
                size += len(block)
                on_bytes(len(block))
            fout.flush()
            os.fsync(fout.fileno())
        if size != entry.size:
            raise _mismatch(source, "size", f"{entry.size} bytes", f"{size} bytes")
        if hasher.hexdigest() != entry.sha256:
            raise _mismatch(source, "sha256", entry.sha256, hasher.hexdigest())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _mismatch(source: Path, what: str, expected: object, actual: object) -> StorageError:
    return StorageError(f"{source}: {what} mismatch: expected {expected}, got {actual} "
                        f"(the file differs from its manifest); nothing was written")


# ----------------------------------------------------------------------------------------- push

def push(src: str | Path, dst: str | Path, *, settings: S3Settings | None = None,
         progress: bool = False, on_bytes: ByteCallback | None = None) -> TransferReport:
    """Publish the local directory ``src`` at ``dst`` (``s3://`` or local) with its manifest.

    Objects already at ``dst`` with the same size and SHA-256 (S3 object metadata written by an
    earlier push) are not uploaded again. The manifest is written last.
    """
    src_s, dst_s = str(src), str(dst)
    if is_s3_url(src_s):
        raise StorageError(f"{src_s}: push reads a local directory (to fetch from S3, use pull)")
    started = time.perf_counter()
    root = Path(src_s)
    manifest = build_manifest(root)
    _check_existing_manifest(root, manifest)
    with _progress(manifest.total_bytes, "push", progress, on_bytes) as prog:
        if is_s3_url(dst_s):
            skipped = _push_s3(root, manifest, parse_s3_url(dst_s),
                               settings or S3Settings.from_env(), prog)
        else:
            skipped = _push_local(root, manifest, Path(dst_s), prog)
    n = len(manifest.entries)
    return TransferReport(src_s, dst_s, n, n - skipped, skipped, 0, manifest.total_bytes,
                          prog.transferred, time.perf_counter() - started)


def _check_existing_manifest(root: Path, built: Manifest) -> None:
    """A manifest already in SRC must still describe SRC's files exactly."""
    path = root / MANIFEST_NAME
    if not path.is_file():
        return
    stored = _read_local_manifest(root)
    hint = "the directory changed after its manifest was written; delete the stale manifest"
    for entry in stored.entries:
        now = built.find(entry.path)
        if now is None:
            raise StorageError(f"{path}: lists {entry.path!r}, which is missing ({hint})")
        if now.sha256 != entry.sha256:
            raise StorageError(f"{path}: {entry.path} sha256 mismatch: expected "
                               f"{entry.sha256}, got {now.sha256} ({hint})")
    extra = [e.path for e in built.entries if stored.find(e.path) is None]
    if extra:
        raise StorageError(f"{path}: does not list {extra[0]!r} ({hint})")


def _push_local(root: Path, manifest: Manifest, dest_root: Path, prog: _Progress) -> int:
    if dest_root.resolve() == root.resolve():
        raise StorageError(f"{dest_root}: push destination is the source directory")
    dest_root.mkdir(parents=True, exist_ok=True)
    (dest_root / MANIFEST_NAME).unlink(missing_ok=True)
    skipped = 0
    for entry in manifest.entries:
        dest = destination_path(dest_root, entry.path)
        if _present_and_verified(dest, entry):
            prog.reused(entry.size)
            skipped += 1
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        copy_verified(root / entry.path, entry, dest, prog.moved)
    write_atomic(dest_root / MANIFEST_NAME, manifest.to_json())
    return skipped


def _push_s3(root: Path, manifest: Manifest, loc: S3Url, settings: S3Settings,
             prog: _Progress) -> int:
    from boto3.s3.transfer import TransferConfig

    client = make_client(settings)
    try:
        client.head_bucket(Bucket=loc.bucket)
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            raise StorageError(f"{loc.url()}: bucket {loc.bucket!r} does not exist") from None
        raise storage_error(exc, loc.url(), loc.bucket) from None
    config = TransferConfig(multipart_threshold=settings.multipart_threshold,
                            multipart_chunksize=settings.multipart_chunksize,
                            max_concurrency=settings.max_concurrency)
    skipped = 0
    for entry in manifest.entries:
        if _already_uploaded(client, loc, entry):
            prog.reused(entry.size)
            skipped += 1
            continue
        _upload(client, loc, root / entry.path, entry, config, prog.moved)
    _put(client, loc, MANIFEST_NAME, manifest.to_json().encode("utf-8"))
    return skipped


def _already_uploaded(client: Any, loc: S3Url, entry: ManifestEntry) -> bool:
    try:
        resp = client.head_object(Bucket=loc.bucket, Key=loc.key(entry.path))
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise storage_error(exc, loc.url(entry.path), loc.bucket) from None
    return (int(resp["ContentLength"]) == entry.size
            and resp.get("Metadata", {}).get(SHA256_METADATA) == entry.sha256)


def _upload(client: Any, loc: S3Url, path: Path, entry: ManifestEntry, config: Any,
            on_bytes: Callable[[int], None]) -> None:
    """Upload one file (multipart above the threshold, parts in parallel)."""
    url = loc.url(entry.path)
    try:
        client.upload_file(str(path), loc.bucket, loc.key(entry.path), Config=config,
                           ExtraArgs={"Metadata": {SHA256_METADATA: entry.sha256}},
                           Callback=on_bytes)
    except Exception as exc:
        raise storage_error(_client_error_in(exc), url, loc.bucket) from None


def _put(client: Any, loc: S3Url, rel: str, data: bytes) -> None:
    try:
        client.put_object(Bucket=loc.bucket, Key=loc.key(rel), Body=data,
                          ContentType="application/json")
    except Exception as exc:
        raise storage_error(exc, loc.url(rel), loc.bucket) from None


def _client_error_in(exc: BaseException) -> BaseException:
    """boto3 wraps an upload's ``ClientError`` in ``S3UploadFailedError``: find the original."""
    seen: BaseException | None = exc
    while seen is not None:
        if error_code(seen):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def read_manifest(src: str | Path, settings: S3Settings | None = None) -> Manifest:
    """The manifest published at ``src`` (``s3://`` or local), validated."""
    src_s = str(src)
    if is_s3_url(src_s):
        return _read_s3_manifest(make_client(settings or S3Settings.from_env()),
                                 parse_s3_url(src_s))
    return _read_local_manifest(Path(src_s))


SMALL_OBJECT_LIMIT = 1 << 20  # bytes: configuration files, never data


def read_small(uri: str | Path, settings: S3Settings | None = None,
               limit: int = SMALL_OBJECT_LIMIT) -> bytes:
    """The bytes of one small file (a criteria or config file) at ``s3://bucket/key`` or a path.

    Refuses objects larger than ``limit`` bytes (data goes through ``pull`` and its manifest).
    """
    text = str(uri)
    if not is_s3_url(text):
        path = Path(text)
        if not path.is_file():
            raise StorageError(f"{path}: no such file")
        size = path.stat().st_size
        if size > limit:
            raise StorageError(f"{path}: {size} bytes; a configuration file is at most {limit}")
        return path.read_bytes()
    loc = parse_s3_url(text)
    if not loc.prefix:
        raise StorageError(f"{text}: expected s3://bucket/key of a file")
    try:
        obj = loc.bucket, loc.prefix
        client = make_client(settings or S3Settings.from_env())
        size = int(client.head_object(Bucket=obj[0], Key=obj[1])["ContentLength"])
        if size > limit:
            raise StorageError(f"{text}: {size} bytes; a configuration file is at most {limit}")
        return client.get_object(Bucket=obj[0], Key=obj[1])["Body"].read()
    except StorageError:
        raise
    except Exception as exc:
        raise storage_error(exc, text, loc.bucket) from None


__all__ = ["S3Settings", "TransferReport", "pull", "push", "read_manifest", "read_small"]
