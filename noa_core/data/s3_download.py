"""Verified, resumable download of one S3 object to one local file.

The object is fetched as byte ranges by a pool of threads that write into a partial file beside
the destination (``.NAME.noa-part``). The calling thread hashes the partial file in order as
ranges complete (from the page cache, so the bytes verified are the bytes on disk), which
overlaps hashing with the transfer. A small state file (``.NAME.noa-part.json``) records the
object's ETag and size and how many leading bytes are complete and hashed-ready; an interrupted
download resumes from there if, and only if, the object still has that ETag. Every range request
carries ``If-Match: ETag``, so an object replaced mid-transfer fails cleanly instead of mixing two
versions. Only a file whose size and SHA-256 match the manifest is renamed onto the destination;
on a mismatch the partial file and its state are deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noa_core.atomic import write_atomic
from noa_core.data.manifest import HASH_BLOCK, ManifestEntry
from noa_core.data.s3_client import S3Settings, S3Url, error_code, storage_error
from noa_core.errors import StorageError

PART_SUFFIX = ".noa-part"  # must contain a marker listed in manifest.TRANSIENT_MARKERS
STATE_SUFFIX = ".noa-part.json"
READ_BLOCK = 1 << 20  # bytes per socket read
STREAM_ATTEMPTS = 3  # re-requests of a range whose body broke off mid-stream

ByteCallback = Callable[[int], None]


@dataclass(frozen=True)
class DownloadResult:
    """``transferred``: bytes received over the network; ``resumed_from``: bytes reused."""

    transferred: int
    resumed_from: int


def partial_paths(dest: Path) -> tuple[Path, Path]:
    """The partial file and its resume state for ``dest`` (same directory: rename is atomic)."""
    return (dest.with_name(f".{dest.name}{PART_SUFFIX}"),
            dest.with_name(f".{dest.name}{STATE_SUFFIX}"))


def discard_partial(dest: Path) -> None:
    for p in partial_paths(dest):
        p.unlink(missing_ok=True)


def mismatch_error(url: str, what: str, expected: object, actual: object) -> StorageError:
    return StorageError(f"{url}: {what} mismatch: expected {expected}, got {actual} "
                        f"(the object differs from MANIFEST.json); nothing was written")


def head(client: Any, loc: S3Url, rel: str) -> tuple[int, str]:
    """Size (bytes) and ETag of an object; a missing bucket and a missing key are told apart."""
    url = loc.url(rel)
    try:
        resp = client.head_object(Bucket=loc.bucket, Key=loc.key(rel))
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            raise missing_error(client, loc, url) from None
        raise storage_error(exc, url, loc.bucket) from None
    return int(resp["ContentLength"]), str(resp["ETag"])


def missing_error(client: Any, loc: S3Url, url: str) -> StorageError:
    """After a 404 on an object: ``bucket does not exist`` or ``no such object``."""
    try:
        client.head_bucket(Bucket=loc.bucket)
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return StorageError(f"{url}: bucket {loc.bucket!r} does not exist")
        return storage_error(exc, url, loc.bucket)
    return StorageError(f"{url}: no such object")


def download_verified(client: Any, loc: S3Url, entry: ManifestEntry, dest: Path,
                      settings: S3Settings, on_bytes: ByteCallback) -> DownloadResult:
    """Fetch ``entry`` into ``dest``, verified against its size and SHA-256, resuming if possible.

    ``on_bytes(n)`` is called from worker threads with each block received; an exception it
    raises stops the download and leaves the partial file for a later resume.
    """
    url = loc.url(entry.path)
    size, etag = head(client, loc, entry.path)
    if size != entry.size:
        discard_partial(dest)
        raise mismatch_error(url, "size", f"{entry.size} bytes", f"{size} bytes")
    part, state_path = partial_paths(dest)
    start = _resume_offset(part, state_path, etag, size)
    fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, start)  # drop bytes past the last range known complete
        _save_state(state_path, etag, size, start)
        digest = _fetch_and_hash(client, loc, entry.path, etag, (start, size), fd, state_path,
                                 settings, on_bytes)
        os.fsync(fd)
    finally:
        os.close(fd)
    if digest != entry.sha256:
        discard_partial(dest)
        raise mismatch_error(url, "sha256", entry.sha256, digest)
    os.replace(part, dest)
    state_path.unlink(missing_ok=True)
    return DownloadResult(transferred=size - start, resumed_from=start)


def _resume_offset(part: Path, state_path: Path, etag: str, size: int) -> int:
    """Bytes of ``part`` that can be reused: those recorded complete for this very ETag."""
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        done = int(state["done"])
        same = state["etag"] == etag and int(state["size"]) == size
    except (OSError, ValueError, KeyError, TypeError):
        same, done = False, 0
    if same and part.is_file() and 0 <= done <= min(size, part.stat().st_size):
        return done
    part.unlink(missing_ok=True)
    return 0


def _save_state(state_path: Path, etag: str, size: int, done: int) -> None:
    write_atomic(state_path, json.dumps({"etag": etag, "size": size, "done": done}))


def _ranges(start: int, size: int, settings: S3Settings) -> list[tuple[int, int]]:
    """Half-open byte ranges covering [start, size): one if small, else chunk-sized pieces."""
    if size - start <= settings.multipart_threshold:
        return [(start, size)] if size > start else []
    step = settings.multipart_chunksize
    return [(lo, min(lo + step, size)) for lo in range(start, size, step)]


class _Stopped(Exception):
    """A range abandoned because another range (or the caller) failed first."""


def _fetch_and_hash(client: Any, loc: S3Url, rel: str, etag: str, span: tuple[int, int], fd: int,
                    state_path: Path, settings: S3Settings, on_bytes: ByteCallback) -> str:
    """Download ``span`` with a thread pool while hashing the file in order; return the digest.

    The first failure anywhere stops every range; the state file only ever advances over
    ranges that completed, so a later call resumes from a correct prefix. (It records bytes
    written, not bytes synced: after a machine crash the final SHA-256 check still catches a
    partial file that lost data.)
    """
    start, size = span
    stop = threading.Event()
    ranges = _ranges(start, size, settings)
    hasher = hashlib.sha256()
    workers = max(1, min(settings.max_concurrency, len(ranges)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="noa-s3") as pool:
        futures: list[Future[None]] = [
            pool.submit(_fetch_range, client, loc, rel, etag, r, fd, stop, on_bytes)
            for r in ranges]
        try:
            _hash_region(fd, 0, start, hasher)  # a resumed prefix, while the rest downloads
            for (lo, hi), fut in zip(ranges, futures, strict=True):
                fut.result()
                _hash_region(fd, lo, hi, hasher)
                _save_state(state_path, etag, size, hi)
        except BaseException as exc:
            stop.set()
            for fut in futures:
                fut.cancel()
            if isinstance(exc, _Stopped):  # report the failure that stopped this range
                raise _first_failure(futures) from None
            raise
    return hasher.hexdigest()


def _first_failure(futures: list[Future[None]]) -> BaseException:
    """The error of the range that failed first (waiting for ranges still unwinding)."""
    wait([f for f in futures if not f.cancelled()])
    for fut in futures:
        if not fut.cancelled():
            exc = fut.exception()
            if exc is not None and not isinstance(exc, _Stopped):
                return exc
    return StorageError("download stopped without a recorded cause")


def _hash_region(fd: int, lo: int, hi: int, hasher: Any) -> None:
    pos = lo
    while pos < hi:
        block = os.pread(fd, min(HASH_BLOCK, hi - pos), pos)
        if not block:
            raise StorageError(f"partial download ended at byte {pos}, expected {hi} bytes")
        hasher.update(block)
        pos += len(block)


def _fetch_range(client: Any, loc: S3Url, rel: str, etag: str, span: tuple[int, int], fd: int,
                 stop: threading.Event, on_bytes: ByteCallback) -> None:
    """Write bytes [lo, hi) of the object at the same offsets of ``fd``.

    botocore retries a failed request (standard mode); a body that breaks off after the headers
    is beyond its reach, so the missing tail is requested again, at most ``STREAM_ATTEMPTS``
    times.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        IncompleteReadError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    url = loc.url(rel)
    lo, hi = span
    cursor = [lo]  # next byte to write; advanced as blocks land, so a retry asks for the rest
    try:
        for attempt in range(1, STREAM_ATTEMPTS + 1):
            try:
                _stream_into(client, loc, rel, etag, cursor, hi, fd, stop, on_bytes)
                return
            except (IncompleteReadError, ReadTimeoutError, ResponseStreamingError) as exc:
                if attempt == STREAM_ATTEMPTS:
                    raise StorageError(f"{url}: transfer of bytes {lo}-{hi - 1} kept breaking "
                                       f"off after {attempt} attempts ({exc})") from None
            except (ClientError, BotoCoreError) as exc:
                raise storage_error(exc, url, loc.bucket) from None
    except _Stopped:
        raise
    except BaseException:
        stop.set()  # fail fast: the other ranges stop at their next block
        raise


def _stream_into(client: Any, loc: S3Url, rel: str, etag: str, cursor: list[int], hi: int,
                 fd: int, stop: threading.Event, on_bytes: ByteCallback) -> None:
    """One ranged GET of [cursor[0], hi) into ``fd``, advancing ``cursor[0]`` per block."""
    from botocore.exceptions import IncompleteReadError

    lo = cursor[0]
    if stop.is_set():
        raise _Stopped
    resp = client.get_object(Bucket=loc.bucket, Key=loc.key(rel), Range=f"bytes={lo}-{hi - 1}",
                             IfMatch=etag)
    body = resp["Body"]
    try:
        if int(resp["ContentLength"]) != hi - lo:
            raise StorageError(f"{loc.url(rel)}: asked for bytes {lo}-{hi - 1}, the server sent "
                               f"{resp['ContentLength']} bytes (Range not honoured)")
        for block in body.iter_chunks(READ_BLOCK):
            if stop.is_set():
                raise _Stopped
            if os.pwrite(fd, block, cursor[0]) != len(block):
                raise StorageError(f"{loc.url(rel)}: short write to the partial file at byte "
                                   f"{cursor[0]} (disk full?)")
            cursor[0] += len(block)
            on_bytes(len(block))
    finally:
        body.close()
    if cursor[0] != hi:
        raise IncompleteReadError(actual_bytes=cursor[0] - lo, expected_bytes=hi - lo)
