"""Every overlay renders with kustomize and validates: core kinds with kubernetes-validate
--strict (pinned Kubernetes version), custom resources with our own JSON schemas, and the pods of
custom resources as Pods with kubernetes-validate again."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
import yaml
from k8s_support import (
    CUSTOM_SCHEMAS,
    K8S,
    KUBERNETES_VERSION,
    SCHEMAS,
    as_pod,
    is_custom,
    kubernetes_validate,
    kustomize,
    load_docs,
    overlay_dirs,
    pod_specs,
    resource_id,
    schema_errors,
)

OVERLAY_NAMES = [d.name for d in overlay_dirs()]
NAMESPACE = "noa"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
                  "StorageClass", "CustomResourceDefinition", "PriorityClass"}


def test_the_documented_overlays_exist():
    assert {"cpu-demo", "gpu"} <= set(OVERLAY_NAMES), OVERLAY_NAMES


def test_pinned_kubernetes_version_is_supported():
    from kubernetes_validate.utils import all_versions

    assert KUBERNETES_VERSION in all_versions(), (
        f"kubernetes-validate has no schemas for {KUBERNETES_VERSION}: {all_versions()}")


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_core_kinds_pass_kubernetes_validate_strict(overlay, rendered_overlays):
    r = rendered_overlays[overlay]
    result = kubernetes_validate(r.path)
    assert result.returncode == 0 and not result.errors, result.output
    core = {resource_id(d).lower() for d in r.docs if not is_custom(d)}
    assert set(result.passed) == core, (
        f"validated {sorted(result.passed)}, rendered core kinds {sorted(core)}")
    # Whatever kubernetes-validate could not check must be a custom resource we have a schema
    # for: no core kind and no unknown custom resource slips through unchecked.
    custom = {(d["apiVersion"], d["kind"]) for d in r.docs if is_custom(d)}
    assert result.no_schema == custom, (result.no_schema, custom)


def test_kubernetes_validate_rejects_a_misspelt_field(rendered_overlays, tmp_path):
    # The check above can fail: a typo in a container's securityContext is an error in strict mode.
    docs = copy.deepcopy(rendered_overlays["cpu-demo"].docs)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUsr"] = 0
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    result = kubernetes_validate(path)
    assert result.returncode != 0
    assert any("runAsUsr" in e for e in result.errors), result.output


def test_the_base_alone_renders_and_validates(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_text(kustomize(K8S / "base"))
    result = kubernetes_validate(path)
    assert result.returncode == 0 and not result.errors and not result.no_schema, result.output


@pytest.mark.parametrize("name", sorted(CUSTOM_SCHEMAS.values()))
def test_our_schemas_are_valid_json_schema(name):
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_custom_resources_match_our_schemas(overlay, rendered_overlays):
    custom = [d for d in rendered_overlays[overlay].docs if is_custom(d)]
    assert custom, f"{overlay} renders no schedule"
    for doc in custom:
        assert schema_errors(doc) == [], resource_id(doc)


def test_pods_of_custom_resources_pass_kubernetes_validate(rendered_overlays, tmp_path):
    # Argo builds a pod from the CronWorkflow's security context, volumes and the template's
    # container: those are Kubernetes types, so they get Kubernetes' own strict schema.
    pods = [as_pod(f"{name}-{label}", spec) for name, r in rendered_overlays.items()
            for d in r.docs if is_custom(d) for label, spec in pod_specs(d)]
    assert pods, "no custom resource describes a pod (the CronWorkflow does)"
    path = tmp_path / "pods.yaml"
    path.write_text(yaml.safe_dump_all(pods))
    result = kubernetes_validate(path)
    assert result.returncode == 0 and not result.errors, result.output
    assert len(result.passed) == len(pods), result.output


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_everything_in_one_namespace_with_the_common_label(overlay, rendered_overlays):
    for doc in rendered_overlays[overlay].docs:
        meta = doc["metadata"]
        assert meta.get("labels", {}).get("app.kubernetes.io/part-of") == "noa", resource_id(doc)
        if doc["kind"] in CLUSTER_SCOPED:
            assert doc["kind"] == "Namespace" and meta["name"] == NAMESPACE, resource_id(doc)
            continue
        assert meta.get("namespace") == NAMESPACE, resource_id(doc)
        for subject in doc.get("subjects", []):
            if subject["kind"] == "ServiceAccount":
                assert subject.get("namespace") == NAMESPACE, resource_id(doc)


def test_rendering_is_deterministic():
    # Same tree, same bytes: a diff in review is a real change.
    d = overlay_dirs()[0]
    assert load_docs(kustomize(d)) == load_docs(kustomize(d))
