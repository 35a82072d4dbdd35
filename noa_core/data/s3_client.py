"""S3 settings, ``s3://`` URLs, the boto3 client, and one-line errors for S3 failures.

Credentials come only from boto3's standard chain (environment, shared files, instance or pod
role); nothing here reads, stores or prints them. The endpoint, region and checksum policy follow
boto3's own environment (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_REQUEST_CHECKSUM_CALCULATION``
...) unless an ``S3Settings`` field overrides them. S3-compatible stores (MinIO, Ceph, R2) that
reject boto3 ≥ 1.36's default CRC32 request checksums need ``checksum_policy="when_required"``
(or ``AWS_REQUEST_CHECKSUM_CALCULATION=when_required``); some also need path addressing
(``addressing_style="path"`` or ``NOA_S3_ADDRESSING_STYLE=path``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from noa_core.errors import StorageError

S3_SCHEME = "s3://"
MiB = 1 << 20
ADDRESSING_STYLES = ("auto", "virtual", "path")
CHECKSUM_POLICIES = ("when_supported", "when_required")
# boto3 has no environment variable for the addressing style (only the shared config file).
ADDRESSING_STYLE_ENV = "NOA_S3_ADDRESSING_STYLE"

AddressingStyle = Literal["auto", "virtual", "path"]
ChecksumPolicy = Literal["when_supported", "when_required"]


@dataclass(frozen=True)
class S3Settings:
    """How to reach the object store and move bytes; ``None`` defers to boto3's own resolution.

    Sizes are bytes. ``max_attempts`` counts every attempt of one request (first try included)
    under botocore's ``standard`` retry mode, which retries throttling, 500/502/503/504 and
    connection errors with capped exponential backoff, and never an access-denied answer.
    """

    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: AddressingStyle | None = None
    checksum_policy: ChecksumPolicy | None = None
    max_attempts: int = 5
    multipart_threshold: int = 8 * MiB
    multipart_chunksize: int = 8 * MiB
    max_concurrency: int = 8
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> S3Settings:
        """Defaults plus ``NOA_S3_ADDRESSING_STYLE``; keyword overrides that are not None win."""
        env = os.environ if env is None else env
        style = env.get(ADDRESSING_STYLE_ENV) or None
        if style is not None and style not in ADDRESSING_STYLES:
            raise StorageError(f"{ADDRESSING_STYLE_ENV}={style!r}: expected one of "
                               f"{', '.join(ADDRESSING_STYLES)}")
        settings = cls(addressing_style=style)  # type: ignore[arg-type]
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class S3Url:
    """``s3://bucket/prefix``; ``prefix`` has no leading or trailing slash (may be empty)."""

    bucket: str
    prefix: str

    def key(self, rel: str) -> str:
        """The object key of ``rel`` (a POSIX path relative to the prefix)."""
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def url(self, rel: str | None = None) -> str:
        key = self.prefix if rel is None else self.key(rel)
        return f"{S3_SCHEME}{self.bucket}/{key}" if key else f"{S3_SCHEME}{self.bucket}"


def is_s3_url(text: str) -> bool:
    return text.startswith(S3_SCHEME)


def parse_s3_url(text: str) -> S3Url:
    """Split ``s3://bucket/some/prefix/`` into bucket and prefix; refuse a missing bucket."""
    if not is_s3_url(text):
        raise StorageError(f"{text}: expected an s3://bucket/prefix URL")
    bucket, _, prefix = text[len(S3_SCHEME):].partition("/")
    if not bucket:
        raise StorageError(f"{text}: no bucket name after s3://")
    prefix = prefix.strip("/")
    if any(part in (".", "..") for part in prefix.split("/")):
        raise StorageError(f"{text}: '.' and '..' are not allowed in the key prefix")
    return S3Url(bucket=bucket, prefix=prefix)


_LOADER: Any = None  # botocore's service-model loader, shared: parsing the S3 model costs ~0.1 s
_LOADER_LOCK = threading.Lock()


def _session() -> Any:
    """A fresh boto3 session (credentials resolved anew) sharing the cached model loader."""
    import boto3
    import botocore.loaders
    import botocore.session

    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = botocore.loaders.create_loader()
        core = botocore.session.Session()
        core.register_component("data_loader", _LOADER)
    return boto3.session.Session(botocore_session=core)


def make_client(settings: S3Settings) -> Any:
    """A boto3 S3 client from the standard credential chain with ``settings`` applied."""
    from botocore.config import Config

    cfg: dict[str, Any] = {
        "retries": {"mode": "standard", "total_max_attempts": settings.max_attempts},
        "max_pool_connections": max(10, settings.max_concurrency + 2),
        "connect_timeout": settings.connect_timeout_s,
        "read_timeout": settings.read_timeout_s,
    }
    if settings.addressing_style:
        cfg["s3"] = {"addressing_style": settings.addressing_style}
    if settings.checksum_policy:
        cfg["request_checksum_calculation"] = settings.checksum_policy
        cfg["response_checksum_validation"] = settings.checksum_policy
    return _session().client("s3", endpoint_url=settings.endpoint_url,
                          region_name=settings.region, config=Config(**cfg))


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ``ClientError`` (``NoSuchKey``, ``404``, ...), else ''."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def storage_error(exc: BaseException, url: str, bucket: str) -> StorageError:
    """One line naming ``url`` for a botocore failure; the message never carries credentials."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return StorageError(f"{url}: no usable AWS credentials (boto3's standard chain: "
                            f"environment, shared credentials file, profile, pod or instance role)")
    if isinstance(exc, EndpointConnectionError):
        return StorageError(f"{url}: cannot reach the S3 endpoint ({exc})")
    if not isinstance(exc, ClientError):
        return StorageError(f"{url}: {type(exc).__name__}: {exc}")
    code = error_code(exc)
    if code == "NoSuchBucket":
        return StorageError(f"{url}: bucket {bucket!r} does not exist")
    if code in ("NoSuchKey", "404", "NotFound"):
        return StorageError(f"{url}: no such object")
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId",
                "SignatureDoesNotMatch"):
        return StorageError(f"{url}: access denied ({code}); check the credentials and the "
                            f"bucket policy")
    if code in ("PreconditionFailed", "412"):
        return StorageError(f"{url}: the object changed during the transfer (ETag no longer "
                            f"matches); pull again")
    message = exc.response.get("Error", {}).get("Message", "") if exc.response else ""
    return StorageError(f"{url}: S3 error {code or 'unknown'}{': ' + message if message else ''}")
