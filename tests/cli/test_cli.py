"""The `noa` command: help, the dataset and replay stages, and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from noa_core.cli import main


def test_console_script_help_lists_the_stages() -> None:
    exe = shutil.which("noa")
    assert exe, "the `noa` console script is installed with the package"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for stage in ("dataset generate", "dataset validate", "dataset inspect", "replay merge"):
        assert stage in out


@pytest.mark.parametrize("argv", [["dataset", "generate"], ["dataset", "inspect"], ["replay"],
                                  ["replay", "merge"], ["config", "show"]])
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    assert "usage: noa" in capsys.readouterr().out


def test_generate_validate_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.h5"
    assert main(["dataset", "generate", "--config", "tiny", "--out", str(out), "--n", "6",
                 "--seed", "3", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "6 operators (train 4 / val 1 / test 1)" in text and "2 realizations × 18 steps" in text
    assert main(["dataset", "validate", str(out)]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["dataset", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "constant slots kernel_size=3" in text and "dataset seed 3" in text
    assert main(["dataset", "inspect", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["num_samples"] == 6 and rep["trajectories"]["states"] == 19
    assert rep["constant_slots"]["grid_size"] == 16
    sampled = [r["slot"] for r in rep["theta_coverage"] if "constant" not in r]
    assert sampled == ["num_layers", "base_channels", "noise_scale", "spatial_correlation",
                       "update_policy"]


def test_replay_cli_writes_the_requested_steps(tiny_dataset: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.h5"
    assert main(["replay", "--dataset", str(tiny_dataset), "--out", str(out), "--split", "val",
                 "--steps", "5", "--realizations", "1", "--no-progress"]) == 0
    assert "2 operators of split val" in capsys.readouterr().out
    assert main(["dataset", "inspect", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["kind"] == "replay" and rep["trajectories"]["num_steps"] == 5
    assert rep["split"] == {"train": 0, "val": 2, "test": 0}


def test_bad_config_is_one_line_on_stderr(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: tiny\ndynamics: {grid: 4}\n")
    assert main(["dataset", "generate", "--config", str(bad), "--out",
                 str(tmp_path / "x.h5")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("noa: error: ") and "dynamics.grid" in err[0] and str(bad) in err[0]
    assert not (tmp_path / "x.h5").exists()


def test_validate_reports_a_truncated_file(tiny_dataset: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cut = tmp_path / "cut.h5"
    data = tiny_dataset.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert main(["dataset", "validate", str(cut)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("noa: error: ") and str(cut) in err


def test_bad_shard_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["replay", "--dataset", "d.h5", "--out", "r.h5", "--shard", "3/3"])
    assert info.value.code == 2
    assert "0 ≤ I < N" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "expected"), [
    (["train", "--max-minutes", "0"], "--max-minutes: expected a positive finite number, got 0.0"),
    (["train", "--max-minutes", "nan"], "expected a positive finite number, got nan"),
    (["train", "--max-minutes", "soon"], "--max-minutes: expected a positive number, got 'soon'"),
    (["pipeline", "run-local", "--max-minutes", "-1"], "got -1.0"),
    (["pipeline", "run-local", "--max-steps", "0"], "--max-steps: expected a positive integer"),
    (["pipeline", "run-local", "--replay-shards", "0"], "--replay-shards: expected a positive"),
])
def test_a_budget_that_trains_nothing_is_a_usage_error(
        argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    required = ["--config", "small", "--replay", "r.h5", "--tokenizer", "tok", "--out", "o"]
    with pytest.raises(SystemExit) as info:
        main(argv + (required if argv[0] == "train" else []))
    assert info.value.code == 2
    assert expected in capsys.readouterr().err


def test_original_layout_file_is_inspected_and_replayed_with_a_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file in the original layout (no seeds, split, ids or config) still reads and replays."""
    import h5py
    import numpy as np

    legacy = tmp_path / "legacy.h5"
    rng = np.random.default_rng(0)
    with h5py.File(legacy, "w") as f:
        f["parameters/params"] = rng.random((6, 12)).astype(np.float32)
        f["inputs/fields"] = rng.standard_normal((6, 2, 16, 16)).astype(np.float32)
    assert main(["dataset", "inspect", str(legacy)]) == 0
    text = capsys.readouterr().out
    assert "original (legacy)" in text and "derived from the sample index and θ bytes" in text
    out = tmp_path / "r.h5"
    assert main(["replay", "--dataset", str(legacy), "--out", str(out), "--no-progress"]) == 1
    assert "pass --config" in capsys.readouterr().err
    assert main(["replay", "--dataset", str(legacy), "--out", str(out), "--config", "tiny",
                 "--no-progress"]) == 0
    assert main(["replay", "--dataset", str(legacy), "--out", str(out), "--config", "tiny",
                 "--no-progress"]) == 0  # and again: same file, overwritten atomically
    assert main(["dataset", "validate", str(out)]) == 0
    bad = tmp_path / "wide.h5"
    with h5py.File(bad, "w") as f:
        f["parameters/params"] = rng.random((2, 5))
        f["inputs/fields"] = rng.standard_normal((2, 2, 16, 16)).astype(np.float32)
    assert main(["replay", "--dataset", str(bad), "--out", str(out), "--config", "tiny"]) == 1
    assert "5 θ slots" in capsys.readouterr().err


def test_an_output_path_through_a_file_is_one_line(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file where a directory must go")
    assert main(["dataset", "generate", "--config", "tiny", "--n", "2",
                 "--out", str(blocker / "d.h5"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err == f"noa: error: {blocker}: File exists\n"
    assert blocker.read_text() == "a file where a directory must go"
