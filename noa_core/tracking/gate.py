"""The gate decision (``gate.json`` from ``noa evaluate``): validation and the failed criteria.

``{"passed": bool, "criteria": [{"name", "value", "op", "threshold", "passed"}, ...]}``
(ARCHITECTURE.md, machine-readable outputs). ``passed`` must agree with the criteria: a gate is
passed exactly when every criterion is.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noa_core.errors import TrackingError

_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,200}$")  # usable inside an MLflow tag key


@dataclass(frozen=True)
class Criterion:
    name: str
    value: float | None  # None: the metric could not be computed (counts as failed)
    op: str
    threshold: float
    passed: bool

    def describe(self) -> str:
        """``"0.31 <= 0.25"``: the measured value, the operator and the threshold."""
        value = "n/a" if self.value is None else f"{self.value:.6g}"
        return f"{value} {self.op} {self.threshold:.6g}"


@dataclass(frozen=True)
class Gate:
    passed: bool
    criteria: tuple[Criterion, ...]

    @property
    def failed(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if not c.passed)


def load_gate(path: Path) -> Gate:
    """Read and validate a ``gate.json`` file."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrackingError(f"{path}: no such gate file") from None
    except (OSError, ValueError) as exc:
        raise TrackingError(f"{path}: not a readable JSON gate file ({exc})") from None
    return parse_gate(doc, str(path))


def parse_gate(doc: Any, origin: str = "gate") -> Gate:
    """Validate a gate dict; every error names ``origin`` and the key at fault."""
    if not isinstance(doc, dict) or not isinstance(doc.get("passed"), bool):
        raise TrackingError(f"{origin}: expected an object with a boolean \"passed\"")
    items = doc.get("criteria")
    if not isinstance(items, list) or not items:
        raise TrackingError(f"{origin}: expected a non-empty list \"criteria\"")
    criteria = tuple(_criterion(c, f"{origin}: criteria[{i}]") for i, c in enumerate(items))
    names = [c.name for c in criteria]
    if len(set(names)) != len(names):
        raise TrackingError(f"{origin}: criterion names repeat: {names}")
    if doc["passed"] != all(c.passed for c in criteria):
        raise TrackingError(f"{origin}: \"passed\" is {doc['passed']} but the criteria say "
                            f"{all(c.passed for c in criteria)}")
    return Gate(passed=doc["passed"], criteria=criteria)


def _criterion(item: Any, where: str) -> Criterion:
    if not isinstance(item, dict):
        raise TrackingError(f"{where}: expected an object with name, value, op, threshold, passed")
    name, op, passed = item.get("name"), item.get("op"), item.get("passed")
    if not isinstance(name, str) or not _NAME.match(name):
        raise TrackingError(f"{where}: name must match {_NAME.pattern}, got {name!r}")
    if not isinstance(op, str) or not op:
        raise TrackingError(f"{where} ({name}): op must be a non-empty string")
    if not isinstance(passed, bool):
        raise TrackingError(f"{where} ({name}): passed must be true or false")
    threshold = _number(item.get("threshold"), f"{where} ({name}): threshold", allow_none=False)
    value = _number(item.get("value"), f"{where} ({name}): value", allow_none=True)
    return Criterion(name=name, value=value, op=op, threshold=threshold,  # type: ignore[arg-type]
                     passed=passed)


def _number(x: Any, where: str, *, allow_none: bool) -> float | None:
    if x is None and allow_none:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TrackingError(f"{where} must be a number, got {x!r}")
    if not allow_none and not math.isfinite(x):
        raise TrackingError(f"{where} must be finite, got {x!r}")
    return float(x)
