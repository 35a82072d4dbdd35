"""The ``tiny`` pipeline through ``kfp.local.DockerRunner``: every stage in the image, as its
non-root user, on the host network, reaching moto's S3 endpoint and an ``mlflow server`` on
loopback. The gate is sized to pass so every stage, promotion included, runs in a container."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.local_run import run_local

pytestmark = pytest.mark.slow

LENIENT = """min_samples: 4
criteria:
  rollout_mse: {metric: rollout_mse, op: "<", threshold: 100.0}
"""
TASKS = {"pull-dataset", "plan-replay-shards", "merge-replay", "train-noa", "evaluate",
         "export-onnx", "register", "promote", "record-outcome"}
IMAGE_UID = 1000


def test_tiny_pipeline_in_the_image(image: str, docker_env: dict[str, str], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_env["DOCKER_HOST"])
    (tmp_path / "kfp").mkdir()
    criteria = tmp_path / "kfp" / "lenient.yaml"  # under the pipeline root: the tasks see it
    criteria.write_text(LENIENT)
    run = run_local(tmp_path, preset="tiny", runner="docker", image=image, progress=False,
                    params={"max_steps": 10, "replay_shards": 2, "criteria": str(criteria)})
    assert run.outcome["state"] == "SUCCEEDED", run.outcome
    assert run.tracking_uri.startswith("http://127.0.0.1:")
    assert (run.version, run.champion) == ("1", "1")
    ran = {p.name for p in run.run_dir.iterdir()}
    assert ran >= TASKS and {"for-loop-2-iteration-0", "for-loop-2-iteration-1"} <= ran
    # Outputs were written inside containers, by the image's user, not by this process.
    for output in ("train-noa/checkpoint", "evaluate/gate", "export-onnx/onnx"):
        path = run.run_dir / output
        assert path.exists(), output
        assert path.stat().st_uid == IMAGE_UID != os.getuid(), output
