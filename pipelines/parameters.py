"""The pipeline's name and parameters with their defaults, importable without ``kfp`` (the
``noa`` command's help lists them; ``noa_core`` never imports ``kfp``)."""

from __future__ import annotations

from components import PROJECT_IMAGE
from noa_core import __version__

#: Training runs on GPUs, so in the CUDA image (docker/Dockerfile.cuda); every other task uses
#: the CPU image. Both are tagged by version.
TRAIN_IMAGE = f"noa-core:{__version__}-cuda"

PIPELINE_NAME = "noa-phase1"
PIPELINE_DESCRIPTION = ("NOA Phase 1: replay CNO ground truth, train the U-AFNO NOA against the "
                        "frozen tokenizer, evaluate the Phase 1 criteria, export ONNX, register, "
                        "promote only when the gate passes.")

#: The artifact-cache volume (created by k8s/) and where train mounts it: its run-scoped
#: checkpoints live there, so a retried pod resumes.
CACHE_PVC = "noa-artifact-cache"
CACHE_MOUNT = "/cache"

#: Pipeline parameters and their defaults (``noa pipeline --param KEY=VALUE`` overrides them).
DEFAULTS: dict[str, object] = {
    "dataset_uri": "s3://noa-phase0/phase0",
    "tokenizer_uri": "",
    "preset": "small",
    "criteria": "",
    "tracking_uri": "http://mlflow.noa.svc.cluster.local:5000",
    "model_name": "noa-phase1",
    "image": PROJECT_IMAGE,
    "train_image": TRAIN_IMAGE,
    "replay_shards": 4,
    "replay_gpus": 0,
    "train_gpus": 1,
    "max_steps": 0,
    "max_minutes": 0.0,
    "work_dir": CACHE_MOUNT,
    "cache_pvc": CACHE_PVC,
}
