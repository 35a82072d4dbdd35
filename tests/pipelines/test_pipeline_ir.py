"""The compiled IR: GPUs, retries, caching, the gate, Secrets, volumes, and no credential in it.

``kfp.local`` ignores every platform setting (resources, accelerators, kfp-kubernetes), so these
are checked on the YAML a cluster would receive.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import platform as pf
from pipelines.parameters import CACHE_MOUNT, DEFAULTS

CANARIES = {
    "AWS_ACCESS_KEY_ID": "AKIACANARY0000000001",
    "AWS_SECRET_ACCESS_KEY": "canary-secret-3f9a1c7e",
    "AWS_SESSION_TOKEN": "canary-session-b2d4",
    "MLFLOW_TRACKING_USERNAME": "canary-user-77",
    "MLFLOW_TRACKING_PASSWORD": "canary-password-5e1d",
    "MLFLOW_TRACKING_TOKEN": "canary-token-90ab",
    "KF_PIPELINES_SA_TOKEN_PATH": "/canary/token/path",
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, dict]:
    """The pipeline compiled by the CLI in a process whose environment holds canary secrets."""
    out = tmp_path_factory.mktemp("ir") / "noa.yaml"
    env = {**os.environ, **CANARIES}
    subprocess.run([sys.executable, "-m", "noa_core.cli", "pipeline", "compile", "--out",
                    str(out)], env=env, check=True, capture_output=True, text=True)
    text = out.read_text()
    spec, platform = yaml.safe_load_all(text)
    return text, spec, platform


def _tasks(spec: dict) -> dict[str, dict[str, Any]]:
    """Every task of every DAG in the IR, by task name."""
    found = dict(spec["root"]["dag"]["tasks"])
    for comp in spec["components"].values():
        found.update(comp.get("dag", {}).get("tasks", {}))
    return found


def _executors(spec: dict) -> dict[str, dict[str, Any]]:
    return spec["deploymentSpec"]["executors"]


def _k8s(platform: dict) -> dict[str, dict[str, Any]]:
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_no_canary_value_anywhere_in_the_yaml(compiled: tuple[str, dict, dict]) -> None:
    text = compiled[0]
    leaked = [k for k, v in CANARIES.items() if v in text]
    assert not leaked, f"credential values compiled into the YAML: {leaked}"


def test_gpus_are_requested_by_train_and_by_replay_only(compiled: tuple[str, dict, dict]
                                                        ) -> None:
    _, spec, platform = compiled
    accel = {name: ex["container"]["resources"]["accelerator"]
             for name, ex in _executors(spec).items()
             if "accelerator" in ex["container"].get("resources", {})}
    assert set(accel) == {"exec-train-noa", "exec-cno-replay"}
    assert "pipelinechannel--train_gpus" in accel["exec-train-noa"]["resourceCount"]
    assert "pipelinechannel--replay_gpus" in accel["exec-cno-replay"]["resourceCount"]
    assert {a["resourceType"] for a in accel.values()} == {pf.GPU_RESOURCE}
    # Only train is pinned to the GPU node pool (a CPU replay must not take a GPU node).
    pinned = {name for name, ex in _k8s(platform).items() if "nodeSelector" in ex}
    tolerating = {name for name, ex in _k8s(platform).items() if "tolerations" in ex}
    assert pinned == tolerating == {"exec-train-noa"}
    train = _k8s(platform)["exec-train-noa"]
    assert train["nodeSelector"]["labels"] == dict([pf.GPU_NODE_LABEL])
    assert train["tolerations"][0]["key"] == pf.GPU_TAINT_KEY
    assert DEFAULTS["replay_gpus"] == 0 and DEFAULTS["train_gpus"] == 1


def test_every_task_has_cpu_and_memory_requests_and_limits(compiled: tuple[str, dict, dict]
                                                           ) -> None:
    for name, ex in _executors(compiled[1]).items():
        res = ex["container"].get("resources", {})
        for key in ("resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest",
                    "resourceMemoryLimit"):
            assert key in res, f"{name} lacks {key}"
    train = _executors(compiled[1])["exec-train-noa"]["container"]["resources"]
    assert (train["resourceCpuLimit"], train["resourceMemoryLimit"]) == pf.TRAIN_RESOURCES


def test_retries_where_intended(compiled: tuple[str, dict, dict]) -> None:
    retries = {name: t.get("retryPolicy", {}).get("maxRetryCount", 0)
               for name, t in _tasks(compiled[1]).items() if "componentRef" in t
               and not t["componentRef"]["name"].startswith(("comp-condition", "comp-for-loop",
                                                              "comp-exit-handler"))}
    transient = pf.RETRIES["transient"]
    assert retries == {
        "pull-dataset": transient, "plan-replay-shards": 0, "cno-replay": transient,
        "merge-replay": 0, "train-noa": pf.RETRIES["train"], "evaluate": 0, "export-onnx": 0,
        "register": transient, "promote": transient, "reject": transient,
        "record-outcome": transient}


def test_side_effects_are_never_cached(compiled: tuple[str, dict, dict]) -> None:
    cached = {name for name, t in _tasks(compiled[1]).items()
              if t.get("cachingOptions", {}).get("enableCache")}
    assert cached == {"plan-replay-shards", "cno-replay", "merge-replay"}


def test_the_gate_condition_and_its_else(compiled: tuple[str, dict, dict]) -> None:
    conditions = {t["triggerPolicy"]["condition"]: name for name, t in _tasks(compiled[1]).items()
                  if "condition" in t.get("triggerPolicy", {})}
    passed = "inputs.parameter_values['pipelinechannel--evaluate-passed'] == true"
    assert set(conditions) == {passed, f"!({passed})"}
    spec = compiled[1]
    branch_tasks = {c: set(spec["components"][f"comp-{conditions[c]}"]["dag"]["tasks"])
                    for c in conditions}
    assert branch_tasks == {passed: {"promote"}, f"!({passed})": {"reject"}}
    exit_task = spec["root"]["dag"]["tasks"]["record-outcome"]
    assert exit_task["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"


def test_secrets_are_referenced_by_name_as_environment(compiled: tuple[str, dict, dict]
                                                       ) -> None:
    k8s = _k8s(compiled[2])

    def secrets(executor: str) -> dict[str, list[str]]:
        return {s["secretName"]: sorted(e["envVar"] for e in s["keyToEnv"])
                for s in k8s.get(executor, {}).get("secretAsEnv", [])}

    s3 = {pf.S3_SECRET: sorted(pf.S3_SECRET_KEYS)}
    tracking = {pf.TRACKING_SECRET: sorted(pf.TRACKING_SECRET_KEYS)}
    assert secrets("exec-pull-dataset") == s3
    assert secrets("exec-evaluate") == {**s3, **tracking}
    for name in ("exec-train-noa", "exec-export-onnx", "exec-register", "exec-promote",
                 "exec-reject", "exec-record-outcome"):
        assert secrets(name) == tracking, name
    assert secrets("exec-cno-replay") == secrets("exec-merge-replay") == {}


def test_train_keeps_its_checkpoints_on_the_cache_volume(compiled: tuple[str, dict, dict]
                                                         ) -> None:
    mounts = {name: ex["pvcMount"] for name, ex in _k8s(compiled[2]).items() if "pvcMount" in ex}
    assert set(mounts) == {"exec-train-noa"}
    assert mounts["exec-train-noa"][0]["mountPath"] == CACHE_MOUNT == DEFAULTS["work_dir"]


def test_every_task_runs_the_image_parameter_without_installing_anything(
        compiled: tuple[str, dict, dict]) -> None:
    for name, ex in _executors(compiled[1]).items():
        container = ex["container"]
        param = "train_image" if name == "exec-train-noa" else "image"  # GPU training: CUDA image
        placeholder = f"{{{{$.inputs.parameters['pipelinechannel--{param}']}}}}"
        assert container["image"] == placeholder, name
        script = " ".join(container["command"])
        assert "pip install" not in script, f"{name} installs packages at run time"


def test_parameters_and_defaults(compiled: tuple[str, dict, dict]) -> None:
    params = compiled[1]["root"]["inputDefinitions"]["parameters"]
    assert set(params) == set(DEFAULTS)
    for key, value in DEFAULTS.items():
        assert params[key]["defaultValue"] == value, key


def test_compile_refuses_a_non_yaml_path(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "noa_core.cli", "pipeline", "compile", "--out",
                           str(tmp_path / "noa.json")], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("the pipeline package must end in .yaml")
    assert not list(tmp_path.iterdir())
