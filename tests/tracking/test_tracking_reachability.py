"""noa_core.tracking.reachability: a dead tracking server is named in seconds, before any work.

Real sockets on the loopback interface: one listening, one port with nothing behind it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from noa_core.errors import TrackingError
from noa_core.tracking import reachability as R
from noa_core.training.trainer import train


@pytest.fixture(autouse=True)
def _direct(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variables (a proxied URI is not probed) and an empty success cache."""
    for key in list(os.environ):
        if key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    monkeypatch.setattr(R, "_REACHED", set())


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.fixture
def dead_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:
        return int(server.getsockname()[1])  # closed on return: nothing listens there


def test_a_listening_server_passes_and_is_remembered(listening: int) -> None:
    uri = f"http://127.0.0.1:{listening}"
    R.require_reachable(uri, tries=1)
    assert ("127.0.0.1", listening) in R._REACHED


def test_nothing_listening_is_one_line_naming_the_address(dead_port: int) -> None:
    uri = f"http://127.0.0.1:{dead_port}/"
    with pytest.raises(TrackingError) as info:
        R.require_reachable(uri, tries=2, pause_s=0.0)
    assert str(info.value) == (f"{uri}: no server answers at 127.0.0.1:{dead_port} (Connection "
                               "refused, 2 tries over 0 s); start the MLflow server or correct "
                               "--tracking-uri")


def test_only_direct_http_servers_are_probed(dead_port: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert R.server_address("sqlite:///runs/mlflow.db") is None
    assert R.server_address("https://mlflow.example") == ("mlflow.example", 443)
    assert R.server_address("http://mlflow.example") == ("mlflow.example", 80)
    R.require_reachable("sqlite:///runs/mlflow.db", pause_s=0.0)
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    R.require_reachable(f"http://127.0.0.1:{dead_port}", pause_s=0.0)  # the proxy's business
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with pytest.raises(TrackingError, match="Connection refused"):
        R.require_reachable(f"http://127.0.0.1:{dead_port}", tries=1)


def test_train_refuses_a_dead_server_before_reading_anything(
        dead_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from noa_core.config import load_config

    monkeypatch.setattr(R, "PROBE_PAUSE_S", 0.0)
    with pytest.raises(TrackingError, match=rf"127\.0\.0\.1:{dead_port} \(Connection refused"):
        train(load_config("tiny"), tmp_path / "absent.h5", tmp_path / "absent", tmp_path / "out",
              progress=False, tracking_uri=f"http://127.0.0.1:{dead_port}")
    assert not (tmp_path / "out").exists()  # (the absent replay would have been named next)
