"""The parts of docker/build.sh and docker/engine.sh that need no engine: the mirror read from
apt's sources, the requirements read from pyproject.toml, argument handling, shell syntax."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "docker" / "build.sh"
ENGINE = REPO / "docker" / "engine.sh"


def _load_requirements_module():
    spec = importlib.util.spec_from_file_location(
        "pyproject_requirements", REPO / "docker" / "pyproject_requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mirror(apt_dir: Path, suite: str = "bookworm") -> subprocess.CompletedProcess:
    env = {**os.environ, "NOA_APT_DIR": str(apt_dir), "NOA_BASE_SUITE": suite}
    env.pop("NOA_DEBIAN_MIRROR", None)
    return subprocess.run(["bash", str(BUILD), "--print-mirror"], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("script", [BUILD, ENGINE], ids=lambda p: p.name)
def test_shell_syntax(script: Path):
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    assert "set -euo pipefail" in script.read_text()


def test_mirror_from_deb822_sources(tmp_path: Path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example.invalid/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "# a comment\nTypes: deb-src deb\nURIs: http://mirror.example.invalid/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n")
    proc = _mirror(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "http://mirror.example.invalid/debian"


def test_mirror_from_one_line_sources_and_fallback(tmp_path: Path):
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example.invalid/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example.invalid/debian trixie main\n")
    # No source for bookworm itself: any main suite's mirror serves it.
    proc = _mirror(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "http://one.example.invalid/debian"


def test_disabled_and_missing_sources_fail_clearly(tmp_path: Path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "off.sources").write_text(
        "Types: deb\nURIs: http://off.example.invalid/debian\nSuites: bookworm\nEnabled: no\n")
    proc = _mirror(tmp_path)
    assert proc.returncode != 0
    assert "no Debian mirror found" in proc.stderr and "NOA_DEBIAN_MIRROR" in proc.stderr


def test_unknown_options_are_refused():
    proc = subprocess.run(["bash", str(BUILD), "--frobnicate"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode != 0 and "unknown option: --frobnicate" in proc.stderr
    proc = subprocess.run(["bash", str(ENGINE), "bogus"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and "usage:" in proc.stderr


def test_requirements_follow_pyproject():
    mod = _load_requirements_module()
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert mod.requirements(data, []) == data["project"]["dependencies"]
    pyproject = {
        "project": {
            "name": "noa-core", "dependencies": ["numpy>=2"],
            "optional-dependencies": {"test": ["pytest"], "s3": ["boto3", "numpy>=2"],
                                      "dev": ["noa-core[test,s3]", "ruff"]}}}
    assert mod.requirements(pyproject, ["dev"]) == ["numpy>=2", "pytest", "boto3", "ruff"]
    with pytest.raises(SystemExit, match="no optional-dependencies group 'gpu'"):
        mod.requirements(pyproject, ["gpu"])
