"""``noa pipeline compile|upload|submit|schedule|run-local``: the Kubeflow pipeline's doors.

The orchestration layer (``pipelines/``, ``components/``) is imported only when one of these
commands runs, so the rest of ``noa_core`` never imports ``kfp``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from noa_core.cli.args import add_progress, positive, positive_float
from noa_core.errors import NOAError

DEFAULT_LOCAL_WORK = Path("runs") / "local"


class _PipelineInputError(NOAError):
    """A bad pipeline argument, reported as one line like every other ``noa`` error."""


def _errors() -> tuple[type[BaseException], ...]:
    from pipelines.client import PipelineError
    from pipelines.cron import CronError

    return PipelineError, CronError


def _run(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    try:
        return fn(*args, **kwargs)
    except _errors() as exc:
        raise _PipelineInputError(str(exc)) from None


def _params(a: argparse.Namespace) -> dict[str, object]:
    from pipelines.client import parse_params

    return _run(parse_params, a.param)


def _cmd_compile(a: argparse.Namespace) -> int:
    from pipelines.client import compile_pipeline

    path = _run(compile_pipeline, a.out)
    print(f"wrote {path} (KFP IR YAML; parameters and defaults: `noa pipeline compile --help`)")
    return 0


def _cmd_upload(a: argparse.Namespace) -> int:
    from pipelines.client import upload

    got = _run(upload, a.host, a.version, package=a.package, name=a.name)
    print(f"uploaded {a.name} version {got['version']} (pipeline {got['pipeline_id']}, "
          f"version id {got['version_id']})")
    return 0


def _cmd_submit(a: argparse.Namespace) -> int:
    from pipelines.client import submit

    got = _run(submit, a.host, params=_params(a), package=a.package,
               experiment=a.experiment, run_name=a.run_name,
               service_account=a.service_account)
    print(f"submitted run {got['run_id']} in experiment {got['experiment']}")
    return 0


def _cmd_schedule(a: argparse.Namespace) -> int:
    from pipelines.client import schedule

    got = _run(schedule, a.host, a.cron, params=_params(a), job_name=a.name,
               package=a.package, experiment=a.experiment,
               service_account=a.service_account)
    print(f"recurring run {got['recurring_run_id']} on cron '{got['cron']}' (max 1 at a time, "
          f"no catch-up) in experiment {got['experiment']}")
    return 0


def _cmd_run_local(a: argparse.Namespace) -> int:
    from pipelines.local_run import run_local, summary

    params = _params(a)
    for key in ("max_minutes", "max_steps", "criteria", "replay_shards"):
        value = getattr(a, key)
        if value is not None:
            params[key] = value
    run = run_local(a.work, preset=a.preset, params=params, progress=a.progress)
    print(f"\n{summary(run)}")  # a line of its own after the runner's task logs
    return 0 if run.outcome.get("state") == "SUCCEEDED" else 1


def _defaults_text() -> str:
    from pipelines.parameters import DEFAULTS

    return "pipeline parameters (--param KEY=VALUE):\n" + "\n".join(
        f"  {k} = {v!r}" for k, v in DEFAULTS.items())


def _remote(sub: argparse._SubParsersAction, name: str, help_text: str,
            description: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=description,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", required=True, metavar="URL",
                   help="the Kubeflow Pipelines API, e.g. http://ml-pipeline-ui.kubeflow:80 "
                        "(authentication: the client's own, never a flag)")
    p.add_argument("--package", type=Path, default=None, metavar="FILE",
                   help="a compiled pipeline YAML (default: compile the built-in pipeline)")
    return p


def _with_params(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a pipeline parameter (repeatable); see the list below")
    p.add_argument("--experiment", default="noa-phase1", metavar="NAME",
                   help="KFP experiment (default: noa-phase1)")
    p.add_argument("--service-account", default=None, metavar="NAME",
                   help="Kubernetes ServiceAccount the run's pods use (default: the server's "
                        "runner; k8s/ creates noa-pipeline-runner)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    top = sub.add_parser(
        "pipeline", help="compile, upload, submit, schedule or locally run the KFP pipeline",
        description="The NOA Phase 1 Kubeflow pipeline: pull → replay ×N → merge → train "
                    "(GPU) → evaluate → export → register → promote if the gate passed, else "
                    "reject; an exit handler records every outcome in MLflow.")
    psub = top.add_subparsers(dest="pipeline_command", required=True, metavar="ACTION")

    c = psub.add_parser("compile", help="write the pipeline's KFP IR YAML",
                        description="Compile the pipeline to KFP IR YAML (no credential is "
                                    "ever compiled in: tasks read them from Secrets).")
    c.add_argument("--out", required=True, type=Path, metavar="FILE")
    c.set_defaults(func=_cmd_compile)

    u = _remote(psub, "upload", "upload a versioned pipeline to a KFP server",
                "Upload the pipeline as a named version (the pipeline is created first when "
                "the server does not have it).")
    u.add_argument("--version", required=True, metavar="V", help="version name, e.g. a git tag")
    u.add_argument("--name", default="noa-phase1", metavar="NAME", help="pipeline name")
    u.set_defaults(func=_cmd_upload)

    s = _remote(psub, "submit", "start one pipeline run on a KFP server",
                "Start a run of the pipeline.\n\n" + _defaults_text())
    _with_params(s)
    s.add_argument("--run-name", default=None, metavar="NAME")
    s.set_defaults(func=_cmd_submit)

    r = _remote(psub, "schedule", "create a recurring retraining run",
                "Create a KFP recurring run: 6-field cron with seconds first ('S M H DoM Mon "
                "DoW', e.g. '0 0 3 * * *' daily at 03:00), at most one run at a time, no "
                "catch-up of missed runs.\n\n" + _defaults_text())
    r.add_argument("--cron", required=True, metavar="'S M H DoM Mon DoW'")
    r.add_argument("--name", default="noa-phase1-retraining", metavar="NAME",
                   help="recurring run name")
    _with_params(r)
    r.set_defaults(func=_cmd_schedule)

    lo = psub.add_parser(
        "run-local", help="run the whole pipeline on this machine (kfp.local)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run every stage through KFP's local runner on this machine: Phase 0 "
                    "stand-ins from `noa bootstrap`, served by an embedded S3 endpoint on "
                    "loopback, MLflow in WORK/mlflow.db. Prints the gate table, the registered "
                    "version and its alias, and where every artifact is. Exit 0 when the "
                    "pipeline succeeded (whether or not the gate passed).\n\n"
                    + _defaults_text())
    lo.add_argument("--preset", default="small", metavar="P",
                    help="tiny, small or paper (default: small)")
    lo.add_argument("--work", type=Path, default=DEFAULT_LOCAL_WORK, metavar="DIR",
                    help=f"working directory (default: {DEFAULT_LOCAL_WORK})")
    lo.add_argument("--max-minutes", type=positive_float, default=None, dest="max_minutes",
                    help="cap the training time (default: the preset's)")
    lo.add_argument("--max-steps", type=positive, default=None, dest="max_steps",
                    help="cap the training steps (default: the preset's)")
    lo.add_argument("--criteria", default=None, metavar="PATH",
                    help="criteria YAML (default: the built-in Phase 1 criteria)")
    lo.add_argument("--replay-shards", type=positive, default=None, dest="replay_shards",
                    help="parallel replay tasks (default: 3)")
    lo.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="any other pipeline parameter (repeatable)")
    add_progress(lo)
    lo.set_defaults(func=_cmd_run_local)
