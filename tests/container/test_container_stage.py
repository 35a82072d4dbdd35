"""One stage at a time in the image, as a non-root user with a read-only root filesystem and a
host folder mounted at /data, checked against the same commands run on the host."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import h5py
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
REQUIRED = os.environ.get("NOA_REQUIRE_CONTAINER", "") not in ("", "0", "false", "no")

# The stages of today, in the order a user would run them; paths are relative to /data (the
# image's working directory) on both sides.
STAGES = [
    ["dataset", "generate", "--config", "tiny", "--n", "6", "--out", "out/d.h5", "--no-progress"],
    ["dataset", "validate", "out/d.h5"],
    ["dataset", "inspect", "out/d.h5"],
    ["replay", "--dataset", "out/d.h5", "--shard", "0/2", "--out", "out/r0.h5", "--no-progress"],
    ["replay", "--dataset", "out/d.h5", "--shard", "1/2", "--out", "out/r1.h5", "--no-progress"],
    ["replay", "merge", "out/r0.h5", "out/r1.h5", "--out", "out/r.h5"],
    ["dataset", "validate", "out/r.h5"],
]
OUTPUTS = ["out/d.h5", "out/r.h5"]

_MAIN = "import sys; from noa_core.cli import main; sys.exit(main())"

_SOURCE_DIGESTS = (
    "import hashlib, json, pathlib, noa_core, torch\n"
    "root = pathlib.Path(noa_core.__file__).parent\n"
    "print(json.dumps({'torch': torch.__version__, 'package': str(root), 'files': {\n"
    "    str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()\n"
    "    for p in sorted(root.rglob('*')) if p.suffix in ('.py', '.yaml')}}))\n")


def _arrays(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def _assert_same_arrays(a: Path, b: Path) -> None:
    xa, xb = _arrays(a), _arrays(b)
    assert "outputs/fields" in xa, f"{a}: no trajectories to compare ({sorted(xa)})"
    assert sorted(xa) == sorted(xb), f"{a.name}: datasets differ: {sorted(set(xa) ^ set(xb))}"
    for name in xa:
        va, vb = np.asarray(xa[name]), np.asarray(xb[name])
        assert va.dtype == vb.dtype and va.shape == vb.shape, (name, va.dtype, vb.dtype)
        if va.dtype.kind == "O":
            assert va.tolist() == vb.tolist(), f"{a.name}:{name} differs"
        else:
            assert va.tobytes() == vb.tobytes(), f"{a.name}:{name} is not bit-identical"


def _run_stages_in_image(run_in_image, io: Path) -> None:
    for stage in STAGES:
        proc = run_in_image(["noa", *stage], volumes={io: "/data"}, check=False)
        assert proc.returncode == 0, f"noa {' '.join(stage)} in the image:\n{proc.stderr[-3000:]}"


def _fresh_io(tmp_path: Path, name: str) -> Path:
    io = tmp_path / name
    io.mkdir()
    io.chmod(0o777)  # the image's user (uid 1000) writes into it
    return io


def test_stages_in_read_only_image_match_the_host(docker, image, run_in_image, tmp_path: Path):
    io = _fresh_io(tmp_path, "image")
    _run_stages_in_image(run_in_image, io)
    for rel in OUTPUTS:
        st = (io / rel).stat()
        assert st.st_uid == 1000, f"{rel} is owned by uid {st.st_uid}, not the image's user"

    # Same software gives the same arrays. The host runs the very noa_core the image carries
    # (copied out of it), with the host's own Python, torch, numpy, scipy and h5py; when torch
    # differs between the two, a second run of the image is the reference instead.
    info = json.loads(run_in_image(["python", "-c", _SOURCE_DIGESTS]).stdout)
    host_root = REPO / "noa_core"
    stale = sorted(rel for rel, digest in info["files"].items()
                   if not (host_root / rel).is_file()
                   or hashlib.sha256((host_root / rel).read_bytes()).hexdigest() != digest)
    if stale and REQUIRED:  # CI builds the image from this checkout right before the tests
        raise AssertionError(f"the image's noa_core differs from the checkout in {stale[:5]}: "
                             "the image is stale (rebuild with make image)")

    ref = _fresh_io(tmp_path, "reference")
    if info["torch"] == torch.__version__:
        code = tmp_path / "image-code"
        code.mkdir()
        cid = docker("create", image).stdout.strip()
        try:
            # the distribution's three packages (the CLI's `pipeline` help reads `pipelines`)
            site = str(Path(info["package"]).parent)
            for package in ("noa_core", "pipelines", "components"):
                docker("cp", f"{cid}:{site}/{package}", str(code / package))
        finally:
            docker("rm", "--volumes", cid, check=False)
        # -S: no .pth files, so an editable install of the checkout cannot take precedence;
        # site-packages are named explicitly instead (worker processes inherit both).
        libs = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), *sorted(libs)])}
        python = [sys.executable, "-S"]
        where = subprocess.run([*python, "-c", "import noa_core; print(noa_core.__file__)"],
                               cwd=ref, env=env, capture_output=True, text=True,
                               check=True).stdout
        assert where.startswith(str(code)), f"the host imports noa_core from {where}"
        for stage in STAGES:
            proc = subprocess.run([*python, "-c", _MAIN, *stage], cwd=ref,
                                  env=env, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, f"noa {' '.join(stage)} on the host:\n{proc.stderr}"
    else:
        warnings.warn("compared with a second run of the image, not the host: torch differs "
                      f"(image {info['torch']}, host {torch.__version__})", stacklevel=1)
        _run_stages_in_image(run_in_image, ref)
    for rel in OUTPUTS:
        _assert_same_arrays(io / rel, ref / rel)


def test_bad_input_in_image_is_one_line_and_exit_1(run_in_image, tmp_path: Path):
    io = _fresh_io(tmp_path, "bad")
    (io / "junk.h5").write_bytes(b"not an hdf5 file")
    proc = run_in_image(["noa", "dataset", "validate", "junk.h5"], volumes={io: "/data"},
                        check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("noa: error:"), proc.stderr
