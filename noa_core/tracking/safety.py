"""Refuse to guess the tracking URI, and keep credentials out of everything sent to MLflow.

Credentials come from boto3's chain, ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``/``TOKEN`` and
Kubernetes Secrets, never from parameters, tags or the URI. Before anything is logged, keys that
name a credential and values that contain one (a URL with a password, or the value of a
credential environment variable) are refused with a ``TrackingError``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from noa_core.errors import TrackingError

# Stores MLflow 3 accepts that we allow. ``file:`` is left out on purpose: MLflow 3.17 refuses
# it unless MLFLOW_ALLOW_FILE_STORE is set, and a local run uses a sqlite file instead.
ALLOWED_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
CREDENTIAL_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID",
                  "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "DATABRICKS_TOKEN")
_CREDENTIAL_KEY = re.compile(
    r"(secret|passw(or)?d|credential|access[_-]?key|session[_-]?token|api[_-]?key|"
    r"auth[_-]?token|private[_-]?key|bearer)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)
_MIN_SUBSTRING_SECRET = 8  # shorter secrets are matched exactly, not as substrings


def require_tracking_uri(uri: str | None) -> str:
    """Return ``uri`` stripped; refuse a missing, scheme-less, ``file:`` or credentialed URI.

    Never falls back to ``MLFLOW_TRACKING_URI`` or MLflow's default ``./mlflow.db``: a stage
    that logs must be told where.
    """
    if uri is None or not uri.strip():
        raise TrackingError("no tracking URI given: pass --tracking-uri (sqlite:///PATH/mlflow.db "
                            "locally, http(s)://HOST:PORT for a server); NOA never guesses one "
                            "from MLFLOW_TRACKING_URI or the working directory")
    uri = uri.strip()
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if scheme not in ALLOWED_SCHEMES:
        raise TrackingError(f"tracking URI {redact_uri(uri)!r}: expected one of the schemes "
                            f"{', '.join(ALLOWED_SCHEMES)} (e.g. sqlite:///runs/mlflow.db)")
    if urlsplit(uri).password is not None:
        raise TrackingError(f"tracking URI {redact_uri(uri)!r}: credentials do not belong in the "
                            f"URI; set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                            f"(from a Secret)")
    return uri


def redact_uri(uri: str) -> str:
    """``uri`` with any ``user:password@`` part replaced by ``***@``."""
    return re.sub(r"(://)[^/@\s]*@", r"\1***@", uri)


def check_no_credentials(items: Mapping[str, Any], what: str) -> None:
    """Raise if a key of ``items`` (nested mappings flattened) names a credential or a value
    carries one. ``what`` names the collection in the message (e.g. ``"param"``)."""
    secrets = _known_secrets()
    for key, value in flatten(items):
        if _CREDENTIAL_KEY.search(key):
            raise TrackingError(f"{what} {key!r} looks like a credential; credentials never go to "
                                f"tracking (they come from the boto3 chain or a Secret)")
        text = str(value)
        if _URL_PASSWORD.search(text) or any(_contains(text, s) for s in secrets):
            raise TrackingError(f"{what} {key!r} carries a credential (a URL password or the "
                                f"value of a credential environment variable); not logged")


def flatten(items: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested mappings as dotted keys: ``{"a": {"b": 1}}`` → ``("a.b", 1)``."""
    for key, value in items.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten(value, f"{name}.")
        else:
            yield name, value


def _known_secrets() -> list[str]:
    return [v for v in (os.environ.get(k, "") for k in CREDENTIAL_ENV) if v]


def _contains(text: str, secret: str) -> bool:
    return secret in text if len(secret) >= _MIN_SUBSTRING_SECRET else text == secret
