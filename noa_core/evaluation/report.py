"""``report.md`` and a self-contained ``report.html`` (plots as base64 PNG, no scripts, no
external resources) from ``metrics.json``, ``gate.json`` and a few rollout frames.

Plots (matplotlib, Agg canvas through ``Figure``; no pyplot state): error against step for the
NOA and every baseline; token histograms of NOA against ground truth per codebook; rollout
frames side by side; the contingency table of the two clusterings. Both files are built from one
list of sections, so the text and tables of the two always agree.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from noa_core.atomic import write_atomic

BASELINES = ("persistence", "theta_only", "noise_floor", "new_weights")
SPEC = ("vq_recon_error", "token_entropy_ratio", "codebook_utilization", "cluster_ari",
        "rollout_mse")


@dataclass
class ReportFrames:
    """Channel-0 frames of a few test operators: ``noa`` and ``ground_truth`` [k, T+1, H, W]
    (ground truth: the start state, then the realization mean)."""

    sample_ids: list[int]
    noa: np.ndarray
    ground_truth: np.ndarray


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)  # (alt text, base64 PNG)


# --- formatting -----------------------------------------------------------------------------


def fmt(x: Any) -> str:
    """A number with 4 significant digits; None as 'n/a'."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def fmt_ci(ci: Sequence[float] | None) -> str:
    return "n/a" if not ci else f"[{ci[0]:.4g}, {ci[1]:.4g}]"


# --- plots ----------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # Agg canvas, no global pyplot state

    return Figure(figsize=(width, height), layout="constrained")


def plot_error_vs_step(metrics: Mapping[str, Any]) -> str | None:
    """MSE against step: the NOA and every baseline that has a per-step curve."""
    curves: list[tuple[str, list[float], str]] = []
    for key, label, style in (("rollout_mse", "NOA", "-"), ("persistence", "persistence", "--"),
                              ("theta_only", "θ-only", "--"),
                              ("noise_floor", "noise floor (vs other M−1)", ":"),
                              ("new_weights", "same θ, new weights", "-."),
                              ("context_ablation", "NOA, another operator's context", "-")):
        entry = metrics.get(key) or {}
        if entry.get("per_step"):
            curves.append((label, entry["per_step"], style))
    floor = (metrics.get("noise_floor") or {}).get("per_step_vs_all_realizations")
    if floor:
        curves.append(("noise floor (vs all M)", floor, ":"))
    if not curves:
        return None
    fig = _figure(7, 4)
    ax = fig.add_subplot()
    for label, ys, style in curves:
        ax.plot(np.arange(1, len(ys) + 1), ys, style, label=label)
    ax.set_xlabel("step after the start state")
    ax.set_ylabel("MSE against the realization mean")
    if all(min(ys) > 0 for _, ys, _ in curves):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def plot_token_histograms(metrics: Mapping[str, Any]) -> str | None:
    """Token frequencies of the NOA against the ground truth, every codebook side by side on
    one axis (one axes keeps the plot cheap to draw for dozens of codebooks)."""
    per = (metrics.get("token_entropy_ratio") or {}).get("per_codebook") or []
    if not per:
        return None
    fig = _figure(min(16.0, 3 + 0.12 * sum(cb["codes"] for cb in per)), 3.2)
    ax = fig.add_subplot()
    x0, centres = 0, []
    for q, cb in enumerate(per):
        gt, pred = np.asarray(cb["counts_gt"], float), np.asarray(cb["counts_pred"], float)
        k = np.arange(len(gt)) + x0
        ax.bar(k - 0.2, gt / max(gt.sum(), 1), width=0.4, color="tab:blue",
               label="ground truth" if q == 0 else None)
        ax.bar(k + 0.2, pred / max(pred.sum(), 1), width=0.4, color="tab:orange",
               label="NOA" if q == 0 else None)
        centres.append(x0 + (len(gt) - 1) / 2)
        x0 += len(gt) + 2
        ax.axvline(x0 - 1.5, color="0.8", lw=0.8)
    ax.set_xticks(centres, [str(q) for q in range(len(per))], fontsize=7)
    ax.set_xlim(-1, x0 - 1.5)
    ax.set_xlabel("codebook (codes left to right within each)")
    ax.set_ylabel("token frequency")
    ax.legend(fontsize=8)
    return _png(fig)


def _mosaic(frames: np.ndarray) -> np.ndarray:
    """[n, H, W] → one [H, n·(W+1) − 1] image, frames separated by a NaN column."""
    n, h, w = frames.shape
    out = np.full((h, n * (w + 1) - 1), np.nan)
    for i, f in enumerate(frames):
        out[:, i * (w + 1):i * (w + 1) + w] = f
    return out


def plot_frames(frames: ReportFrames | None) -> str | None:
    """Ground-truth mean, NOA and their difference at five times, per shown operator."""
    if frames is None or frames.noa.size == 0:
        return None
    k, t1 = frames.noa.shape[:2]
    times = sorted({0, (t1 - 1) // 4, (t1 - 1) // 2, 3 * (t1 - 1) // 4, t1 - 1})
    fig = _figure(2.0 * len(times), 1.6 * 3 * k)
    axes = fig.subplots(3 * k, 1, squeeze=False)[:, 0]
    for s in range(k):
        gt, noa = frames.ground_truth[s][times], frames.noa[s][times]
        lo, hi = float(np.nanmin(gt)), float(np.nanmax(gt))
        diff = noa - gt
        span = float(np.nanmax(np.abs(diff))) or 1.0
        for r, (name, img, kw) in enumerate((
                ("ground truth", gt, {"vmin": lo, "vmax": hi}),
                ("NOA", noa, {"vmin": lo, "vmax": hi}),
                ("NOA − truth", diff, {"cmap": "coolwarm", "vmin": -span, "vmax": span}))):
            ax = axes[3 * s + r]
            ax.imshow(_mosaic(np.nan_to_num(img)), **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel(name, fontsize=7)
            if r == 0:
                ax.set_title(f"operator {frames.sample_ids[s]}: t = "
                             f"{', '.join(str(t) for t in times)}", fontsize=8)
    return _png(fig)


def plot_contingency(metrics: Mapping[str, Any]) -> str | None:
    """Contingency of NOA clusters (rows) against ground-truth clusters (columns)."""
    table = (metrics.get("cluster_ari") or {}).get("contingency")
    if not table:
        return None
    arr = np.asarray(table)
    fig = _figure(5, 4.5)
    ax = fig.add_subplot()
    im = ax.imshow(arr, cmap="Blues")
    for (i, j), v in np.ndenumerate(arr):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(arr.shape[1]))
    ax.set_yticks(range(arr.shape[0]))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("ground-truth cluster")
    ax.set_ylabel("NOA cluster")
    fig.colorbar(im, ax=ax)
    return _png(fig)


# --- content --------------------------------------------------------------------------------


def _ci_head(m: Mapping[str, Any]) -> str:
    return f"{100 * float((m.get('bootstrap') or {}).get('level', 0.95)):g}% CI"


def _criteria_table(m: Mapping[str, Any], g: Mapping[str, Any]
                    ) -> tuple[list[str], list[list[str]]]:
    head = ["criterion", "value", _ci_head(m), "n", "rule", "passed", "reason"]
    rows = [[c["name"], fmt(c["value"]), fmt_ci(c.get("ci")), fmt(c.get("n")),
             f"{c['op']} {c['threshold']:.4g}", "PASS" if c["passed"] else "FAIL",
             c.get("reason") or ""] for c in g["criteria"]]
    return head, rows


def _baseline_table(m: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["predictor", "MSE", _ci_head(m), "n", "note"]
    rows = []
    for key, label in (("rollout_mse", "NOA"), ("persistence", "persistence"),
                       ("theta_only", "θ-only (analytic)"),
                       ("noise_floor", "noise floor"), ("new_weights", "same θ, new weights"),
                       ("context_ablation", "NOA, shuffled context")):
        e = m.get(key)
        if e is None and key == "context_ablation":
            continue  # only with --ablate-context
        e = e or {}
        note = e.get("reason", "")
        if key == "context_ablation":
            note = (f"another operator's context: predictions move by "
                    f"{fmt(e.get('prediction_change'))} of their own motion; share of the "
                    f"gain over θ-only lost: {fmt(e.get('skill_lost'))}")
        if key == "noise_floor" and e.get("value_vs_all_realizations") is not None:
            note = f"{fmt(e['value_vs_all_realizations'])} against all M (NOA's scale)"
        if key == "new_weights" and e.get("diverged"):
            note = f"{e['diverged']} operator(s) diverged with new weights, left out"
        rows.append([label, fmt(e.get("value")), fmt_ci(e.get("ci")), fmt(e.get("n")), note])
    return head, rows


def _policy_table(m: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    policies = sorted((m.get("samples") or {}).get("by_policy", {}))
    ablation = ("context_ablation",) if m.get("context_ablation") else ()
    head = ["update policy", "n", "NOA", "persistence", "θ-only", "noise floor", "new weights",
            *(("NOA, shuffled context",) if ablation else ())]
    rows = []
    for p in policies:
        row = [p, fmt(m["samples"]["by_policy"][p])]
        for key in ("rollout_mse", *BASELINES, *ablation):
            sub = ((m.get(key) or {}).get("by_policy") or {}).get(p, {})
            ci = sub.get("ci")
            row.append(fmt(sub.get("value")) + (f" {fmt_ci(ci)}" if ci else ""))
        rows.append(row)
    return head, rows


def _monitor_table(m: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["monitor", "value", _ci_head(m), "formula"]
    rows = []
    for key in ("rollout_nmse", "token_agreement", "heads_mse", "skill_vs_new_weights"):
        e = m.get(key)
        if e:
            rows.append([key, fmt(e.get("value")), fmt_ci(e.get("ci")), e.get("formula", "")])
    heads = (m.get("heads_mse") or {}).get("per_family") or {}
    for fam, v in heads.items():
        rows.append([f"heads_mse.{fam}", fmt(v), "", "head MSE of this family"])
    util_gt = (m.get("codebook_utilization") or {}).get("ground_truth")
    rows.append(["utilization of ground-truth tokens", fmt(util_gt), "", "same formula"])
    stored = (m.get("monitors") or {}).get("stored_token_agreement")
    rows.append(["agreement with tokens stored by noa replay", fmt(stored), "",
                 "n/a: no stored tokens of this tokenizer and window" if stored is None else ""])
    return head, rows


def build_sections(m: Mapping[str, Any], g: Mapping[str, Any], frames: ReportFrames | None,
                   with_images: bool) -> list[Section]:
    """The report's content; images only when ``with_images`` (the HTML)."""
    decision = "PASSED" if g["passed"] else "FAILED"
    failed = [c["name"] for c in g["criteria"] if not c["passed"]]
    s0 = Section("Decision", [
        f"Gate **{decision}** under criteria `{g.get('criteria_name')}` "
        f"(sha256 {str(g.get('criteria_sha256'))[:12]}…)."
        + (f" Failed: {', '.join(failed)}." if failed else ""),
        f"{m['samples']['test']} test operators (ids sha256 {m['test_ids_sha256'][:12]}…), "
        f"horizon H = {m['horizon']}, context K = {m['context']} ("
        + ("the model reads realization 0's states u_0 … u_K; rollout, scoring and every "
           "baseline start at u_K" if m.get("context_fed") else "no observed states")
        + f"), M = {m['realizations']} ground-truth realizations, {m['codebooks']} "
        f"codebooks; bootstrap {m['bootstrap']['resamples']} resamples, seed {m['seed']}."])
    s0.tables.append(_criteria_table(m, g))
    champ = g.get("champion") or {}
    if not champ.get("compared"):
        s0.paragraphs.append(f"Champion rule not applied: {champ.get('reason', 'n/a')}.")
    s1 = Section("Rollout fidelity and baselines", [
        "All predictors are scored on the same operators and steps against the mean of the M "
        "ground-truth realizations (ARCHITECTURE.md, rollout fidelity). θ does not determine "
        "the operator's weights, so the baselines, not the spec's threshold alone, say whether "
        "the NOA has learnt anything: the skill criteria divide the NOA's error by "
        "persistence's and the θ-only predictor's."])
    s1.tables.append(_baseline_table(m))
    s1.tables.append(_policy_table(m))
    if with_images and (img := plot_error_vs_step(m)):
        s1.images.append(("error against step, NOA and baselines", img))
    s2 = Section("Tokens and clusters", [m.get("asymmetry", "")])
    ter = m.get("token_entropy_ratio") or {}
    s2.paragraphs.append(f"Σ H(NOA tokens) = {fmt(ter.get('sum_entropy_pred'))} nats, "
                         f"Σ H(ground-truth tokens) = {fmt(ter.get('sum_entropy_gt'))} nats.")
    ari = m.get("cluster_ari") or {}
    s2.paragraphs.append(f"k-means with k = {ari.get('k')} on each side; ARI "
                         f"{fmt(ari.get('value'))}" + (f" ({ari['reason']})" if ari.get("reason")
                                                       else "") + ".")
    if with_images:
        for alt, img in (("token histograms, NOA against ground truth",
                          plot_token_histograms(m)),
                         ("cluster contingency, NOA against ground truth", plot_contingency(m))):
            if img:
                s2.images.append((alt, img))
    s3 = Section("Monitors")
    s3.tables.append(_monitor_table(m))
    s4 = Section("Rollout frames", ["Channel 0; rows: ground-truth realization mean (t = 0: the "
                                    "start state), NOA, difference."])
    if with_images and (img := plot_frames(frames)):
        s4.images.append(("rollout frames side by side", img))
    s5 = Section("Formulas")
    s5.tables.append((["metric", "formula"],
                      [[k, v["formula"]] for k, v in m.items()
                       if isinstance(v, Mapping) and "formula" in v]))
    return [s0, s1, s2, s3, s4, s5]


# --- rendering ------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(sections: list[Section]) -> str:
    lines = ["# NOA evaluation report", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        for head, rows in s.tables:
            lines.append("| " + " | ".join(_md_cell(h) for h in head) + " |")
            lines.append("|" + "---|" * len(head))
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            lines.append("")
    lines.append("Plots: see report.html.")
    return "\n".join(lines) + "\n"


def _inline(text: str) -> str:
    """Escape, then the two markdown marks the report uses: **bold** and `code`."""
    out = html.escape(text)
    parts = out.split("**")
    out = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #eee; }
img { max-width: 100%; display: block; margin: 1em 0; }
"""


def render_html(sections: list[Section]) -> str:
    body = ["<h1>NOA evaluation report</h1>"]
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        body += [f"<p>{_inline(p)}</p>" for p in s.paragraphs]
        for head, rows in s.tables:
            body.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>"
                                                       for h in head) + "</tr></thead><tbody>")
            body += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>"
                     for r in rows]
            body.append("</tbody></table>")
        body += [f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'
                 for alt, b64 in s.images]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>NOA evaluation report</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_reports(md_path: Path, html_path: Path, metrics: Mapping[str, Any],
                  gate_doc: Mapping[str, Any], frames: ReportFrames | None) -> None:
    """Write report.md (text and tables) and report.html (the same, with plots)."""
    write_atomic(md_path, render_markdown(build_sections(metrics, gate_doc, frames, False)))
    write_atomic(html_path, render_html(build_sections(metrics, gate_doc, frames, True)))
