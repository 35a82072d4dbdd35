"""Training curves: ``OUT/curves.png`` drawn from ``OUT/metrics.jsonl`` (and, for the KFP UI, a
self-contained HTML page that embeds it).

Left panel: each logged loss term (``total``, ``traj``, ``latent``, ``commit``, ``heads``,
``recon``; the last step's values, every ``training.log_every`` steps) against step, log scale:
faint as logged, solid as the running mean of ``SMOOTH_POINTS`` records.
Right panel: validation trajectory MSE against step, overall and per update policy, each beside
its persistence baseline on the same samples (dashed, same colour), log scale.

A resumed run appends records for steps it repeats; the later record of a step wins.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from noa_core.atomic import write_atomic
from noa_core.errors import TrainingError

CURVES_FILE = "curves.png"
LOSS_TERMS = ("total", "traj", "latent", "commit", "heads", "recon")
#: Logged records in the running mean drawn over each (faint) raw loss curve.
SMOOTH_POINTS = 5


def read_log(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training records, validation records) of a metrics.jsonl, each sorted by step, one per
    step (the last written)."""
    train: dict[int, dict[str, Any]] = {}
    val: dict[int, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainingError(f"{path}, line {n}: not JSON ({exc.msg}); expected one metrics "
                                "record per line") from exc
        if not isinstance(rec, dict) or type(rec.get("step")) is not int:
            raise TrainingError(f"{path}, line {n}: expected a record with an integer 'step', "
                                f"got {line[:80]!r}")
        if "val" in rec and not isinstance(rec["val"], dict):
            raise TrainingError(f"{path}, line {n}: 'val' must be a mapping of validation "
                                f"figures, got {rec['val']!r}")
        (val if "val" in rec else train)[rec["step"]] = rec
    return [train[s] for s in sorted(train)], [val[s] for s in sorted(val)]


def _points(records: list[dict[str, Any]], get: Any) -> tuple[list[int], list[float]]:
    """(steps, values) where ``get(record)`` is a positive finite number (log axes)."""
    steps, values = [], []
    for r in records:
        v = get(r)
        if isinstance(v, (int, float)) and math.isfinite(v) and v > 0:
            steps.append(r["step"])
            values.append(float(v))
    return steps, values


def _running_mean(values: list[float], k: int) -> list[float]:
    """Mean of each value and the up to k − 1 logged values before it."""
    return [sum(values[max(0, i - k + 1):i + 1]) / (i + 1 - max(0, i - k + 1))
            for i in range(len(values))]


def _val_series(val: list[dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
    """Label → (getter of the NOA's MSE, getter of persistence's), overall then per policy."""
    def figures(r: dict[str, Any], policy: str | None) -> dict[str, Any]:
        v = r["val"]
        if policy is None:
            return {"traj_mse": v.get("val_traj_mse"),
                    "persistence_mse": v.get("val_persistence_mse")}
        return v.get("by_policy", {}).get(policy, {})

    labels: list[str | None] = [None, *sorted({p for r in val
                                               for p in r["val"].get("by_policy", {})})]
    return {label or "all": (lambda r, q=label: figures(r, q).get("traj_mse"),
                             lambda r, q=label: figures(r, q).get("persistence_mse"))
            for label in labels}


def curves_figure(train: list[dict[str, Any]], val: list[dict[str, Any]]) -> Any:
    """The two-panel matplotlib ``Figure`` of ``read_log``'s records (module docstring)."""
    from matplotlib.figure import Figure  # Agg canvas, no global pyplot state

    fig = Figure(figsize=(11, 4), layout="constrained")  # keeps the two y labels apart
    loss_ax, val_ax = fig.subplots(1, 2)
    for i, term in enumerate(LOSS_TERMS):
        steps, values = _points(train, lambda r, t=term: r.get(t))
        if steps:
            loss_ax.plot(steps, values, color=f"C{i}", lw=0.8, alpha=0.3)
            loss_ax.plot(steps, _running_mean(values, SMOOTH_POINTS), color=f"C{i}", lw=1.5,
                         label=term)
    loss_ax.set(xlabel="step", ylabel="loss (last step's value)", yscale="log",
                title="training loss terms")
    for i, (label, (noa, pers)) in enumerate(_val_series(val).items()):
        colour = f"C{i}"
        steps, values = _points(val, noa)
        if steps:
            val_ax.plot(steps, values, "o-", color=colour, ms=3, label=f"NOA, {label}")
        steps, values = _points(val, pers)
        if steps:
            val_ax.plot(steps, values, "--", color=colour, lw=1, label=f"persistence, {label}")
    val_ax.set(xlabel="step", ylabel="trajectory MSE over H steps", yscale="log",
               title="validation")
    for ax in (loss_ax, val_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    return fig


def plot_training_curves(log: Path, out: Path) -> Path:
    """Draw ``log`` (a metrics.jsonl) into the PNG ``out`` (written atomically); returns
    ``out``."""
    train, val = read_log(log)
    if not train and not val:
        raise TrainingError(f"{log}: no training or validation records to plot")
    buf = io.BytesIO()
    curves_figure(train, val).savefig(buf, format="png", dpi=90, bbox_inches="tight")
    write_atomic(out, buf.getvalue())
    return out


def write_curves_html(png: Path, out: Path, title: str = "NOA training curves") -> Path:
    """A self-contained HTML page (no scripts, no external resources) showing the PNG ``png``
    inline, written atomically to ``out``; returns ``out``."""
    if not png.is_file():
        raise TrainingError(f"{png}: no training curves to embed (noa train writes them at the "
                            "end of a run)")
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    text = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<img alt=\"{html.escape(title)}\" src=\"data:image/png;base64,{data}\">\n"
            "</body></html>\n")
    write_atomic(out, text)
    return out
