"""``noa train``."""

from __future__ import annotations

import argparse
from pathlib import Path

from noa_core.cli.args import add_progress, positive, positive_float
from noa_core.tracking.constants import RUN_ID_KEY


def _cmd_train(a: argparse.Namespace) -> int:
    from noa_core.config import load_config
    from noa_core.training.stage import with_budget
    from noa_core.training.trainer import train

    cfg = with_budget(load_config(a.config), a.max_steps, a.max_minutes)
    m = train(cfg, a.replay, a.tokenizer, a.out, resume=a.resume, progress=a.progress,
              tracking_uri=a.tracking_uri, pipeline_run_id=a.pipeline_run_id)
    print(f"wrote {a.out}: {m['steps']} steps ({m['skipped_nonfinite']} skipped as non-finite), "
          f"val trajectory MSE {m['val_traj_mse']:.4g} against persistence "
          f"{m['val_persistence_mse']:.4g} on {m['val_samples']} operators")
    if RUN_ID_KEY in m:
        print(f"{RUN_ID_KEY} {m[RUN_ID_KEY]}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train", help="train the NOA against the frozen tokenizer",
        description="Train the U-AFNO NOA on the train split of a replay file, with the frozen "
                    "tokenizer's alignment losses; validate on the val split; write OUT/"
                    "checkpoint/ (the best model), OUT/state.pt (resume), OUT/metrics.jsonl, "
                    "OUT/metrics.json (val_traj_mse, val_persistence_mse, steps, "
                    "skipped_nonfinite) and OUT/curves.png (loss terms and validation MSE "
                    "against persistence, per update policy, over the steps).")
    t.add_argument("--config", required=True, metavar="CFG",
                   help="preset name or YAML (sections model and training)")
    t.add_argument("--replay", required=True, type=Path, metavar="FILE")
    t.add_argument("--tokenizer", required=True, type=Path, metavar="DIR")
    t.add_argument("--out", required=True, type=Path, metavar="DIR")
    t.add_argument("--resume", action="store_true",
                   help="continue from OUT/state.pt exactly when it exists (and, tracking, the "
                        "MLflow run recorded in OUT/mlflow_run.json), else start afresh; "
                        "stderr says which. Only the budget (--max-steps, --max-minutes) may "
                        "differ from the configuration state.pt was written under. Without "
                        "--resume, an earlier training in OUT (state.pt, checkpoint/, metrics, "
                        "curves) is removed first, and stderr says so")
    t.add_argument("--tracking-uri", default=None, metavar="URI",
                   help="log into an MLflow run (sqlite:///PATH or http(s)://HOST:PORT): params, "
                        "resolved config, step metrics; its id goes to OUT/metrics.json as "
                        "mlflow_run_id. Never guessed: without it nothing is tracked")
    t.add_argument("--pipeline-run-id", default=None, metavar="ID",
                   help="the pipeline run this training belongs to (a lineage tag)")
    t.add_argument("--max-steps", type=positive, default=None,
                   help="override training.max_steps")
    t.add_argument("--max-minutes", type=positive_float, default=None,
                   help="override training.max_minutes: a wall-clock cap on the training "
                   "loop, which stops before one more step (as long as the longest recent one) "
                   "and the closing validation and checkpoint would overrun it")
    add_progress(t)
    t.set_defaults(func=_cmd_train)
