"""Compile the pipeline and hand it to a Kubeflow Pipelines API server: upload a version, submit
a run, create a recurring run. Everything is checked before the client is called: parameter
names and types against the pipeline's, cron form, and that no value carries a credential.

Authentication with the KFP API is the client's own (in a cluster, the ServiceAccount token
``kfp.Client`` finds by itself); no token is ever a parameter here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipelines.cron import validate_kfp_cron
from pipelines.parameters import DEFAULTS, PIPELINE_DESCRIPTION, PIPELINE_NAME

DEFAULT_EXPERIMENT = "noa-phase1"


class PipelineError(ValueError):
    """Bad input for compile, upload, submit or schedule (one line, names what is wrong)."""


def compile_pipeline(out: str | Path) -> Path:
    """Write the pipeline's IR YAML to ``out`` (atomically); returns the path."""
    from kfp import compiler

    from pipelines.noa_phase1 import noa_phase1

    out = Path(out)
    if out.suffix not in (".yaml", ".yml"):
        raise PipelineError(f"{out}: the pipeline package must end in .yaml")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")  # KFP insists on the suffix
    compiler.Compiler().compile(noa_phase1, package_path=str(tmp))
    tmp.replace(out)
    return out


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` → typed pipeline arguments; unknown keys and bad values refused."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise PipelineError(f"--param {item!r}: expected KEY=VALUE")
        if key not in DEFAULTS:
            raise PipelineError(f"--param {key}: not a pipeline parameter (known: "
                                f"{', '.join(sorted(DEFAULTS))})")
        params[key] = _typed(key, text)
    check_no_credentials(params)
    return params


def _typed(key: str, text: str) -> Any:
    kind = type(DEFAULTS[key])
    if kind is str:
        return text
    try:
        return kind(text)
    except ValueError:
        raise PipelineError(f"--param {key}={text!r}: expected {kind.__name__}") from None


def check_no_credentials(params: Mapping[str, Any]) -> None:
    """Refuse URIs with a user or password in them: credentials come from Secrets only."""
    for key, value in params.items():
        if isinstance(value, str) and "://" in value:
            parts = urlsplit(value)
            if parts.username or parts.password:
                raise PipelineError(f"--param {key}: the URI carries credentials; put them in "
                                    "the Kubernetes Secret instead (they would be stored with "
                                    "the run)")


@contextmanager
def _package(package: str | Path | None) -> Iterator[Path]:
    """The given package, or the built-in pipeline compiled into a temporary file."""
    if package is not None:
        path = Path(package)
        if not path.is_file():
            raise PipelineError(f"{path}: no such pipeline package")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="noa-pipeline-") as tmp:
        yield compile_pipeline(Path(tmp) / f"{PIPELINE_NAME}.yaml")


def _client(host: str) -> Any:
    import kfp

    if not urlsplit(host).scheme:
        raise PipelineError(f"--host {host!r}: expected the KFP API URL, e.g. "
                            "http://ml-pipeline-ui.kubeflow:80")
    return kfp.Client(host=host)


def upload(host: str, version: str, *, package: str | Path | None = None,
           name: str = PIPELINE_NAME) -> dict[str, str]:
    """Upload ``package`` as version ``version`` of pipeline ``name`` (created when absent)."""
    if not version.strip():
        raise PipelineError("--version: give the version name (e.g. the git tag)")
    client = _client(host)
    with _package(package) as path:
        pipeline_id = client.get_pipeline_id(name)
        if pipeline_id is None:
            created = client.upload_pipeline(str(path), pipeline_name=name,
                                             description=PIPELINE_DESCRIPTION)
            pipeline_id = created.pipeline_id
        made = client.upload_pipeline_version(str(path), pipeline_version_name=version,
                                              pipeline_id=pipeline_id)
    return {"pipeline_id": str(pipeline_id), "version_id": str(made.pipeline_version_id),
            "version": version}


def submit(host: str, *, params: Mapping[str, Any], package: str | Path | None = None,
           experiment: str = DEFAULT_EXPERIMENT, run_name: str | None = None,
           enable_caching: bool | None = None, service_account: str | None = None
           ) -> dict[str, str]:
    """Start one run of the pipeline with ``params`` (its pods run as ``service_account``,
    None = the server's default runner); returns its run id."""
    check_no_credentials(params)
    client = _client(host)
    with _package(package) as path:
        result = client.create_run_from_pipeline_package(
            str(path), arguments=dict(params), run_name=run_name, experiment_name=experiment,
            enable_caching=enable_caching, service_account=service_account)
    return {"run_id": str(result.run_id), "experiment": experiment}


def schedule(host: str, cron: str, *, params: Mapping[str, Any], job_name: str,
             package: str | Path | None = None, experiment: str = DEFAULT_EXPERIMENT,
             service_account: str | None = None) -> dict[str, str]:
    """A recurring run on 6-field ``cron``: at most one at a time, no catch-up of missed runs."""
    cron = validate_kfp_cron(cron)
    check_no_credentials(params)
    client = _client(host)
    with _package(package) as path:
        exp = client.create_experiment(experiment)
        job = client.create_recurring_run(
            experiment_id=exp.experiment_id, job_name=job_name, cron_expression=cron,
            max_concurrency=1, no_catchup=True, pipeline_package_path=str(path),
            params=dict(params), service_account=service_account)
    return {"recurring_run_id": str(job.recurring_run_id), "cron": cron,
            "experiment": experiment}
