"""``noa pipeline run-local``: the whole pipeline on this machine, through the real KFP local
runner, against an embedded S3 endpoint and a local MLflow store.

1. Phase 0 stand-ins: ``noa bootstrap --preset P`` (operator dataset + frozen tokenizer +
   manifest) into ``WORK/phase0`` (reused when already there).
2. An S3 endpoint on loopback (moto's server in a thread) with throwaway credentials in this
   process's environment (the task subprocesses inherit them, as pods inherit Secrets); the
   stand-ins are pushed to ``s3://BUCKET/phase0`` with their manifest.
3. MLflow: ``sqlite:///WORK/mlflow.db`` (artifacts beside it).
4. ``kfp.local.SubprocessRunner`` runs every component in this Python environment, with a
   ``TMPDIR`` under ``WORK`` that is removed after the run (``task_tmpdir``); outputs land
   under ``WORK/kfp/<run>/<task>/``; train's run-scoped checkpoints under ``WORK/cache``.
5. The outcome: the gate table, the registered version and its alias, where everything is.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from components import PROJECT_IMAGE
from pipelines.local_services import embedded_s3, environment, mlflow_server

Runner = Literal["subprocess", "docker"]

LOCAL_BUCKET = "noa-phase0"
LOCAL_PREFIX = "phase0"
LOCAL_MODEL_NAME = "noa-phase1-local"
LOCAL_BACKOFF = "0s"  # no pod to reschedule: a local retry starts at once
DEMO_NOTE = ("A demo-sized run proves the machinery end to end; its gate outcome is not a "
             "quality claim about the NOA.")


@dataclass
class LocalRun:
    """Where one local pipeline run put things, and what it decided."""

    work: Path
    run_dir: Path
    tracking_uri: str
    model_name: str
    s3_uri: str
    seconds: float
    gate: dict[str, Any] = field(default_factory=dict)
    version: str | None = None
    champion: str | None = None
    outcome: dict[str, Any] = field(default_factory=dict)

    def artifact(self, task: str, name: str) -> Path:
        """The output ``name`` of ``task`` in this run (``WORK/kfp/<run>/<task>/<name>``)."""
        return self.run_dir / task / name


def stand_ins(work: Path, preset: str, progress: bool) -> Path:
    """``WORK/phase0`` from ``noa bootstrap`` (kept when its manifest is already there)."""
    from noa_core.data.manifest import MANIFEST_NAME
    from noa_core.tokenizer.bootstrap import bootstrap

    phase0 = work / "phase0"
    if (phase0 / MANIFEST_NAME).is_file():
        print(f"[run-local] Phase 0 stand-ins: reusing {phase0}", flush=True)
        return phase0
    print(f"[run-local] Phase 0 stand-ins: noa bootstrap --preset {preset} --out {phase0}",
          flush=True)
    summary = bootstrap(preset, phase0, progress=progress)
    tok = summary["tokenizer"]
    print(f"[run-local]   {summary['num_samples']} operators, tokenizer recon MSE "
          f"{tok['recon_mse']:.4g}, utilization {tok['utilization']:.3f}, "
          f"{summary['seconds']:.0f} s", flush=True)
    return phase0


def publish(phase0: Path) -> str:
    """Create the bucket on the embedded endpoint and push the stand-ins; returns their URI."""
    import boto3

    from noa_core.data.storage import push

    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(
        Bucket=LOCAL_BUCKET)
    uri = f"s3://{LOCAL_BUCKET}/{LOCAL_PREFIX}"
    report = push(phase0, uri)
    print(f"[run-local] pushed {report.files} files ({report.bytes_total / 2**20:.0f} MiB) to "
          f"{uri} on {os.environ['AWS_ENDPOINT_URL']}", flush=True)
    return uri


def run_local(work: str | Path, *, preset: str = "small", params: dict[str, Any] | None = None,
              runner: Runner = "subprocess", image: str | None = None,
              progress: bool = True) -> LocalRun:
    """Run the whole pipeline locally (module docstring); returns where everything is.

    ``params`` override the pipeline's parameters (``max_minutes``, ``criteria``, ...);
    ``tracking_uri`` and ``work_dir`` are set here, and ``dataset_uri`` unless given.
    ``runner="docker"`` runs every task in ``image`` (default: the project image) with
    ``kfp.local.DockerRunner`` on the host network as the image's non-root user; MLflow is then
    an ``mlflow server`` on loopback, and files the tasks read (a criteria or config YAML) must
    lie under ``WORK/kfp``.
    """
    from pipelines.noa_phase1 import build_pipeline

    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    phase0 = stand_ins(work, preset, progress)
    root = work / "kfp"
    root.mkdir(exist_ok=True)
    # This machine trains on its CPU, in the CPU image when the tasks run in containers.
    args: dict[str, Any] = {"preset": preset, "model_name": LOCAL_MODEL_NAME,
                            "replay_shards": 3, "train_gpus": 0, "train_image": PROJECT_IMAGE,
                            **(params or {})}
    with ExitStack() as stack:
        s3_env = stack.enter_context(embedded_s3())
        s3_uri = publish(phase0)
        if runner == "docker":
            tracking_uri = stack.enter_context(mlflow_server(work / "mlflow"))
            pinned = image or str(args.get("image") or PROJECT_IMAGE)
            args.update(image=pinned, work_dir=str(root / "cache"))
            kfp_runner = _docker_runner(root, s3_env)
            stack.enter_context(_shared_umask())
        else:
            tracking_uri, pinned = f"sqlite:///{work / 'mlflow.db'}", None
            args.update(work_dir=str(work / "cache"))
            kfp_runner = _subprocess_runner()
            stack.enter_context(task_tmpdir(work))
        args.setdefault("dataset_uri", s3_uri)  # a given URI wins (e.g. to see a failed run)
        args["tracking_uri"] = tracking_uri
        before = set(root.iterdir())
        _run(build_pipeline(backoff=LOCAL_BACKOFF, pinned_image=pinned), args, root, kfp_runner)
        run = LocalRun(work=work, run_dir=_new_run_dir(root, before), tracking_uri=tracking_uri,
                       model_name=args["model_name"], s3_uri=s3_uri,
                       seconds=time.perf_counter() - started)
        _read_outcome(run)  # while the tracking server still runs
    return run


def _subprocess_runner() -> Any:
    from kfp import local

    return local.SubprocessRunner(use_venv=False)


@contextmanager
def task_tmpdir(work: Path) -> Iterator[Path]:
    """A fresh ``TMPDIR`` under ``work`` for the task subprocesses, removed afterwards.

    A KFP lightweight component starts with ``mktemp -d`` and writes its program there, and
    nothing deletes it: in a pod it goes with the container, but the subprocess runner would
    leave one directory per task in this machine's temporary directory on every run."""
    tempfile.gettempdir()  # this process keeps its own choice, made before TMPDIR changes
    path = Path(tempfile.mkdtemp(prefix="task-tmp-", dir=work))
    try:
        with environment({"TMPDIR": str(path)}):
            yield path
    finally:
        shutil.rmtree(path)


def _docker_runner(root: Path, s3_env: dict[str, str]) -> Any:
    """Tasks in containers on the host network (moto and MLflow on loopback), as the image's
    non-root user, who must be able to write the pipeline root the runner mounts."""
    from kfp import local

    root.chmod(0o777)
    return local.DockerRunner(network_mode="host", environment=dict(s3_env))


@contextmanager
def _shared_umask() -> Iterator[None]:
    """Directories this process creates under the pipeline root stay writable by the
    containers' user (another uid) for the duration."""
    previous = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(previous)


def _run(pipeline: Any, args: dict[str, Any], root: Path, runner: Any) -> None:
    from kfp import local

    local.init(runner, pipeline_root=str(root), raise_on_error=False)
    # kfp.local indents task logs by swapping builtins.print; ParallelFor iterations run in
    # threads whose swaps interleave, and one can stay installed after the run (seen: every later
    # print indented, and `print` no longer picklable). Put the real one back whatever happens.
    real_print = builtins.print
    try:
        with warnings.catch_warnings():
            # The subprocess runner warns that our image is not a Python image and that
            # resources and accelerators have no effect locally: both are expected here.
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            pipeline(**args)
    finally:
        builtins.print = real_print


def _new_run_dir(root: Path, before: set[Path]) -> Path:
    new = sorted(set(root.iterdir()) - before, key=lambda p: p.stat().st_mtime)
    if not new:
        raise RuntimeError(f"{root}: the local runner created no run directory")
    return new[-1]


def _read_outcome(run: LocalRun) -> None:
    from noa_core.tracking import champion_version
    from noa_core.tracking.pipeline_runs import pipeline_outcomes

    gate = run.artifact("evaluate", "gate")
    if gate.is_file():
        run.gate = json.loads(gate.read_text())
    registered = _output_parameters(run.run_dir / "register")
    run.version = registered.get("Output")
    run.champion = champion_version(run.tracking_uri, run.model_name)
    outcomes = pipeline_outcomes(run.tracking_uri)
    run.outcome = outcomes[0] if outcomes else {}


def _output_parameters(task_dir: Path) -> dict[str, Any]:
    path = task_dir / "executor_output.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("parameterValues", {})


def summary(run: LocalRun) -> str:
    """The text the main job ends with: gate table, registry state, where everything is."""
    from noa_core.cli.evaluate_cmd import gate_table

    lines = [f"== NOA Phase 1 pipeline, local run ({run.seconds / 60:.1f} min): "
             f"{run.outcome.get('state', 'UNKNOWN')} =="]
    if run.outcome.get("error"):
        lines.append(f"error: {run.outcome['error']}")
    if run.gate:
        lines += [gate_table(run.gate), DEMO_NOTE]
    decision = ("promoted: champion" if run.version and run.champion == run.version
                else "rejected: champion unchanged" if run.version else "not registered")
    lines.append(f"model {run.model_name}: version {run.version or '-'} (challenger), "
                 f"{decision} (champion is version {run.champion or 'none'})")
    lines += ["where everything is:",
              f"  run directory      {run.run_dir}",
              f"  Phase 0 stand-ins  {run.work / 'phase0'} (served as {run.s3_uri})",
              f"  replay             {run.artifact('merge-replay', 'replay')}",
              f"  checkpoint         {run.artifact('train-noa', 'checkpoint')}",
              f"  report             {run.artifact('evaluate', 'report_html')}",
              f"  gate               {run.artifact('evaluate', 'gate')}",
              f"  ONNX               {run.artifact('export-onnx', 'onnx')}",
              f"  MLflow store       {run.tracking_uri}",
              f"  browse it with     mlflow ui --backend-store-uri {run.tracking_uri}"]
    return "\n".join(lines)
