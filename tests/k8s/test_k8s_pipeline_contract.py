"""The names the compiled pipeline relies on (pipelines/platform.py, the pipeline's parameter
defaults) are the ones the manifests create: Secrets and their keys, the artifact-cache volume,
the GPU node label, taint and resource, the tracking server's address and the image tags; and
every pipeline parameter a schedule sets exists."""

from __future__ import annotations

import re
import sys

import yaml
from k8s_support import (
    K8S,
    REPO,
    SECRET_TEMPLATES,
    all_containers,
    container_env,
    expand,
    pod_specs,
    resource_id,
)

# pipelines/ is a top-level folder of the repository, not part of the installed package.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pipelines import parameters as phase1
from pipelines import platform as pf


def _template_keys() -> dict[str, set[str]]:
    out = {}
    for path in SECRET_TEMPLATES.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        ann = doc["metadata"]["annotations"]
        out[doc["metadata"]["name"]] = {k for which in ("required", "optional")
                                        for k in ann.get(f"noa/{which}-keys", "").split(",") if k}
    return out


def _image_pins() -> dict[str, str]:
    k = yaml.safe_load((K8S / "components" / "images" / "kustomization.yaml").read_text())
    return {i["name"]: f"{i.get('newName', i['name'])}:{i['newTag']}" for i in k["images"]}


def test_pipeline_secrets_are_the_templates():
    keys = _template_keys()
    assert pf.S3_SECRET in keys and set(pf.S3_SECRET_KEYS) <= keys[pf.S3_SECRET]
    assert pf.TRACKING_SECRET in keys
    assert set(pf.TRACKING_SECRET_KEYS) <= keys[pf.TRACKING_SECRET]


def test_pipeline_cache_volume_is_rendered(rendered_overlays):
    assert phase1.DEFAULTS["cache_pvc"] == phase1.CACHE_PVC
    for name, r in rendered_overlays.items():
        pvcs = {d["metadata"]["name"] for d in r.docs if d["kind"] == "PersistentVolumeClaim"}
        assert phase1.CACHE_PVC in pvcs, name
        # The training Job template mounts it where the pipeline does.
        for label, c, pod in all_containers(r.docs):
            claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                      for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
            for m in c.get("volumeMounts", []):
                if claims.get(m["name"]) == phase1.CACHE_PVC:
                    assert m["mountPath"] == phase1.CACHE_MOUNT, f"{name}:{label}"


def test_gpu_scheduling_matches_the_pipelines(rendered_overlays):
    doc = next(d for d in rendered_overlays["gpu"].docs if resource_id(d) == "CronJob/noa-train")
    (_, pod), = pod_specs(doc)
    key, value = pf.GPU_NODE_LABEL
    assert pod["nodeSelector"] == {key: value}
    assert [t["key"] for t in pod["tolerations"]] == [pf.GPU_TAINT_KEY]
    train = next(c for c in pod["containers"] if c["name"] == "train")
    assert pf.GPU_RESOURCE in train["resources"]["limits"]


def test_pipeline_tracking_uri_is_the_tracking_service(rendered_overlays):
    m = re.fullmatch(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)",
                     phase1.DEFAULTS["tracking_uri"])
    assert m, phase1.DEFAULTS["tracking_uri"]
    service, namespace, port = m.group(1), m.group(2), int(m.group(3))
    for name, r in rendered_overlays.items():
        svc = next(d for d in r.docs if d["kind"] == "Service" and d["metadata"]["name"] == service)
        assert svc["metadata"]["namespace"] == namespace, name
        assert port in [p["port"] for p in svc["spec"]["ports"]], name


def test_pipeline_default_images_are_the_pinned_images():
    assert phase1.DEFAULTS["image"] == _image_pins()["noa-core"]
    assert phase1.DEFAULTS["train_image"] == _image_pins()["noa-core-cuda"]


def _schedule_params(rendered_overlays) -> list[tuple[str, str, str]]:
    """(where, parameter, value) of every pipeline parameter a schedule sets."""
    out = []
    for name, r in rendered_overlays.items():
        for d in r.docs:
            if d["kind"] == "ScheduledWorkflow":
                out += [(f"{name}:{resource_id(d)}", p["name"], p["value"])
                        for p in d["spec"]["workflow"]["parameters"]]
            elif d["kind"] == "CronWorkflow":
                for label, c, _ in all_containers([d]):
                    env = container_env(c, r.docs)
                    args = [expand(a, env) for a in c["args"]]
                    out += [(f"{name}:{label}", *args[i + 1].split("=", 1))
                            for i, a in enumerate(args) if a == "--param"]
    return out


def test_schedules_set_only_parameters_the_pipeline_has(rendered_overlays):
    params = _schedule_params(rendered_overlays)
    assert {p for _, p, _ in params} >= {"preset"}
    for where, name, value in params:
        assert name in phase1.DEFAULTS, f"{where}: the pipeline has no parameter {name}"
        assert "$(" not in value, f"{where}: {name}={value} does not resolve"
        if name == "preset":
            assert value in ("tiny", "small", "paper"), where
        if name == "image":
            assert value in _image_pins().values(), f"{where}: {value} is not a pinned image"
        if isinstance(phase1.DEFAULTS[name], int):
            assert re.fullmatch(r"\d+", value), f"{where}: {name}={value}"


def test_cpu_overlays_run_the_pipeline_without_a_gpu(rendered_overlays):
    for where, name, value in _schedule_params(rendered_overlays):
        if where.startswith("cpu-demo:") and name.endswith("_gpus"):
            assert value == "0", where
