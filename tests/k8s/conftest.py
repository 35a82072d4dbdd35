"""Fixtures of the manifest tests: every overlay of k8s/overlays rendered once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from k8s_support import OVERLAYS, kustomize, load_docs, overlay_dirs


@dataclass
class Rendered:
    name: str
    path: Path  # the rendered YAML on disk (for kubernetes-validate)
    docs: list[dict[str, Any]]


@pytest.fixture(scope="session")
def rendered_overlays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    """``kubectl kustomize`` of every overlay: name -> rendered documents."""
    out = tmp_path_factory.mktemp("k8s-rendered")
    result = {}
    for d in overlay_dirs():
        text = kustomize(d)
        path = out / f"{d.name}.yaml"
        path.write_text(text)
        result[d.name] = Rendered(d.name, path, load_docs(text))
    assert result, f"no overlay under {OVERLAYS}"
    return result


@pytest.fixture(scope="session")
def all_docs(rendered_overlays: dict[str, Rendered]) -> list[tuple[str, dict[str, Any]]]:
    """(overlay, document) over every overlay."""
    return [(name, d) for name, r in rendered_overlays.items() for d in r.docs]
