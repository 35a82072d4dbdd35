"""Every container we ship: non-root as the image's user, read-only root filesystem with volumes
for the paths it writes, no privilege escalation, no capabilities, RuntimeDefault seccomp,
requests and limits; images pinned; pods with explicit identities; RBAC without wildcards."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import yaml
from k8s_support import (
    IMAGE_USER,
    IMAGE_WRITABLE_PATHS,
    K8S,
    all_containers,
    effective,
    pod_specs,
    resource_id,
)

_SUFFIX = {"m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
           "T": Decimal(10**12), "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30),
           "Ti": Decimal(2**40)}


def quantity(q: str | int) -> Decimal:
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(q))
    assert m and (m.group(2) in _SUFFIX or not m.group(2)), f"unparsed quantity {q!r}"
    return Decimal(m.group(1)) * _SUFFIX.get(m.group(2), Decimal(1))


def containers_of(rendered_overlays):
    for name, r in rendered_overlays.items():
        for label, c, pod in all_containers(r.docs):
            yield f"{name}:{label}", c, pod, r.docs


def test_there_are_containers_to_check(rendered_overlays):
    labels = [label for label, *_ in containers_of(rendered_overlays)]
    # MLflow, the training pull and train, and one schedule step per overlay at least.
    assert len(labels) >= 2 * 3, labels


def test_every_container_has_the_restricted_security_context(rendered_overlays):
    problems = []
    for label, c, pod, _ in containers_of(rendered_overlays):
        sc = c.get("securityContext") or {}
        checks = {
            "runAsNonRoot": effective(c, pod, "runAsNonRoot") is True,
            "runAsUser 1000": effective(c, pod, "runAsUser") == IMAGE_USER,
            "allowPrivilegeEscalation false": sc.get("allowPrivilegeEscalation") is False,
            "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem") is True,
            "capabilities drop ALL": (sc.get("capabilities") or {}).get("drop") == ["ALL"],
            "no added capabilities": not (sc.get("capabilities") or {}).get("add"),
            "not privileged": not sc.get("privileged"),
            "seccomp RuntimeDefault": (effective(c, pod, "seccompProfile") or {}).get("type")
            == "RuntimeDefault",
        }
        problems += [f"{label}: {what}" for what, ok in checks.items() if not ok]
    assert not problems, "\n".join(problems)


def test_every_container_has_cpu_and_memory_requests_and_limits(rendered_overlays):
    problems = []
    for label, c, _, _ in containers_of(rendered_overlays):
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(kind, {}):
                    problems.append(f"{label}: no {kind}.{r}")
        for r, limit in res.get("limits", {}).items():
            request = res.get("requests", {}).get(r)
            if request is not None and quantity(request) > quantity(limit):
                problems.append(f"{label}: {r} request {request} above limit {limit}")
    assert not problems, "\n".join(problems)


def test_writable_paths_are_volumes_and_nothing_mounts_the_host(rendered_overlays):
    problems = []
    for label, c, pod, _ in containers_of(rendered_overlays):
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        # The image's declared volumes: its working directory, HOME with the caches, /tmp.
        for path in IMAGE_WRITABLE_PATHS:
            if path not in mounts:
                problems.append(f"{label}: {path} is not a volume (read-only root filesystem)")
        for m in mounts.values():
            v = volumes.get(m["name"])
            if v is None:
                problems.append(f"{label}: mount {m['name']} has no volume")
            elif not ({"emptyDir", "persistentVolumeClaim"} & v.keys()
                      or ("projected" in v and m.get("readOnly"))):
                problems.append(f"{label}: volume {m['name']} is {sorted(v)}")
        for v in volumes.values():
            if "hostPath" in v:
                problems.append(f"{label}: hostPath volume {v['name']}")
    assert not problems, "\n".join(problems)


def _image_pins() -> dict[str, str]:
    k = yaml.safe_load((K8S / "components" / "images" / "kustomization.yaml").read_text())
    return {i["name"]: f"{i.get('newName', i['name'])}:{i['newTag']}" for i in k["images"]}


def test_images_are_the_project_image_at_the_pinned_tags(rendered_overlays):
    pins = _image_pins()
    assert set(pins) == {"noa-core", "noa-core-cuda"}, pins
    for tag in pins.values():
        assert re.fullmatch(r"noa-core:\d+\.\d+\.\d+-(cpu|cuda)", tag), tag
    for label, c, _, _ in containers_of(rendered_overlays):
        assert c["image"] in pins.values(), f"{label}: image {c['image']} is not pinned"
        assert c.get("imagePullPolicy") in (None, "IfNotPresent"), label


def test_pods_have_explicit_identities_and_no_host_namespaces(rendered_overlays):
    for name, r in rendered_overlays.items():
        accounts = {d["metadata"]["name"]: d for d in r.docs if d["kind"] == "ServiceAccount"}
        for doc in r.docs:
            for label, pod in pod_specs(doc):
                sa = pod.get("serviceAccountName")
                assert sa in accounts, f"{name}:{label} runs as {sa!r}, not one of {list(accounts)}"
                for key in ("hostNetwork", "hostPID", "hostIPC"):
                    assert not pod.get(key), f"{name}:{label}: {key}"
                # An account without API access must not get a token mounted by the pod either.
                if accounts[sa].get("automountServiceAccountToken") is False:
                    assert pod.get("automountServiceAccountToken") is not True, label


def test_mlflow_pods_do_not_get_service_links(rendered_overlays):
    # A Service named mlflow injects MLFLOW_PORT=tcp://..., which the mlflow CLI reads as --port.
    servers = 0
    for name, r in rendered_overlays.items():
        for label, c, pod in all_containers(r.docs):
            if c.get("command", [None])[0] == "mlflow":
                servers += 1
                assert pod.get("enableServiceLinks") is False, f"{name}:{label}"
    assert servers == len(rendered_overlays)


def test_rbac_is_namespaced_and_without_wildcards(rendered_overlays):
    forbidden_verbs = {"*", "delete", "deletecollection", "escalate", "bind", "impersonate"}
    for name, r in rendered_overlays.items():
        for doc in r.docs:
            assert doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"), resource_id(doc)
            if doc["kind"] != "Role":
                continue
            for rule in doc["rules"]:
                where = f"{name}:{resource_id(doc)} {rule}"
                assert "*" not in rule["apiGroups"] and "*" not in rule["resources"], where
                assert not forbidden_verbs & set(rule["verbs"]), where
                assert not {"pods/exec", "pods/attach"} & set(rule["resources"]), where
                if "secrets" in rule["resources"]:
                    # Secrets only by name, only read.
                    assert rule.get("resourceNames") and set(rule["verbs"]) == {"get"}, where


@pytest.mark.parametrize("key", ["enforce", "warn", "audit"])
def test_namespace_pod_security_labels(rendered_overlays, key):
    for r in rendered_overlays.values():
        ns = next(d for d in r.docs if d["kind"] == "Namespace")
        level = ns["metadata"]["labels"][f"pod-security.kubernetes.io/{key}"]
        assert level == ("baseline" if key == "enforce" else "restricted")
