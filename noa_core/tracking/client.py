"""The MLflow client for an explicit URI, the fluent API pinned to it, and one-line errors.

MLflow's fluent API (needed to log models) reads a process-global tracking URI; ``fluent_uri``
sets it, together with the registry URI, for the duration of a block under a lock and restores
the previous values and environment afterwards, so nothing leaks into later calls. Within the
block MLflow does not print run URLs to stdout (a stage's stdout is its own summary).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from noa_core.errors import TrackingError
from noa_core.tracking.reachability import reachable_tracking_uri
from noa_core.tracking.safety import redact_uri

_FLUENT_LOCK = threading.RLock()
_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_QUIET_ENV = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


def client_for(tracking_uri: str | None) -> Any:
    """An ``MlflowClient`` whose tracking and registry URIs are both ``tracking_uri``."""
    from mlflow import MlflowClient

    uri = reachable_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextmanager
def quiet_urls() -> Iterator[None]:
    """Within the block MLflow does not print "View run ... at: URL" to stdout (it does when a
    run is terminated); the environment variable is restored afterwards."""
    with _FLUENT_LOCK:
        saved = os.environ.get(_QUIET_ENV)
        os.environ[_QUIET_ENV] = "true"
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop(_QUIET_ENV, None)
            else:
                os.environ[_QUIET_ENV] = saved


@contextmanager
def fluent_uri(tracking_uri: str) -> Iterator[None]:
    """Pin MLflow's global tracking and registry URIs to ``tracking_uri`` within the block."""
    import mlflow

    uri = reachable_tracking_uri(tracking_uri)
    with _FLUENT_LOCK, quiet_urls():
        saved_env = {k: os.environ.get(k) for k in _URI_ENV}
        saved_tracking = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
        saved_registry = os.environ.get("MLFLOW_REGISTRY_URI")
        try:
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            yield
        finally:
            mlflow.set_tracking_uri(saved_tracking)  # type: ignore[arg-type]
            mlflow.set_registry_uri(saved_registry)  # type: ignore[arg-type]
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def error_code(exc: BaseException) -> str:
    """MLflow's error code (``RESOURCE_DOES_NOT_EXIST``, ...) of an ``MlflowException``."""
    return str(getattr(exc, "error_code", ""))


@contextmanager
def tracking_errors(tracking_uri: str, what: str) -> Iterator[None]:
    """Turn MLflow and connection failures inside the block into one ``TrackingError`` line
    naming the (redacted) store and ``what`` was being done."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except TrackingError:
        raise
    except MlflowException as exc:
        first = (exc.message or type(exc).__name__).strip().splitlines()[0]
        raise TrackingError(f"{redact_uri(tracking_uri)}: {what}: {first}") from None
    except (ConnectionError, OSError) as exc:
        raise TrackingError(f"{redact_uri(tracking_uri)}: {what}: {exc}") from None
