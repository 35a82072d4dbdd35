"""The whole pipeline through ``kfp.local`` on the ``tiny`` preset, against moto's S3 server and
a real MLflow store (sqlite), three times in one working directory:

1. criteria it meets, with the train task killed (SIGKILL, as a node loss would) right after its
   first checkpoint: the retried task resumes from that checkpoint, the gate passes, the new
   version becomes ``champion``;
2. criteria it cannot meet: the version is rejected, ``champion`` stays on version 1;
3. a dataset URI that does not exist: the run fails and the exit handler records the failure.
"""

from __future__ import annotations

import builtins
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from noa_core.data.manifest import sha256_file
from noa_core.tracking import ALIAS_CHALLENGER, ALIAS_CHAMPION, LINEAGE_TAGS
from noa_core.tracking.client import client_for
from noa_core.tracking.constants import TAG_DECISION, TAG_FAILED_CRITERIA, TRAIN_RUN_FILE
from noa_core.training.trainer import LOG_FILE
from pipelines.local_run import LocalRun, run_local

pytestmark = pytest.mark.slow
REAL_PRINT = builtins.print

CHECKPOINT_EVERY = 5
MAX_STEPS = 20
TRAIN_YAML = f"""extends: tiny
training: {{max_steps: {MAX_STEPS}, checkpoint_every: {CHECKPOINT_EVERY}, val_every: 10,
            log_every: {CHECKPOINT_EVERY}}}
"""
LENIENT = """min_samples: 4
criteria:
  rollout_mse: {metric: rollout_mse, op: "<", threshold: 100.0}
"""
STRICT = """min_samples: 4
criteria:
  rollout_mse: {metric: rollout_mse, op: "<", threshold: 1.0e-12}
"""


class TrainKiller(threading.Thread):
    """Kills the train task's process once, the moment its first training state appears."""

    def __init__(self, cache: Path) -> None:
        super().__init__(daemon=True)
        self.cache, self.killed, self.done = cache, [], threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            if list(self.cache.glob("runs/*/train/state.pt")):
                self.killed = [pid for pid in _train_pids() if _kill(pid)]
                return
            self.done.wait(0.02)


def _train_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"--function_to_execute" in cmd and b"train_noa" in cmd:
            found.append(int(entry.name))
    return found


def _kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("local")
    files = {}
    for name, text in (("train.yaml", TRAIN_YAML), ("lenient.yaml", LENIENT),
                       ("strict.yaml", STRICT)):
        (work / name).write_text(text)
        files[name] = str(work / name)
    base = {"preset": files["train.yaml"], "replay_shards": 2}
    # The temporary directory the runs start with: what the task processes leave behind shows.
    machine_tmp = tmp_path_factory.mktemp("machine-tmp")
    killer = TrainKiller(work / "cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(machine_tmp))
        killer.start()
        try:
            passed = run_local(work, preset="tiny",
                               params={**base, "criteria": files["lenient.yaml"]},
                               progress=False)
        finally:
            killer.done.set()
        rejected = run_local(work, preset="tiny",
                             params={**base, "criteria": files["strict.yaml"]}, progress=False)
        failed = run_local(work, preset="tiny",
                           params={**base, "dataset_uri": "s3://noa-phase0/no"}, progress=False)
    return {"work": work, "killed": killer.killed, "passed": passed, "rejected": rejected,
            "failed": failed, "machine_tmp": machine_tmp}


def _train_output(run: LocalRun) -> dict[str, Any]:
    return json.loads((run.run_dir / "train-noa" / "executor_output.json").read_text())


def test_killed_train_task_resumes_from_its_first_checkpoint(runs: dict[str, Any]) -> None:
    assert runs["killed"], "the train task was never killed"
    out = _train_output(runs["passed"])["parameterValues"]
    assert out["resumed_from_step"] == CHECKPOINT_EVERY
    assert out["steps"] == MAX_STEPS
    # The run-scoped directory of this pipeline run: the one whose MLflow run train returned.
    train_dirs = [p.parent for p in runs["work"].glob(f"cache/runs/*/train/{TRAIN_RUN_FILE}")
                  if json.loads(p.read_text())["run_id"] == out["mlflow_run_id"]]
    assert len(train_dirs) == 1
    steps = [r["step"] for r in map(json.loads, (train_dirs[0] / LOG_FILE).read_text()
                                    .splitlines()) if "total" in r]
    # Started over, step 10 would be logged twice; resumed, every step is logged once.
    assert steps == list(range(CHECKPOINT_EVERY, MAX_STEPS + 1, CHECKPOINT_EVERY))


def test_a_passing_gate_promotes_the_version_to_champion(runs: dict[str, Any]) -> None:
    run: LocalRun = runs["passed"]
    assert run.outcome["state"] == "SUCCEEDED"
    assert run.gate["passed"] is True
    assert (run.version, run.champion) == ("1", "1")
    client = client_for(run.tracking_uri)
    mv = client.get_model_version(run.model_name, "1")
    assert mv.tags[TAG_DECISION] == "promoted"
    dataset = run.work / "phase0" / "dataset.h5"
    assert mv.tags[LINEAGE_TAGS["dataset_sha256"]] == sha256_file(dataset)
    job = _train_output(run)
    assert mv.run_id == job["parameterValues"]["mlflow_run_id"]
    assert (run.run_dir / "export-onnx" / "onnx" / "model.onnx").is_file()


def test_a_failing_gate_rejects_and_leaves_champion_alone(runs: dict[str, Any]) -> None:
    run: LocalRun = runs["rejected"]
    assert run.outcome["state"] == "SUCCEEDED"  # a rejected model is a result, not a failure
    assert run.gate["passed"] is False
    assert (run.version, run.champion) == ("2", "1")
    client = client_for(run.tracking_uri)
    mv = client.get_model_version(run.model_name, "2")
    assert mv.tags[TAG_DECISION] == "rejected"
    assert mv.tags[TAG_FAILED_CRITERIA] == "rollout_mse"
    model = client.get_registered_model(run.model_name)
    assert {k: str(v) for k, v in model.aliases.items()} == {ALIAS_CHAMPION: "1",
                                                             ALIAS_CHALLENGER: "2"}
    assert not (run.run_dir / "promote").exists()


def test_a_failed_run_is_recorded_by_the_exit_handler(runs: dict[str, Any]) -> None:
    run: LocalRun = runs["failed"]
    assert run.outcome["state"] == "FAILED"
    assert run.outcome["status"] == "FAILED"
    assert run.version is None and run.champion == "1"
    assert not (run.run_dir / "train-noa").exists()


def test_the_local_runner_leaves_print_as_it_was(runs: dict[str, Any]) -> None:
    # kfp.local swaps builtins.print to indent task logs; left swapped, every later print in the
    # process is indented and `print` cannot be pickled.
    assert builtins.print is REAL_PRINT


def test_the_task_processes_leave_nothing_in_the_temporary_directory(runs: dict[str, Any]
                                                                     ) -> None:
    # Every KFP lightweight component writes its program into `mktemp -d` and never deletes it:
    # 3 runs, about 10 tasks each, would leave a directory apiece.
    assert sorted(p.name for p in runs["machine_tmp"].iterdir()) == []
    assert sorted(p.name for p in runs["work"].glob("task-tmp-*")) == []
