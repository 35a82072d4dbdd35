"""``noa evaluate``: the Phase 1 criteria, baselines, skill and the gate on the test split."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from noa_core.cli.args import add_progress, non_negative


def gate_table(gate: dict[str, Any]) -> str:
    """The gate as an aligned text table (one criterion per line) and the decision."""
    rows = [("criterion", "value", "rule", "n", "result")]
    for c in gate["criteria"]:
        value = "n/a" if c["value"] is None else f"{c['value']:.4g}"
        result = "pass" if c["passed"] else f"FAIL {c.get('reason') or ''}".rstrip()
        rows.append((c["name"], value, f"{c['op']} {c['threshold']:.4g}",
                     "" if c.get("n") is None else str(c["n"]), result))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
    lines.append(f"gate: {'PASSED' if gate['passed'] else 'FAILED'}")
    return "\n".join(lines)


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from noa_core.errors import EvaluationError
    from noa_core.evaluation.evaluate import evaluate

    champion: Any = a.champion_metrics
    if a.champion_model is not None:
        if a.champion_metrics is not None:
            raise EvaluationError("give --champion-metrics or --champion-model, not both")
        from noa_core.tracking import champion_metrics

        champion = champion_metrics(a.tracking_uri, a.champion_model)
    result = evaluate(a.checkpoint, a.replay, a.tokenizer, a.out, criteria=a.criteria,
                      tracking_uri=a.tracking_uri, run_id=a.run_id, context=a.context,
                      progress=a.progress, champion_metrics=champion,
                      ablate_context=a.ablate_context)
    print(gate_table(result["gate"]))
    abl = result["metrics"].get("context_ablation")
    if abl is not None:
        print(f"context ablation (K = {result['metrics']['context']}): rollout MSE "
              f"{abl['rollout_mse_with_context']:.4g} with its own context, "
              f"{abl['value']:.4g} with another operator's; predictions move by "
              f"{abl['prediction_change']:.3g} of their own motion")
    print(f"wrote {a.out}/metrics.json, gate.json, report.md, report.html")
    return 0  # a failed gate is a result, not an error


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="score a NOA checkpoint against the Phase 1 criteria and baselines",
        description="Roll the NOA out deterministically on the test split of a replay file; "
                    "compute the five Phase 1 criteria (VQ reconstruction error, token entropy "
                    "ratio, codebook utilization, cluster ARI, rollout MSE), the baselines "
                    "(persistence, θ-only, noise floor, same θ with new weights), skill, sample "
                    "counts and bootstrap intervals; decide the gate. Writes OUT/metrics.json, "
                    "OUT/gate.json, OUT/report.md and OUT/report.html. Exits 0 whether or not the "
                    "gate passes; non-zero only on bad input.")
    p.add_argument("--checkpoint", required=True, type=Path, metavar="DIR",
                   help="the checkpoint directory `noa train` wrote (OUT/checkpoint)")
    p.add_argument("--replay", required=True, type=Path, metavar="FILE",
                   help="replay file with the test split's trajectories")
    p.add_argument("--tokenizer", required=True, type=Path, metavar="DIR",
                   help="the frozen tokenizer the checkpoint was trained against")
    p.add_argument("--criteria", default=None, metavar="PATH",
                   help="criteria YAML (default: the built-in Phase 1 criteria, equal to "
                        "configs/criteria/phase1.yaml)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    p.add_argument("--context", type=non_negative, default=None, metavar="K",
                   help="observed transitions given to the model: realization 0's states u_0 … "
                        "u_K; rollout, scoring and every baseline start at u_K (default: "
                        "training.context of the checkpoint)")
    p.add_argument("--ablate-context", action="store_true",
                   help="also roll out each operator with another test operator's context "
                        "(a seeded derangement) and report what the context contributes "
                        "(metrics.json: context_ablation); needs K ≥ 1")
    p.add_argument("--champion-metrics", type=Path, default=None, metavar="FILE",
                   help="the champion's metrics.json, for the champion rule")
    p.add_argument("--champion-model", default=None, metavar="NAME",
                   help="read the champion's metrics from the registry (needs --tracking-uri)")
    p.add_argument("--tracking-uri", default=None, metavar="URI",
                   help="MLflow URI to log into (with --run-id); never guessed")
    p.add_argument("--run-id", default=None, metavar="ID",
                   help="the run `noa train` opened (with --tracking-uri)")
    add_progress(p)
    p.set_defaults(func=_cmd_evaluate)
