"""The NOA Phase 1 pipeline: pull → replay (fan-out) → merge → train → evaluate → export →
register → promote if the gate passed, else reject; an exit handler records every outcome.

::

    pull_dataset ─► plan_replay_shards ─► cno_replay ×N ─► merge_replay ─► train_noa (GPU)
        ─► evaluate ─► export_onnx ─► register ─┬─ dsl.If(passed)  ─► promote
                                               └─ dsl.Else       ─► reject
    record_outcome (ExitHandler: runs whatever happened)

Every task runs the image named by the ``image`` parameter. Credentials never appear here: the
tasks read them from Kubernetes Secrets (``pipelines.platform``).
"""

# No `from __future__ import annotations`: KFP reads the pipeline's parameter types at runtime.
from typing import Any

from kfp import dsl
from kfp.dsl.pipeline_channel import PipelineChannel

from components.cno_replay import cno_replay, plan_replay_shards
from components.evaluate import evaluate
from components.export_onnx import export_onnx
from components.merge_replay import merge_replay
from components.promote import promote
from components.pull_dataset import pull_dataset
from components.record_outcome import record_outcome
from components.register import register
from components.reject import reject
from components.train_noa import train_noa
from pipelines import platform as pf
from pipelines.parameters import DEFAULTS, PIPELINE_DESCRIPTION, PIPELINE_NAME


def _common(task: dsl.PipelineTask, image: PipelineChannel | str, cpu: str, memory: str
            ) -> None:
    """The image every task runs, and its requests equal to its limits."""
    task.set_container_image(image)
    pf.resources(task, cpu, memory)


def build_pipeline(backoff: str = pf.BACKOFF, pinned_image: str | None = None) -> Any:
    """The pipeline, with ``backoff`` before each retry (a cluster waits for a new pod; a local
    run retries at once). ``pinned_image`` fixes every task's image at compile time instead of
    taking it from the ``image`` parameter (``kfp.local.DockerRunner`` does not resolve a
    parameter in the image field)."""

    @dsl.pipeline(name=PIPELINE_NAME, description=PIPELINE_DESCRIPTION)
    def noa_phase1(
        dataset_uri: str = DEFAULTS["dataset_uri"],
        tokenizer_uri: str = DEFAULTS["tokenizer_uri"],
        preset: str = DEFAULTS["preset"],
        criteria: str = DEFAULTS["criteria"],
        tracking_uri: str = DEFAULTS["tracking_uri"],
        model_name: str = DEFAULTS["model_name"],
        image: str = DEFAULTS["image"],
    train_image: str = DEFAULTS["train_image"],
        replay_shards: int = DEFAULTS["replay_shards"],
        replay_gpus: int = DEFAULTS["replay_gpus"],
        train_gpus: int = DEFAULTS["train_gpus"],
        max_steps: int = DEFAULTS["max_steps"],
        max_minutes: float = DEFAULTS["max_minutes"],
        work_dir: str = DEFAULTS["work_dir"],
        cache_pvc: str = DEFAULTS["cache_pvc"],
    ) -> None:
        """Parameters: ``dataset_uri`` (Phase 0 prefix: dataset.h5, tokenizer/, MANIFEST.json),
        ``tokenizer_uri`` ('' = its ``tokenizer/``), ``preset`` (tiny, small, paper or a YAML path
        in the image), ``criteria`` ('' = built-in Phase 1; a path in the image or s3:// URI),
        ``tracking_uri``, ``model_name``, ``image`` (every task but train), ``train_image`` (the
    CUDA image), ``replay_shards`` (parallel replay pods),
        ``replay_gpus`` (0 = CPU replay), ``train_gpus`` (> 1: torchrun, one process per GPU),
        ``max_steps``/``max_minutes`` (0 = the preset's),
        ``work_dir`` (where train keeps run-scoped checkpoints) and ``cache_pvc`` (mounted there).
        """
        job = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        task_image = image if pinned_image is None else pinned_image
        exit_task = record_outcome(tracking_uri=tracking_uri, model_name=model_name,
                                   pipeline_run_id=job)
        _common(exit_task, task_image, "1", "1Gi")
        pf.transient(backoff, pf.never_cached(pf.tracking_access(exit_task)))
        with dsl.ExitHandler(exit_task, name="noa-phase1-run"):
            pulled = pull_dataset(src=dataset_uri, tokenizer_src=tokenizer_uri)
            _common(pulled, task_image, "2", "4Gi")
            pf.transient(backoff, pf.never_cached(pf.s3_access(pulled)))

            plan = plan_replay_shards(num_shards=replay_shards)
            _common(plan, task_image, "1", "512Mi")
            with dsl.ParallelFor(plan.output, name="replay-shards") as shard:
                part = cno_replay(dataset=pulled.outputs["dataset"],
                                  tokenizer=pulled.outputs["tokenizer"], shard=shard,
                                  gpus=replay_gpus)
                _common(part, task_image, "4", "16Gi")
                pf.transient(backoff, pf.with_gpus(part, replay_gpus))
            merged = merge_replay(parts=dsl.Collected(part.outputs["replay"]))
            _common(merged, task_image, "2", "8Gi")

            trained = train_noa(config=preset, replay=merged.outputs["replay"],
                                tokenizer=pulled.outputs["tokenizer"], tracking_uri=tracking_uri,
                                work_dir=work_dir, pipeline_run_id=job, max_steps=max_steps,
                                max_minutes=max_minutes, gpus=train_gpus)
            trained.set_container_image(train_image if pinned_image is None else pinned_image)
            pf.resources(trained, *pf.TRAIN_RESOURCES)
            pf.on_gpu_nodes(trained, train_gpus)
            pf.cache_volume(trained, cache_pvc)
            trained.set_retry(num_retries=pf.RETRIES["train"], backoff_duration=backoff)
            pf.never_cached(pf.tracking_access(trained))
            run_id = trained.outputs["mlflow_run_id"]

            scored = evaluate(checkpoint=trained.outputs["checkpoint"],
                              replay=merged.outputs["replay"],
                              tokenizer=pulled.outputs["tokenizer"], tracking_uri=tracking_uri,
                              run_id=run_id, criteria=criteria, champion_model=model_name)
            _common(scored, task_image, "4", "16Gi")
            pf.never_cached(pf.tracking_access(pf.s3_access(scored)))

            exported = export_onnx(checkpoint=trained.outputs["checkpoint"],
                                   replay=merged.outputs["replay"], tracking_uri=tracking_uri,
                                   run_id=run_id)
            _common(exported, task_image, "2", "8Gi")
            pf.never_cached(pf.tracking_access(exported))

            registered = register(checkpoint=trained.outputs["checkpoint"],
                                  onnx=exported.outputs["onnx"], model_name=model_name,
                                  tracking_uri=tracking_uri, run_id=run_id,
                                  pipeline_run_id=job, image_digest=image,
                                  criteria=scored.outputs["criteria_hash"])
            _common(registered, task_image, "2", "4Gi")
            pf.transient(backoff, pf.never_cached(pf.tracking_access(registered)))
            version = registered.output

            with dsl.If(scored.outputs["passed"] == True, name="gate-passed"):  # noqa: E712
                promoted = promote(model_name=model_name, version=version,
                                   tracking_uri=tracking_uri, pipeline_run_id=job)
                _common(promoted, task_image, "1", "1Gi")
                pf.transient(backoff, pf.never_cached(pf.tracking_access(promoted)))
            with dsl.Else(name="gate-failed"):
                rejected = reject(model_name=model_name, version=version,
                                  tracking_uri=tracking_uri, gate=scored.outputs["gate"],
                                  pipeline_run_id=job)
                _common(rejected, task_image, "1", "1Gi")
                pf.transient(backoff, pf.never_cached(pf.tracking_access(rejected)))

    return noa_phase1


#: The pipeline as compiled, uploaded and submitted.
noa_phase1 = build_pipeline()
