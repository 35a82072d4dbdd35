"""Is anything listening at an MLflow server URI? Asked once per process, in seconds.

MLflow's own HTTP client retries a refused connection with exponential backoff: a mistyped
``--tracking-uri`` or a server that is down surfaced after four minutes of silence (measured),
and in ``noa train`` only after the training set-up. A TCP connect to the server's host and
port, retried briefly for a server that is still starting, fails in seconds instead. Later
calls keep MLflow's retries, which suit a blip in a long run.

Only ``http(s)`` URIs are probed (``sqlite`` has no server); so is nothing when a proxy
carries the traffic, since the server is then not directly reachable by design.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from urllib.parse import urlsplit

from noa_core.errors import TrackingError
from noa_core.tracking.safety import redact_uri, require_tracking_uri

PROBE_TRIES = 3
PROBE_PAUSE_S = 2.0  # between tries: a server pod that is starting gets a few seconds
PROBE_TIMEOUT_S = 5.0  # per connect
_REACHED: set[tuple[str, int]] = set()


def server_address(uri: str) -> tuple[str, int] | None:
    """(host, port) of an http(s) URI (port defaulting to 80 / 443), else None."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname, parts.port or (443 if scheme == "https" else 80)


def _proxied(uri: str, host: str) -> bool:
    scheme = urlsplit(uri).scheme.lower()
    return scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host)


def require_reachable(uri: str, tries: int | None = None, pause_s: float | None = None,
                      timeout_s: float | None = None) -> None:
    """Return when a TCP connection to the server of ``uri`` opens (or there is nothing to
    probe); raise ``TrackingError`` naming the address and the last failure after ``tries``
    attempts ``pause_s`` apart (defaults: the ``PROBE_*`` constants, read at call time). A
    success is remembered for the process."""
    tries = PROBE_TRIES if tries is None else tries
    pause_s = PROBE_PAUSE_S if pause_s is None else pause_s
    timeout_s = PROBE_TIMEOUT_S if timeout_s is None else timeout_s
    address = server_address(uri)
    if address is None or address in _REACHED or _proxied(uri, address[0]):
        return
    failure: OSError | None = None
    for attempt in range(tries):
        if attempt:
            time.sleep(pause_s)
        try:
            socket.create_connection(address, timeout=timeout_s).close()
        except OSError as exc:
            failure = exc
            continue
        _REACHED.add(address)
        return
    reason = (failure.strerror or type(failure).__name__) if failure else "no attempt"
    raise TrackingError(f"{redact_uri(uri)}: no server answers at {address[0]}:{address[1]} "
                        f"({reason}, {tries} tries over {(tries - 1) * pause_s:g} s); start the "
                        "MLflow server or correct --tracking-uri")


def reachable_tracking_uri(uri: str | None) -> str:
    """``require_tracking_uri(uri)``, then ``require_reachable`` on it: what a stage calls before
    its work, so a bad or dead tracking URI costs seconds, not the stage's run time."""
    uri = require_tracking_uri(uri)
    require_reachable(uri)
    return uri
