"""``noa data pull|push``: local and S3 (moto's HTTP server, configured through boto3's own
environment as in a pod), byte progress on stderr, one-line errors."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from noa_core.cli import main


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """boto3's environment points at moto; returns a fresh bucket's name."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "cli-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "cli-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("NOA_S3_ADDRESSING_STYLE", "path")
    bucket = f"noa-cli-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_url).create_bucket(Bucket=bucket)
    return bucket


def _src(tmp_path: Path) -> Path:
    src = tmp_path / "phase0"
    (src / "tokenizer").mkdir(parents=True)
    (src / "dataset.h5").write_bytes(b"\x89HDF" + bytes(range(256)) * 64)
    (src / "tokenizer" / "config.yaml").write_text("levels: 3\n")
    return src


@pytest.mark.parametrize("argv", [["data"], ["data", "pull"], ["data", "push"]])
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0 and "usage: noa data" in capsys.readouterr().out


def test_push_and_pull_through_s3_from_the_environment(
        tmp_path: Path, s3_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = _src(tmp_path)
    url = f"s3://{s3_env}/phase0/v1"
    assert main(["data", "push", str(src), url]) == 0
    out, err = capsys.readouterr()
    assert "pushed 2 file(s)" in out and "2 transferred" in out
    assert "push: " in err and "B/s" in err, f"a byte progress bar on stderr: {err!r}"

    assert main(["data", "pull", url, str(tmp_path / "dst"), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "pulled 2 file(s)" in out and err == ""
    for rel in ("dataset.h5", "tokenizer/config.yaml"):
        assert (tmp_path / "dst" / rel).read_bytes() == (src / rel).read_bytes()

    assert main(["data", "pull", url, str(tmp_path / "dst"), "--no-progress"]) == 0
    assert "2 already present and verified" in capsys.readouterr().out


def test_local_round_trip_and_one_line_errors(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    src = _src(tmp_path)
    assert main(["data", "push", str(src), str(tmp_path / "pub"), "--no-progress"]) == 0
    assert main(["data", "pull", str(tmp_path / "pub"), str(tmp_path / "dst"),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["data", "pull", str(tmp_path / "nowhere"), str(tmp_path / "d2"),
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("noa: error: ") and "MANIFEST.json: no such file" in err
    assert err.count("\n") == 1
