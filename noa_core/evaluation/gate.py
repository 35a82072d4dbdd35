"""The gate decision: ``gate(metrics, criteria, champion_metrics=None) -> dict``.

Contract (ARCHITECTURE.md, machine-readable outputs of ``noa evaluate``)::

    {"passed": bool,
     "criteria": [{"name", "value", "op", "threshold", "passed",
                   "reason", "metric", "n", "min_samples", "ci"}, ...],
     "champion": {"compared": bool, ...}}

``passed`` is true exactly when every listed criterion passed. A criterion fails when its
metric is missing or was not computed (value null, with the reason), when it was measured on
fewer than ``min_samples`` operators ("insufficient data"), or when the comparison is false.
The champion rule adds a criterion ``champion.<metric>`` when champion metrics are given.

``metrics`` is a ``metrics.json`` mapping (entries ``{"value", "n", ...}``) or a flat mapping
of numbers (what MLflow returns for a run); the champion's metrics may be either.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from noa_core.evaluation.criteria import ChampionRule, Criteria, CriterionSpec, load_criteria

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def lookup(metrics: Mapping[str, Any], name: str) -> tuple[float | None, int | None, str]:
    """(value, sample count, why-missing) of metric ``name`` in either metrics form."""
    entry = metrics.get(name)
    if entry is None:
        return None, None, f"metric {name!r} is missing"
    if isinstance(entry, Mapping):
        value = _finite(entry.get("value"))
        n = entry.get("n")
        n = int(n) if isinstance(n, int | float) and not isinstance(n, bool) else None
        if value is None:
            return None, n, str(entry.get("reason") or f"metric {name!r} was not computed")
        return value, n, ""
    value = _finite(entry)
    if value is None:
        return None, None, f"metric {name!r} is not a finite number ({entry!r})"
    n_flat = _finite(metrics.get(f"{name}.n"))
    return value, None if n_flat is None else int(n_flat), ""


def _criterion(name: str, spec: CriterionSpec, metrics: Mapping[str, Any],
               min_samples: int) -> dict[str, Any]:
    value, n, missing = lookup(metrics, spec.metric)
    need = spec.min_samples or min_samples
    entry = metrics.get(spec.metric)
    ci = entry.get("ci") if isinstance(entry, Mapping) else None
    row: dict[str, Any] = {"name": name, "value": value, "op": spec.op,
                           "threshold": spec.threshold, "passed": False, "reason": "",
                           "metric": spec.metric, "n": n, "min_samples": need, "ci": ci,
                           "description": spec.description}
    if n is not None and n < need:
        row["reason"] = f"insufficient data: {n} samples < minimum {need}"
    elif value is None:
        row["reason"] = missing
    else:
        row["passed"] = bool(OPS[spec.op](value, spec.threshold))
        row["reason"] = "" if row["passed"] else f"{value:.6g} {spec.op} {spec.threshold:.6g} " \
                                                 "is false"
    return row


def champion_criterion(rule: ChampionRule, metrics: Mapping[str, Any],
                       champion_metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The challenger may not be worse than the champion by more than the tolerance.

    Lower is better: ``value ≤ champion + tol`` (relative: tol = tolerance·|champion|);
    higher is better: ``value ≥ champion − tol``.
    """
    value, n, missing = lookup(metrics, rule.metric)
    best, _, champ_missing = lookup(champion_metrics, rule.metric)
    name = f"champion.{rule.metric}"
    row: dict[str, Any] = {"name": name, "value": value, "passed": False, "reason": "",
                           "metric": rule.metric, "n": n, "champion_value": best}
    if best is None:
        # A champion without the value cannot be compared: refuse rather than wave through.
        row.update(op="<=" if not rule.higher_is_better else ">=", threshold=0.0,
                   reason=f"champion: {champ_missing}")
        return row
    tol = rule.tolerance * abs(best) if rule.relative else rule.tolerance
    op, threshold = ("<=", best + tol) if not rule.higher_is_better else (">=", best - tol)
    row.update(op=op, threshold=threshold)
    if value is None:
        row["reason"] = missing
    else:
        row["passed"] = bool(OPS[op](value, threshold))
        row["reason"] = "" if row["passed"] else (
            f"worse than the champion ({best:.6g}) by more than the tolerance "
            f"({rule.tolerance:g}{' relative' if rule.relative else ''})")
    return row


def gate(metrics: Mapping[str, Any], criteria: Criteria | str | Path | None = None,
         champion_metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Per-criterion results and the decision (module docstring). ``criteria``: a ``Criteria``,
    a criteria file path, or None for the built-in Phase 1 defaults."""
    crit = load_criteria(criteria)
    rows = [_criterion(name, spec, metrics, crit.min_samples)
            for name, spec in crit.criteria.items() if spec.enabled]
    champion: dict[str, Any] = {"compared": False}
    if champion_metrics is not None and crit.champion.enabled:
        rows.append(champion_criterion(crit.champion, metrics, champion_metrics))
        champion = {"compared": True, "metric": crit.champion.metric,
                    "tolerance": crit.champion.tolerance, "relative": crit.champion.relative}
    elif champion_metrics is None:
        champion["reason"] = "no champion metrics given"
    else:
        champion["reason"] = "the champion rule is disabled in the criteria"
    return {"passed": all(r["passed"] for r in rows), "criteria": rows, "champion": champion,
            "criteria_name": crit.name, "criteria_sha256": crit.digest()}
