"""The training stage as the pipeline runs it: a run-scoped, resumable output directory, a
capped budget, and one process per GPU under ``torchrun`` when more than one GPU is granted.

A retried pod starts with an empty filesystem, so the trainer's output directory lives in a
location that outlives the pod and is scoped to the pipeline run
(``WORK_DIR/runs/<pipeline run id>/train``, on the artifact-cache volume): the retry finds
``state.pt`` there and continues exactly where the killed attempt last checkpointed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from noa_core.config import NOAConfig, config_from_dict, load_config
from noa_core.errors import ConfigError, NOAError, TrainingError

RUNS_DIR = "runs"
TRAIN_DIR = "train"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def run_scoped_dir(work_dir: str | Path, pipeline_run_id: str, stage: str = TRAIN_DIR) -> Path:
    """``work_dir/runs/<pipeline_run_id>/<stage>``; refuses ids that could leave ``work_dir``."""
    if not _RUN_ID.match(pipeline_run_id or "") or ".." in pipeline_run_id:
        raise ConfigError(f"pipeline run id {pipeline_run_id!r}: expected letters, digits, '.', "
                          "'_' or '-' (it names a directory)")
    return Path(work_dir) / RUNS_DIR / pipeline_run_id / stage


def with_budget(cfg: NOAConfig, max_steps: int | None, max_minutes: float | None) -> NOAConfig:
    """``cfg`` with ``training.max_steps`` / ``training.max_minutes`` replaced where given,
    validated like the config file (a ``model_copy`` would let 0 or a negative budget through
    and train no step)."""
    updates = {k: v for k, v in (("max_steps", max_steps), ("max_minutes", max_minutes))
               if v is not None}
    if not updates:
        return cfg
    data = cfg.model_dump(mode="json")
    data["training"].update(updates)
    return config_from_dict(data, "training budget override")


def train_stage(config: str | Path, replay: str | Path, tokenizer: str | Path, out: str | Path,
                *, tracking_uri: str | None = None, pipeline_run_id: str | None = None,
                max_steps: int | None = None, max_minutes: float | None = None,
                gpus: int = 0, resume: bool = True, progress: bool = False) -> dict[str, Any]:
    """Train (resuming from ``out/state.pt`` when present); returns ``out/metrics.json``.

    ``gpus`` is what the task was granted: 0 trains on the CPU; 1 in-process on the GPU; more
    launches ``torchrun --standalone --nproc_per_node gpus noa train ...`` (DDP, one process per
    GPU) and reads the metrics rank 0 wrote. Granted GPUs that torch cannot see (a CPU image on a
    GPU node, a missing driver) are an error, never a silent CPU run.
    """
    out = Path(out)
    require_gpus(gpus)
    resumed_from = _saved_step(out) if resume else 0
    if gpus > 1:
        metrics = _train_torchrun(config, replay, tokenizer, out, nproc=gpus, resume=resume,
                                  tracking_uri=tracking_uri, pipeline_run_id=pipeline_run_id,
                                  max_steps=max_steps, max_minutes=max_minutes)
    else:
        from noa_core.training.trainer import train

        cfg = with_budget(load_config(config), max_steps, max_minutes)
        extra = {} if tracking_uri is None else {"tracking_uri": tracking_uri,
                                                  "pipeline_run_id": pipeline_run_id}
        metrics = train(cfg, replay, tokenizer, out, resume=resume, progress=progress, **extra)
    return {**metrics, "resumed_from_step": resumed_from}


def require_gpus(gpus: int) -> None:
    """``TrainingError`` unless torch sees at least ``gpus`` CUDA devices."""
    import torch

    if gpus < 0:
        raise TrainingError(f"train_gpus = {gpus}: expected 0 (CPU) or more")
    seen = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus > seen:
        build = torch.version.cuda or "none (a CPU build)"
        raise TrainingError(f"the task was granted {gpus} GPU(s) but torch sees {seen} (torch "
                            f"{torch.__version__}, CUDA {build}): run training in the CUDA "
                            "image (train_image) or set train_gpus=0 to train on the CPU")


def _saved_step(out: Path) -> int:
    """The step of the last training state saved in ``out`` (0 when there is none)."""
    import torch

    from noa_core.training.trainer import STATE_FILE

    state = out / STATE_FILE
    if not state.exists():
        return 0
    return int(torch.load(state, map_location="cpu", weights_only=True)["step"])


def _train_torchrun(config: str | Path, replay: str | Path, tokenizer: str | Path, out: Path, *,
                    nproc: int, resume: bool, tracking_uri: str | None,
                    pipeline_run_id: str | None, max_steps: int | None,
                    max_minutes: float | None) -> dict[str, Any]:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    noa = shutil.which("noa") or str(Path(sys.executable).with_name("noa"))
    cmd = [torchrun, "--standalone", f"--nproc_per_node={nproc}", "--no-python", noa, "train",
           "--config", str(config), "--replay", str(replay), "--tokenizer", str(tokenizer),
           "--out", str(out), "--no-progress"]
    cmd += ["--resume"] if resume else []
    for flag, value in (("--max-steps", max_steps), ("--max-minutes", max_minutes),
                        ("--tracking-uri", tracking_uri), ("--pipeline-run-id", pipeline_run_id)):
        if value is not None:
            cmd += [flag, str(value)]
    done = subprocess.run(cmd, env=os.environ.copy(), check=False)
    if done.returncode != 0:
        raise NOAError(f"torchrun with {nproc} processes exited with {done.returncode} "
                       f"(its log is above)")
    from noa_core.training.trainer import METRICS_FILE

    return json.loads((out / METRICS_FILE).read_text())
