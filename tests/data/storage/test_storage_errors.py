"""One-line errors for a missing bucket, a missing key, a bad manifest and unsafe paths; nothing
is written outside the destination and no credential appears in any message."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from s3_test_support import SECRET_KEY, leftovers, write_tree

from noa_core.data.manifest import MANIFEST_NAME
from noa_core.data.s3_client import S3Settings
from noa_core.data.storage import pull, push
from noa_core.errors import StorageError

DIGEST = "0" * 64


def _publish_manifest(s3: Any, bucket: str, files: list[dict[str, Any]]) -> None:
    doc = {"version": 1, "files": files}
    s3.put_object(Bucket=bucket, Key=f"p/{MANIFEST_NAME}", Body=json.dumps(doc).encode())


def _one_line(err: pytest.ExceptionInfo[StorageError]) -> str:
    msg = str(err.value)
    assert "\n" not in msg and SECRET_KEY not in msg
    return msg


def test_missing_bucket(tmp_path: Path, settings: S3Settings) -> None:
    with pytest.raises(StorageError) as err:
        pull("s3://noa-no-such-bucket/p", tmp_path / "dst", settings=settings)
    assert _one_line(err) == ("s3://noa-no-such-bucket/p/MANIFEST.json: bucket "
                              "'noa-no-such-bucket' does not exist")
    write_tree(tmp_path / "src", {"a.txt": b"a"})
    with pytest.raises(StorageError, match="bucket 'noa-no-such-bucket' does not exist"):
        push(tmp_path / "src", "s3://noa-no-such-bucket/p", settings=settings)


def test_missing_manifest_and_missing_key(tmp_path: Path, s3: Any, bucket: str,
                                          settings: S3Settings) -> None:
    with pytest.raises(StorageError) as err:
        pull(f"s3://{bucket}/nothing-here", tmp_path / "dst", settings=settings)
    assert _one_line(err).startswith(f"s3://{bucket}/nothing-here/MANIFEST.json: no such object")

    write_tree(tmp_path / "src", {"a.txt": b"a", "b.txt": b"b"})
    push(tmp_path / "src", f"s3://{bucket}/p", settings=settings)
    s3.delete_object(Bucket=bucket, Key="p/b.txt")
    with pytest.raises(StorageError) as err:
        pull(f"s3://{bucket}/p", tmp_path / "dst", settings=settings)
    assert _one_line(err) == f"s3://{bucket}/p/b.txt: no such object"
    assert not (tmp_path / "dst" / MANIFEST_NAME).exists()


@pytest.mark.parametrize("bad", ["../evil.txt", "a/../../evil.txt", "/tmp/evil.txt", "a//b",
                                 "./a", "a\\..\\evil", "MANIFEST.json", ""])
def test_paths_outside_the_destination_are_refused(tmp_path: Path, s3: Any, bucket: str,
                                                   settings: S3Settings, bad: str) -> None:
    s3.put_object(Bucket=bucket, Key="evil.txt", Body=b"x")
    s3.put_object(Bucket=bucket, Key="p/ok.txt", Body=b"x")
    _publish_manifest(s3, bucket, [{"path": "ok.txt", "size": 1, "sha256": DIGEST},
                                   {"path": bad, "size": 1, "sha256": DIGEST}])
    dst = tmp_path / "jail" / "dst"
    with pytest.raises(StorageError) as err:
        pull(f"s3://{bucket}/p", dst, settings=settings)
    assert f"file path {bad!r}" in _one_line(err) and "refusing to pull" in str(err.value)
    assert not (tmp_path / "jail").exists(), "refused before anything was written"


def test_a_link_out_of_the_destination_is_refused(tmp_path: Path, s3: Any, bucket: str,
                                                  settings: S3Settings) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "dst").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "dst" / "link")
    s3.put_object(Bucket=bucket, Key="p/link/x.txt", Body=b"x")
    _publish_manifest(s3, bucket, [{"path": "link/x.txt", "size": 1, "sha256": DIGEST}])
    with pytest.raises(StorageError, match="resolves outside the destination"):
        pull(f"s3://{bucket}/p", tmp_path / "dst", settings=settings)
    assert list((tmp_path / "outside").iterdir()) == []


@pytest.mark.parametrize(("doc", "needle"), [
    (b"{not json", "not valid JSON"),
    (b'{"version": 2, "files": []}', '"version": 1'),
    (b'{"version": 1, "files": [{"path": "a", "size": -1, "sha256": "' + DIGEST.encode()
     + b'"}]}', "size must be an integer"),
    (b'{"version": 1, "files": [{"path": "a", "size": 1, "sha256": "abc"}]}', "64 lowercase hex"),
])
def test_a_malformed_manifest_is_named(tmp_path: Path, s3: Any, bucket: str,
                                       settings: S3Settings, doc: bytes, needle: str) -> None:
    s3.put_object(Bucket=bucket, Key=f"p/{MANIFEST_NAME}", Body=doc)
    with pytest.raises(StorageError) as err:
        pull(f"s3://{bucket}/p", tmp_path / "dst", settings=settings)
    msg = _one_line(err)
    assert msg.startswith(f"s3://{bucket}/p/{MANIFEST_NAME}") and needle in msg


def test_no_credentials_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    settings: S3Settings) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match="no usable AWS credentials"):
        pull("s3://any-bucket/p", tmp_path / "dst", settings=settings)


def test_wrong_directions_and_a_stale_source_manifest(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="pull writes into a local directory"):
        pull(tmp_path, "s3://bucket/p")
    with pytest.raises(StorageError, match="push reads a local directory"):
        push("s3://bucket/p", tmp_path)
    write_tree(tmp_path / "src", {"a.txt": b"a"})
    push(tmp_path / "src", tmp_path / "pub")
    (tmp_path / "pub" / "a.txt").write_bytes(b"b")  # edited after its manifest was written
    with pytest.raises(StorageError, match=r"a\.txt sha256 mismatch: .*stale manifest"):
        push(tmp_path / "pub", tmp_path / "again")
    assert leftovers(tmp_path) == []
