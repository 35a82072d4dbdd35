"""Push and pull through moto's S3 server over HTTP: round trips, multipart, verification,
skipping and byte-range resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from s3_test_support import leftovers, random_bytes, write_tree

from noa_core.data.manifest import MANIFEST_NAME, build_manifest, parse_manifest
from noa_core.data.s3_client import MiB, S3Settings
from noa_core.data.storage import pull, push
from noa_core.errors import StorageError


class Interrupted(Exception):
    """Raised from the byte callback to stop a pull mid-transfer, like Ctrl-C or a killed pod."""


def _tree(root: Path) -> dict[str, bytes]:
    return write_tree(root, {
        "dataset.h5": random_bytes(300_000, seed=1),
        "tokenizer/weights.safetensors": random_bytes(70_000, seed=2),
        "tokenizer/config.yaml": b"levels: 3\n",
        "tokenizer/empty.txt": b"",
    })


def _read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != MANIFEST_NAME}


def test_push_then_pull_round_trip(tmp_path: Path, s3: Any, bucket: str,
                                   settings: S3Settings) -> None:
    files = _tree(tmp_path / "src")
    url = f"s3://{bucket}/phase0/v1"
    report = push(tmp_path / "src", url + "/", settings=settings)
    assert (report.files, report.files_transferred, report.bytes_transferred) == (
        4, 4, sum(len(b) for b in files.values()))

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {f"phase0/v1/{k}" for k in files} | {f"phase0/v1/{MANIFEST_NAME}"}
    remote = s3.get_object(Bucket=bucket, Key=f"phase0/v1/{MANIFEST_NAME}")["Body"].read()
    assert parse_manifest(remote, "remote") == build_manifest(tmp_path / "src")

    got = pull(url, tmp_path / "dst", settings=settings)
    assert _read_tree(tmp_path / "dst") == files
    assert (tmp_path / "dst" / MANIFEST_NAME).read_bytes() == remote
    assert (got.files_transferred, got.files_skipped, got.bytes_transferred) == (
        4, 0, report.bytes_total)
    assert leftovers(tmp_path / "dst") == []

    again = pull(url, tmp_path / "dst", settings=settings)
    assert (again.files_skipped, again.bytes_transferred) == (4, 0)
    repush = push(tmp_path / "src", url, settings=settings)
    assert (repush.files_skipped, repush.bytes_transferred) == (4, 0)


def test_a_file_above_the_multipart_threshold(tmp_path: Path, s3: Any, bucket: str,
                                               settings: S3Settings) -> None:
    big = random_bytes(12 * MiB + 123, seed=3)
    write_tree(tmp_path / "src", {"big.bin": big})
    push(tmp_path / "src", f"s3://{bucket}/p", settings=settings)
    etag = s3.head_object(Bucket=bucket, Key="p/big.bin")["ETag"]
    assert etag.strip('"').endswith("-3"), "three 5 MiB parts: a multipart upload"

    report = pull(f"s3://{bucket}/p", tmp_path / "dst", settings=settings)
    assert (tmp_path / "dst" / "big.bin").read_bytes() == big
    assert report.bytes_transferred == len(big)


@pytest.mark.parametrize("same_size", [True, False], ids=["same-size", "other-size"])
def test_object_changed_after_its_manifest_is_detected(tmp_path: Path, s3: Any, bucket: str,
                                                       settings: S3Settings,
                                                       same_size: bool) -> None:
    original = random_bytes(2 * MiB, seed=4)
    write_tree(tmp_path / "src", {"data.bin": original, "ok.txt": b"fine"})
    push(tmp_path / "src", f"s3://{bucket}/p", settings=settings)
    tampered = bytearray(original)
    tampered[MiB] ^= 0xFF
    body = bytes(tampered) if same_size else bytes(tampered) + b"x"
    s3.put_object(Bucket=bucket, Key="p/data.bin", Body=body)

    with pytest.raises(StorageError) as err:
        pull(f"s3://{bucket}/p", tmp_path / "dst", settings=settings)
    expected = build_manifest(tmp_path / "src").find("data.bin")
    assert expected is not None
    msg = str(err.value)
    assert f"s3://{bucket}/p/data.bin" in msg and "\n" not in msg
    if same_size:
        import hashlib

        assert (f"sha256 mismatch: expected {expected.sha256}, "
                f"got {hashlib.sha256(body).hexdigest()}") in msg
    else:
        assert f"size mismatch: expected {len(original)} bytes, got {len(body)} bytes" in msg
    dst = tmp_path / "dst"
    assert not (dst / "data.bin").exists()
    assert not (dst / MANIFEST_NAME).exists(), "an incomplete destination has no manifest"
    assert leftovers(dst) == []


def test_interrupted_download_resumes_where_it_stopped(tmp_path: Path, bucket: str,
                                                        settings: S3Settings) -> None:
    data = random_bytes(12 * MiB, seed=5)  # ranges [0, 5), [5, 10), [10, 12) MiB
    write_tree(tmp_path / "src", {"big.bin": data})
    url = f"s3://{bucket}/p"
    push(tmp_path / "src", url, settings=settings)

    received = 0

    def stop_in_third_range(n: int) -> None:
        nonlocal received
        received += n
        if received > 10 * MiB:
            raise Interrupted

    one_at_a_time = S3Settings(**{**settings.__dict__, "max_concurrency": 1})
    with pytest.raises(Interrupted):
        pull(url, tmp_path / "dst", settings=one_at_a_time, on_bytes=stop_in_third_range)
    assert not (tmp_path / "dst" / "big.bin").exists()
    assert leftovers(tmp_path / "dst") == [".big.bin.noa-part", ".big.bin.noa-part.json"]

    report = pull(url, tmp_path / "dst", settings=settings)
    assert report.files_resumed == 1
    assert report.bytes_transferred == 2 * MiB, "only the range not yet complete is fetched"
    assert (tmp_path / "dst" / "big.bin").read_bytes() == data
    assert leftovers(tmp_path / "dst") == []


def test_resume_is_refused_when_the_object_changed(tmp_path: Path, bucket: str,
                                                   settings: S3Settings) -> None:
    url = f"s3://{bucket}/p"
    write_tree(tmp_path / "src", {"big.bin": random_bytes(12 * MiB, seed=6)})
    push(tmp_path / "src", url, settings=settings)

    def stop_early(n: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        pull(url, tmp_path / "dst", settings=settings, on_bytes=stop_early)
    new = random_bytes(12 * MiB, seed=7)
    write_tree(tmp_path / "src", {"big.bin": new})
    (tmp_path / "src" / MANIFEST_NAME).unlink(missing_ok=True)
    push(tmp_path / "src", url, settings=settings)  # new object, new ETag, new manifest

    report = pull(url, tmp_path / "dst", settings=settings)
    assert (report.files_resumed, report.bytes_transferred) == (0, len(new))
    assert (tmp_path / "dst" / "big.bin").read_bytes() == new


def test_pull_replaces_a_stale_local_file(tmp_path: Path, bucket: str,
                                          settings: S3Settings) -> None:
    files = _tree(tmp_path / "src")
    push(tmp_path / "src", f"s3://{bucket}/p", settings=settings)
    write_tree(tmp_path / "dst", {"dataset.h5": b"an older dataset"})
    report = pull(f"s3://{bucket}/p", tmp_path / "dst", settings=settings)
    assert report.files_transferred == 4
    assert _read_tree(tmp_path / "dst") == files


def test_local_push_and_pull(tmp_path: Path) -> None:
    files = _tree(tmp_path / "src")
    push(tmp_path / "src", tmp_path / "published")
    manifest = json.loads((tmp_path / "published" / MANIFEST_NAME).read_text())
    assert [f["path"] for f in manifest["files"]] == sorted(files)
    report = pull(tmp_path / "published", tmp_path / "dst")
    assert _read_tree(tmp_path / "dst") == files and report.files_transferred == 4

    (tmp_path / "published" / "tokenizer" / "config.yaml").write_bytes(b"levels: 4\n")
    with pytest.raises(StorageError, match=r"config\.yaml: sha256 mismatch: expected [0-9a-f]{64}"
                                           r", got [0-9a-f]{64}"):
        pull(tmp_path / "published", tmp_path / "dst2")
    assert not (tmp_path / "dst2" / "tokenizer" / "config.yaml").exists()
    assert leftovers(tmp_path / "dst2") == []
