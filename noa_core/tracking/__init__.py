"""MLflow tracking and the model registry for the NOA pipeline.

Lifecycle (ARCHITECTURE.md, *tracking*): every call takes an explicit tracking URI and refuses
to guess one. ``train`` opens the run (``open_run``: params, resolved config, then step metrics
with ``log_metrics``) and passes its id on; ``evaluate`` and ``export`` log into that run
(``log_metrics``, ``log_artifact``); ``register_model`` logs the model (ONNX and PyTorch) and
creates a version aliased ``challenger`` with lineage tags (``register_checkpoint``, the stage
``noa register``, calls it for a checkpoint and its ONNX export); the gate then calls ``promote``
(``champion`` moves) or ``reject`` (the version is tagged, ``champion`` stays). The gate's
champion rule reads ``champion_metrics``. Nothing here logs a credential.
"""

from noa_core.tracking.constants import ALIAS_CHALLENGER, ALIAS_CHAMPION, LINEAGE_TAGS
from noa_core.tracking.gate import Criterion, Gate, load_gate, parse_gate
from noa_core.tracking.register_stage import register_checkpoint
from noa_core.tracking.registry import (
    champion_metrics,
    champion_version,
    lineage_tags,
    promote,
    register_model,
    reject,
)
from noa_core.tracking.runs import (
    end_run,
    log_artifact,
    log_metrics,
    open_run,
    reopen_run,
    run_metrics,
    set_run_tags,
)
from noa_core.tracking.safety import require_tracking_uri

__all__ = [
    "ALIAS_CHALLENGER",
    "ALIAS_CHAMPION",
    "LINEAGE_TAGS",
    "Criterion",
    "Gate",
    "champion_metrics",
    "champion_version",
    "end_run",
    "lineage_tags",
    "load_gate",
    "log_artifact",
    "log_metrics",
    "open_run",
    "parse_gate",
    "promote",
    "register_checkpoint",
    "register_model",
    "reject",
    "reopen_run",
    "require_tracking_uri",
    "run_metrics",
    "set_run_tags",
]
