"""``pipelines.local_run.task_tmpdir`` and ``local_services.environment``: the temporary
directory and environment the subprocess runner's tasks get (the whole local pipeline is in
``test_pipeline_local.py``)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from pipelines.local_run import task_tmpdir
from pipelines.local_services import environment

# What a KFP lightweight component's command does first (kfp.dsl.component_factory).
KFP_PROLOGUE = 'program_path=$(mktemp -d); printf x > "$program_path/ephemeral_component.py"'


def test_a_task_writes_its_temporary_files_under_work_and_they_go_with_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machine_tmp, work = tmp_path / "machine-tmp", tmp_path / "work"
    machine_tmp.mkdir()
    work.mkdir()
    monkeypatch.setenv("TMPDIR", str(machine_tmp))
    with task_tmpdir(work) as task_tmp:
        subprocess.run(["sh", "-ec", KFP_PROLOGUE], check=True)
        assert [p.parent.parent for p in work.rglob("ephemeral_component.py")] == [task_tmp]
        assert task_tmp.parent == work
    assert list(machine_tmp.iterdir()) == []
    assert list(work.iterdir()) == []
    assert os.environ["TMPDIR"] == str(machine_tmp)


def test_this_process_keeps_its_temporary_directory(tmp_path: Path) -> None:
    before = tempfile.gettempdir()
    with task_tmpdir(tmp_path):
        assert tempfile.gettempdir() == before


def test_the_environment_is_put_back_even_after_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOA_TEST_SET", "before")
    monkeypatch.delenv("NOA_TEST_UNSET", raising=False)
    with pytest.raises(RuntimeError), environment({"NOA_TEST_SET": "during",
                                                   "NOA_TEST_UNSET": "during"}):
        assert (os.environ["NOA_TEST_SET"], os.environ["NOA_TEST_UNSET"]) == ("during",
                                                                              "during")
        raise RuntimeError("a failed run")
    assert os.environ["NOA_TEST_SET"] == "before"
    assert "NOA_TEST_UNSET" not in os.environ
