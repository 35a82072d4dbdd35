"""Where the pipeline's tasks run on Kubernetes: Secrets as environment, the GPU node pool, the
artifact-cache volume, resources and retries. Kept apart from the DAG so the DAG reads as the
data flow, and so the compiled YAML can be tested for exactly these settings (``kfp.local``
ignores all of them).

The names here are the ones the manifests in ``k8s/`` create (a test keeps them equal).
"""

from __future__ import annotations

from kfp import dsl, kubernetes
from kfp.dsl.pipeline_channel import PipelineChannel

from pipelines.parameters import CACHE_MOUNT

#: Secret with boto3's standard variables for the S3 data plane (no values in the repository).
S3_SECRET = "noa-s3-credentials"
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
#: Secret with MLflow's client credentials for a tracking server behind authentication.
TRACKING_SECRET = "noa-tracking-credentials"
TRACKING_SECRET_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
#: GPU scheduling: the resource, the label GPU nodes carry and the taint they repel others with.
GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_LABEL = ("nvidia.com/gpu.present", "true")
GPU_TAINT_KEY = "nvidia.com/gpu"

#: CPU and memory of the training pod (besides its GPUs): data loading, the frozen tokenizer's
#: features and checkpointing. Constants, not parameters: kfp.local cannot resolve a parameter
#: used only in a resource field inside the exit handler's group.
TRAIN_RESOURCES = ("8", "32Gi")

#: Retries per stage kind: network-bound stages retry; train retries and resumes.
RETRIES = {"transient": 3, "train": 2}
BACKOFF = "30s"


def s3_access(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """S3 credentials from ``S3_SECRET`` (optional keys: IRSA or a node role may supply them)."""
    return kubernetes.use_secret_as_env(task, S3_SECRET, {k: k for k in S3_SECRET_KEYS},
                                        optional=True)


def tracking_access(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """MLflow client credentials from ``TRACKING_SECRET`` (optional: an open server needs none)."""
    return kubernetes.use_secret_as_env(task, TRACKING_SECRET,
                                        {k: k for k in TRACKING_SECRET_KEYS}, optional=True)


def transient(backoff: str, task: dsl.PipelineTask) -> dsl.PipelineTask:
    """A stage whose failures are usually the network's: retried after ``backoff``."""
    return task.set_retry(num_retries=RETRIES["transient"], backoff_duration=backoff)


def never_cached(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Stages with side effects outside their outputs (registry, MLflow) always run."""
    return task.set_caching_options(False)


def on_gpu_nodes(task: dsl.PipelineTask, gpus: PipelineChannel | int) -> dsl.PipelineTask:
    """Request ``gpus`` GPUs and schedule onto the GPU node pool (label and toleration)."""
    task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(gpus)
    kubernetes.add_node_selector(task, *GPU_NODE_LABEL)
    kubernetes.add_toleration(task, key=GPU_TAINT_KEY, operator="Exists", effect="NoSchedule")
    return task


def with_gpus(task: dsl.PipelineTask, gpus: PipelineChannel | int) -> dsl.PipelineTask:
    """Request ``gpus`` GPUs (0 = none) without pinning the task to the GPU node pool."""
    return task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(gpus)


def resources(task: dsl.PipelineTask, cpu: str | PipelineChannel,
              memory: str | PipelineChannel) -> dsl.PipelineTask:
    """CPU and memory requests equal to their limits (Guaranteed QoS: no eviction mid-run)."""
    return (task.set_cpu_request(cpu).set_cpu_limit(cpu)
            .set_memory_request(memory).set_memory_limit(memory))


def cache_volume(task: dsl.PipelineTask, pvc_name: str | PipelineChannel
                 ) -> dsl.PipelineTask:
    """Mount the artifact-cache PVC at ``CACHE_MOUNT``."""
    return kubernetes.mount_pvc(task, pvc_name=pvc_name, mount_path=CACHE_MOUNT)
