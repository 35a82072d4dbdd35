"""Transient S3 failures are retried and the pull succeeds; a permanent 403 fails at once.

The faults come from a small proxy on loopback in front of moto (``s3_test_support``), which
records every request it answered: retries are counted, never timed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from s3_test_support import SECRET_KEY, FaultProxy, random_bytes, write_tree

from noa_core.data.s3_client import MiB, S3Settings
from noa_core.data.storage import pull, push
from noa_core.errors import StorageError


def _through(proxy: FaultProxy, settings: S3Settings) -> S3Settings:
    return S3Settings(**{**settings.__dict__, "endpoint_url": proxy.endpoint})


def _publish(tmp_path: Path, bucket: str, settings: S3Settings) -> bytes:
    data = random_bytes(MiB, seed=11)
    write_tree(tmp_path / "src", {"data.bin": data})
    push(tmp_path / "src", f"s3://{bucket}/p", settings=settings)
    return data


def test_transient_500_and_503_are_retried(tmp_path: Path, bucket: str, settings: S3Settings,
                                           fault_proxy: FaultProxy) -> None:
    data = _publish(tmp_path, bucket, settings)
    # requests: GET manifest, HEAD data.bin, GET data.bin (one range)
    fault_proxy.plan(500, None, None, 503)
    report = pull(f"s3://{bucket}/p", tmp_path / "dst", settings=_through(fault_proxy, settings))
    assert (tmp_path / "dst" / "data.bin").read_bytes() == data
    assert [status for _, _, status in fault_proxy.log] == [500, 200, 200, 503, 206]
    assert report.bytes_transferred == len(data)


def test_a_body_cut_off_midway_is_requested_again(tmp_path: Path, bucket: str,
                                                  settings: S3Settings,
                                                  fault_proxy: FaultProxy) -> None:
    data = _publish(tmp_path, bucket, settings)
    fault_proxy.plan(None, None, "cut")
    pull(f"s3://{bucket}/p", tmp_path / "dst", settings=_through(fault_proxy, settings))
    assert (tmp_path / "dst" / "data.bin").read_bytes() == data
    methods = [(m, s) for m, _, s in fault_proxy.log]
    assert methods == [("GET", 200), ("HEAD", 200), ("GET", "cut"), ("GET", 206)]


def test_a_permanent_403_fails_fast(tmp_path: Path, bucket: str, settings: S3Settings,
                                    fault_proxy: FaultProxy) -> None:
    _publish(tmp_path, bucket, settings)
    fault_proxy.always(403)
    with pytest.raises(StorageError) as err:
        pull(f"s3://{bucket}/p", tmp_path / "dst", settings=_through(fault_proxy, settings))
    msg = str(err.value)
    assert msg.startswith(f"s3://{bucket}/p/MANIFEST.json: access denied (AccessDenied)")
    assert SECRET_KEY not in msg and "noa-test-key-id" not in msg
    assert len(fault_proxy.log) == 1, "an access-denied answer is never retried"


def test_a_403_mid_transfer_stops_and_the_pull_resumes_later(
        tmp_path: Path, bucket: str, settings: S3Settings, fault_proxy: FaultProxy) -> None:
    data = random_bytes(12 * MiB, seed=12)  # ranges [0, 5), [5, 10), [10, 12) MiB
    write_tree(tmp_path / "src", {"big.bin": data})
    push(tmp_path / "src", f"s3://{bucket}/p", settings=settings)
    sequential = S3Settings(**{**_through(fault_proxy, settings).__dict__, "max_concurrency": 1})
    fault_proxy.plan(None, None, None, 403)  # manifest, HEAD, first range; the second is denied
    with pytest.raises(StorageError, match=r"p/big\.bin: access denied \(AccessDenied\)"):
        pull(f"s3://{bucket}/p", tmp_path / "dst", settings=sequential)
    assert [s for _, _, s in fault_proxy.log] == [200, 200, 206, 403], "third range never asked"
    assert not (tmp_path / "dst" / "big.bin").exists()

    report = pull(f"s3://{bucket}/p", tmp_path / "dst", settings=_through(fault_proxy, settings))
    assert (report.files_resumed, report.bytes_transferred) == (1, 7 * MiB)
    assert (tmp_path / "dst" / "big.bin").read_bytes() == data
