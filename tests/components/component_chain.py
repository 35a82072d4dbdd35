"""What the component tests share besides fixtures: the chain of artifacts, its constants and
the two stage calls tests repeat (a uniquely named module: every test folder has a conftest)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp import dsl

NUM_OPERATORS = 18  # 12/3/3 train/val/test
JOB = "job-components-1"  # stands for dsl.PIPELINE_JOB_ID_PLACEHOLDER
MODEL = "noa-components-test"


@dataclass
class Chain:
    """The artifacts of one pass through the components, and their return values."""

    root: Path
    config: Path
    criteria: Path
    tracking_uri: str
    outputs: dict[str, Any]
    artifacts: dict[str, dsl.Artifact]

    def new(self, kind: type[dsl.Artifact], name: str) -> Any:
        """A fresh output artifact whose path lies under the chain's root."""
        return kind(name=name, uri=str(self.root / "artifacts" / name), metadata={})


def run_train(c: Chain, job: str, name: str) -> tuple[Any, Any, Any, Any]:
    """``train_noa``'s body for pipeline run ``job``: (outputs, checkpoint, metrics, curves)."""
    from components.train_noa import train_noa

    checkpoint, metrics = c.new(dsl.Model, name), c.new(dsl.Metrics, f"{name}-metrics")
    curves = c.new(dsl.HTML, f"{name}-curves")
    out = train_noa.python_func(config=str(c.config), replay=c.artifacts["replay"],
                                tokenizer=c.artifacts["tokenizer"], tracking_uri=c.tracking_uri,
                                work_dir=str(c.root / "work"), pipeline_run_id=job,
                                checkpoint=checkpoint, metrics=metrics, curves=curves)
    return out, checkpoint, metrics, curves


def run_register(c: Chain) -> str:
    """``register``'s body on the chain's checkpoint and ONNX model: the new version."""
    from components.register import register

    return register.python_func(
        checkpoint=c.artifacts["checkpoint"], onnx=c.artifacts["onnx"], model_name=MODEL,
        tracking_uri=c.tracking_uri, run_id=c.outputs["train"].mlflow_run_id,
        pipeline_run_id=JOB, image_digest="noa-core:test",
        criteria=c.outputs["evaluate"].criteria_hash)
