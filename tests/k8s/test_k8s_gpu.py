"""GPU scheduling reaches the training container and nothing else: its GPU limit, the CUDA image,
the GPU node selector and toleration. Overlays without the gpu-training component ask for no GPU
at all."""

from __future__ import annotations

import pytest
import yaml
from k8s_support import OVERLAYS, all_containers, pod_specs, resource_id

GPU = "nvidia.com/gpu"
GPU_NODE_LABEL = "nvidia.com/gpu.present"
TRAINING = "CronJob/noa-train:train"


def _uses_gpu_component(overlay: str) -> bool:
    k = yaml.safe_load((OVERLAYS / overlay / "kustomization.yaml").read_text())
    return any(c.rstrip("/").endswith("components/gpu-training") for c in k.get("components", []))


def _gpu_pods(docs):
    """Labels of pod specs that select or tolerate GPU nodes."""
    out = set()
    for doc in docs:
        for label, pod in pod_specs(doc):
            if GPU_NODE_LABEL in (pod.get("nodeSelector") or {}) or any(
                    t.get("key", "").startswith("nvidia.com/") for t in pod.get("tolerations", [])):
                out.add(label)
    return out


def _gpu_containers(docs):
    out = {}
    for label, c, _ in all_containers(docs):
        res = c.get("resources") or {}
        if any(k.startswith("nvidia.com/") for kind in ("requests", "limits")
               for k in res.get(kind, {})):
            out[label] = res
    return out


def test_the_gpu_overlay_uses_the_gpu_component():
    assert _uses_gpu_component("gpu")
    assert not _uses_gpu_component("cpu-demo")


def test_gpu_only_on_the_training_container(rendered_overlays):
    docs = rendered_overlays["gpu"].docs
    gpu = _gpu_containers(docs)
    # Exactly the train container: not its data-pull init container, not MLflow, not the schedule.
    assert set(gpu) == {TRAINING}, sorted(gpu)
    res = gpu[TRAINING]
    assert res["limits"][GPU] == "1" and res["requests"][GPU] == "1", res
    assert _gpu_pods(docs) == {"CronJob/noa-train"}


def test_the_training_pod_lands_on_a_gpu_node(rendered_overlays):
    doc = next(d for d in rendered_overlays["gpu"].docs if resource_id(d) == "CronJob/noa-train")
    (_, pod), = pod_specs(doc)
    assert pod["nodeSelector"] == {GPU_NODE_LABEL: "true"}
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_only_the_training_container_runs_the_cuda_image(rendered_overlays):
    images = {label: c["image"] for label, c, _ in all_containers(rendered_overlays["gpu"].docs)}
    cuda = {label for label, image in images.items() if image.endswith("-cuda")}
    assert cuda == {TRAINING}, images


@pytest.mark.parametrize("overlay", [p.parent.name for p in OVERLAYS.glob("*/kustomization.yaml")
                                     if not _uses_gpu_component(p.parent.name)])
def test_cpu_overlays_ask_for_no_gpu(overlay, rendered_overlays):
    docs = rendered_overlays[overlay].docs
    assert _gpu_containers(docs) == {}
    assert _gpu_pods(docs) == set()
    assert not [c["image"] for _, c, _ in all_containers(docs) if c["image"].endswith("-cuda")]
