"""Secret templates carry no values and are never applied; every Secret reference in the
manifests names a template and one of its declared keys; credentials never appear as literals;
the README's kubectl commands create exactly the declared keys."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml
from k8s_support import (
    K8S,
    SECRET_TEMPLATES,
    all_containers,
    env_refs,
    kubernetes_validate,
)

CREDENTIAL_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                  "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                  "MLFLOW_TRACKING_TOKEN"}
CREDENTIAL_NAME = re.compile(r"SECRET|PASSWORD|ACCESS_KEY|SESSION_TOKEN|CREDENTIAL", re.I)
# user:password@ in a URL
USERINFO = re.compile(r"://[^/@\s]+:[^/@\s]+@")


def _keys(annotations: dict[str, str], which: str) -> set[str]:
    return {k for k in annotations.get(f"noa/{which}-keys", "").split(",") if k}


def _templates() -> dict[str, dict]:
    out = {}
    for path in sorted(SECRET_TEMPLATES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        ann = doc["metadata"]["annotations"]
        out[doc["metadata"]["name"]] = {"path": path, "doc": doc,
                                        "required": _keys(ann, "required"),
                                        "optional": _keys(ann, "optional")}
    return out


TEMPLATES = _templates()


def test_the_two_templates_exist():
    assert set(TEMPLATES) == {"noa-s3-credentials", "noa-tracking-credentials"}
    s3 = TEMPLATES["noa-s3-credentials"]
    assert s3["required"] == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert s3["optional"] == {"AWS_ENDPOINT_URL"}
    assert TEMPLATES["noa-tracking-credentials"]["required"] == {"MLFLOW_TRACKING_URI"}
    assert TEMPLATES["noa-tracking-credentials"]["optional"] == {"MLFLOW_TRACKING_USERNAME",
                                                     "MLFLOW_TRACKING_PASSWORD"}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_templates_carry_no_values(name):
    t = TEMPLATES[name]
    doc = t["doc"]
    assert doc["kind"] == "Secret" and doc["type"] == "Opaque"
    assert not doc.get("data") and not doc.get("stringData"), f"{t['path'].name} holds values"
    assert set(doc) <= {"apiVersion", "kind", "metadata", "type"}, sorted(doc)
    assert t["required"], "a template declares its required keys"
    assert not t["required"] & t["optional"]
    # Nothing that looks like a value hides in the annotations either.
    for key in t["required"] | t["optional"]:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", key), key


def test_templates_are_valid_secrets():
    result = kubernetes_validate(*(t["path"] for t in TEMPLATES.values()))
    assert result.returncode == 0 and not result.errors, result.output
    assert len(result.passed) == len(TEMPLATES), result.output


def test_templates_are_never_applied(rendered_overlays):
    # `kubectl apply -k` of an empty Secret would wipe the values created by hand.
    for kustomization in K8S.rglob("kustomization.yaml"):
        text = kustomization.read_text()
        assert "secrets/" not in text, kustomization
        assert "secretGenerator" not in text, kustomization
    for name, r in rendered_overlays.items():
        assert not [d for d in r.docs if d["kind"] == "Secret"], name


def test_every_secret_reference_names_a_declared_key(rendered_overlays):
    referenced: dict[str, set[str]] = {name: set() for name in TEMPLATES}
    for overlay, r in rendered_overlays.items():
        for label, c, _ in all_containers(r.docs):
            for env, source in env_refs(c):
                ref = source.get("secretKeyRef")
                if ref is None:
                    continue
                where = f"{overlay}:{label} {env}"
                assert ref["name"] in TEMPLATES, f"{where}: no template for Secret {ref['name']}"
                t = TEMPLATES[ref["name"]]
                assert ref["key"] in t["required"] | t["optional"], f"{where}: key {ref['key']}"
                # Optional in the manifest exactly when the template says the key may be absent.
                assert bool(ref.get("optional")) == (ref["key"] in t["optional"]), where
                referenced[ref["name"]].add(ref["key"])
            for source in c.get("envFrom", []):
                assert "secretRef" not in source, f"{overlay}:{label}: envFrom a whole Secret"
    for name, keys in referenced.items():
        assert TEMPLATES[name]["required"] <= keys, f"{name}: required keys nobody reads"


def test_credentials_are_never_literal(rendered_overlays):
    for overlay, r in rendered_overlays.items():
        for label, c, _ in all_containers(r.docs):
            for e in c.get("env", []):
                if e["name"] in CREDENTIAL_ENV or CREDENTIAL_NAME.search(e["name"]):
                    assert "secretKeyRef" in e.get("valueFrom", {}), f"{overlay}:{label} {e}"
            for arg in c.get("command", []) + c.get("args", []):
                assert not USERINFO.search(arg), f"{label}: credentials in {arg}"
        for d in r.docs:
            if d["kind"] == "ConfigMap":
                for key, value in d.get("data", {}).items():
                    assert not CREDENTIAL_NAME.search(key), f"{overlay}: ConfigMap key {key}"
                    assert not USERINFO.search(value), f"{overlay}: {key}"


def _readme_secret_commands() -> dict[str, set[str]]:
    """Secret name -> keys of each ``kubectl create secret generic`` in k8s/README.md."""
    text = (K8S / "README.md").read_text()
    commands = {}
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            if "kubectl" not in line or "create secret generic" not in line:
                continue
            words = shlex.split(line, comments=True)
            name = words[words.index("generic") + 1]
            keys = set()
            for w in words:
                m = re.match(r"--from-(?:literal|file)=([A-Z][A-Z0-9_]*)=", w)
                if m:
                    keys.add(m.group(1))
            commands.setdefault(name, set()).update(keys)
    return commands


def test_readme_creates_every_template_with_its_keys():
    commands = _readme_secret_commands()
    assert set(commands) == set(TEMPLATES), commands
    for name, t in TEMPLATES.items():
        assert t["required"] <= commands[name] <= t["required"] | t["optional"], (name, commands)
