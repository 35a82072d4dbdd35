"""``train_noa``: the NOA against the frozen tokenizer; resumable across pod retries."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def train_noa(config: str, replay: Input[Dataset], tokenizer: Input[Model], tracking_uri: str,
              work_dir: str, pipeline_run_id: str, checkpoint: Output[Model],
              metrics: Output[Metrics], curves: Output[HTML], max_steps: int = 0,
              max_minutes: float = 0.0,
              gpus: int = 0) -> NamedTuple("TrainOutputs", [("mlflow_run_id", str),
                                                             ("steps", int),
                                                             ("resumed_from_step", int)]):
    """``noa train --config CFG --replay FILE --tokenizer DIR --resume --tracking-uri URI``.

    The trainer writes to ``work_dir/runs/<pipeline_run_id>/train`` (a volume that outlives the
    pod), so a retried pod resumes from the last checkpoint instead of starting over. Opens the
    MLflow run the later stages log into. ``max_steps``/``max_minutes`` 0 keep the config's;
    ``gpus``: the GPUs granted (0 = CPU; > 1 = one DDP process per GPU under torchrun); granted
    GPUs torch cannot see are an error. ``curves``: the loss terms and the validation MSE against
    persistence over the steps (``OUT/curves.png`` in an HTML page, for the KFP UI).
    """
    import shutil
    from collections import namedtuple
    from pathlib import Path

    from noa_core.training.curves import CURVES_FILE, write_curves_html
    from noa_core.training.stage import run_scoped_dir, train_stage
    from noa_core.training.trainer import BEST_DIR

    out = run_scoped_dir(work_dir, pipeline_run_id)
    result = train_stage(config, replay.path, tokenizer.path, out, tracking_uri=tracking_uri,
                         pipeline_run_id=pipeline_run_id, max_steps=max_steps or None,
                         max_minutes=max_minutes or None, gpus=gpus, resume=True)
    shutil.copytree(out / BEST_DIR, checkpoint.path, dirs_exist_ok=True)
    write_curves_html(out / CURVES_FILE, Path(curves.path))
    for key in ("val_traj_mse", "val_persistence_mse", "steps", "skipped_nonfinite",
                "resumed_from_step"):
        metrics.log_metric(key, float(result[key]))
    checkpoint.metadata.update({"mlflow_run_id": result["mlflow_run_id"],
                                "steps": int(result["steps"])})
    outputs = namedtuple("TrainOutputs", ["mlflow_run_id", "steps", "resumed_from_step"])
    return outputs(result["mlflow_run_id"], int(result["steps"]),
                   int(result["resumed_from_step"]))
