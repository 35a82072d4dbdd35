"""Helpers for the storage tests: a fault-injecting HTTP proxy in front of moto, and file trees.

``FaultProxy`` listens on 127.0.0.1 and relays each request to the upstream moto server, unless
the next planned fault says otherwise: an HTTP status (answered with an S3-style XML error and
never relayed) or ``"cut"`` (relayed, but the body is cut off halfway and the connection closed).
It records every request it answered, so a test can count attempts instead of timing them.
"""

from __future__ import annotations

import http.client
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

# Distinctive, so a test can assert it never appears in an error message.
SECRET_KEY = "noa-test-SECRET-value-never-printed"
S3_ERROR_CODES = {403: "AccessDenied", 500: "InternalError", 503: "ServiceUnavailable"}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}

Fault = int | str | None  # HTTP status, "cut", or None (relay untouched)


class FaultProxy:
    """A loopback HTTP proxy to ``upstream`` that injects planned faults; see the module doc."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.log: list[tuple[str, str, int | str]] = []  # (method, path, status or "cut")
        self._plan: deque[Fault] = deque()
        self._always: int | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def plan(self, *faults: Fault) -> None:
        """Faults for the next requests, in order (None relays a request untouched)."""
        with self._lock:
            self._plan.extend(faults)

    def always(self, status: int) -> None:
        """Answer every request with ``status`` from now on."""
        self._always = status

    def next_fault(self) -> Fault:
        with self._lock:
            if self._always is not None:
                return self._always
            return self._plan.popleft() if self._plan else None

    def record(self, method: str, path: str, status: int | str) -> None:
        with self._lock:
            self.log.append((method, path, status))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fault = proxy.next_fault()
            if isinstance(fault, int):
                self._answer_error(fault)
                return
            conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
            try:
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                resp = conn.getresponse()
                data = resp.read()
                headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
                declared = resp.getheader("Content-Length") if self.command == "HEAD" else None
            finally:
                conn.close()
            # Recorded before answering: once the client has its answer, the test may read the log.
            cut = fault == "cut" and self.command != "HEAD"
            proxy.record(self.command, self.path, "cut" if cut else resp.status)
            self.send_response(resp.status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", declared or str(len(data)))
            if fault == "cut":
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            if cut:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)

        def _answer_error(self, status: int) -> None:
            code = S3_ERROR_CODES.get(status, "InternalError")
            xml = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
                   f"<Message>injected by the test proxy</Message></Error>").encode()
            proxy.record(self.command, self.path, status)  # before the client can see it
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(xml)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(xml)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

    return Handler


def write_tree(root: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    """Write ``files`` (relative POSIX path → bytes) under ``root``; return them."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def random_bytes(n: int, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes (a local generator, no global RNG)."""
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


def leftovers(root: Path) -> list[str]:
    """Transfer leftovers (partial downloads, temporary names) anywhere under ``root``."""
    return sorted(p.name for p in root.rglob("*") if ".noa-part" in p.name or ".noa-tmp" in p.name)

