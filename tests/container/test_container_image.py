"""The CPU image as built: its configuration, its user, what it contains and what it writes."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

VOLUMES = {"/data", "/home/noa", "/tmp"}


def _config(docker, image: str) -> dict:
    return json.loads(docker("image", "inspect", image).stdout)[0]["Config"]


def test_no_entrypoint_and_default_command_is_help(docker, image, run_in_image):
    cfg = _config(docker, image)
    assert not cfg.get("Entrypoint"), f"the image must have no ENTRYPOINT: {cfg.get('Entrypoint')}"
    assert cfg["Cmd"] == ["noa", "--help"]
    default = run_in_image([])
    assert default.stdout.startswith("usage: noa"), default.stdout[:300]
    explicit = run_in_image(["noa", "--help"])
    assert explicit.stdout == default.stdout
    # Every stage of today answers --help (one container for all of them).
    stages = ["dataset generate", "dataset validate", "dataset inspect", "replay", "replay merge",
              "config show"]
    script = "; ".join(f"noa {stage} --help | head -n 1" for stage in stages)
    heads = run_in_image(["bash", "-o", "pipefail", "-c", script]).stdout.splitlines()
    assert len(heads) == len(stages), heads
    for head, stage in zip(heads, stages, strict=True):
        assert head.startswith(f"usage: noa {stage} "), head


def test_runs_as_non_root(docker, image, run_in_image):
    uid = run_in_image(["id", "-u"]).stdout.strip()
    assert uid != "0", "the image runs as root"
    assert uid == "1000"
    assert run_in_image(["id", "-g"]).stdout.strip() == "1000"
    assert _config(docker, image)["User"] == "1000:1000"  # numeric: runAsNonRoot can check it


def test_declared_volumes_workdir_and_labels(docker, image):
    cfg = _config(docker, image)
    assert set(cfg.get("Volumes") or {}) == VOLUMES
    assert cfg["WorkingDir"] == "/data"
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert env["HOME"] == "/home/noa"
    assert env["XDG_CACHE_HOME"].startswith("/home/noa/")
    labels = cfg.get("Labels") or {}
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
    for key in ("title", "description", "revision", "created", "licenses", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label {key} missing"


def test_installed_package_no_sources_no_compiler(run_in_image):
    probe = (
        "import importlib.metadata as md, json, pathlib, shutil, noa_core, torch\n"
        "d = md.distribution('noa-core')\n"
        "direct = d.read_text('direct_url.json')\n"
        "print(json.dumps({'file': noa_core.__file__, 'torch': torch.__version__,\n"
        "  'editable': bool(direct and json.loads(direct).get('dir_info', {}).get('editable')),\n"
        "  'src': pathlib.Path('/src').exists(), 'wheels': pathlib.Path('/wheels').exists(),\n"
        "  'compilers': [c for c in ('cc', 'gcc', 'g++', 'c++', 'clang', 'ld', 'make')\n"
        "                if shutil.which(c)]}))\n")
    info = json.loads(run_in_image(["python", "-c", probe]).stdout)
    assert "/site-packages/noa_core/" in info["file"], info
    assert not info["editable"], "noa-core is installed in editable mode"
    assert not info["src"] and not info["wheels"], "build inputs left in the final stage"
    assert info["compilers"] == [], f"compilers in the final stage: {info['compilers']}"
    assert info["torch"].endswith("+cpu"), f"the CPU image has torch {info['torch']}"


def test_config_show_in_image(run_in_image):
    out = run_in_image(["noa", "config", "show", "tiny"]).stdout
    assert "num_threads" in out


def test_writes_nothing_outside_declared_volumes(docker, image, tmp_path: Path):
    """A writable container that writes to each volume leaves an empty `docker diff`."""
    io = tmp_path / "io"
    io.mkdir()
    io.chmod(0o777)
    script = ("set -e; touch /data/a /home/noa/a /tmp/a; mkdir -p /home/noa/.cache/x; "
              "noa dataset generate --config tiny --n 6 --out /data/d.h5 --no-progress")
    cid = docker("create", "--network", "host", "-v", f"{io}:/data", image,
                 "bash", "-c", script).stdout.strip()
    try:
        started = docker("start", "--attach", cid, check=False, timeout=300)
        assert started.returncode == 0, started.stdout + started.stderr
        diff = docker("diff", cid).stdout.strip()
        assert diff == "", f"the container wrote outside its declared volumes:\n{diff}"
    finally:
        docker("rm", "--volumes", "--force", cid, check=False)
    assert (io / "d.h5").stat().st_uid == 1000


def test_read_only_root_rejects_other_writes(run_in_image):
    # The control for the read-only runs: outside the volumes nothing is writable.
    proc = run_in_image(["bash", "-c", "touch /home/noa/ok /tmp/ok && touch /var/tmp/x"],
                        check=False)
    assert proc.returncode != 0
    assert "Read-only file system" in proc.stderr
