"""``promote``: the gate passed, so ``champion`` moves to this version."""

from kfp import dsl

from components import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def promote(model_name: str, version: str, tracking_uri: str, pipeline_run_id: str,
            reason: str = "passed its gate") -> str:
    """``noa promote --model-name NAME --version V --tracking-uri URI --reason TEXT``: tags the
    version (decision, reason, pipeline run, previous champion), then moves ``champion`` to it.
    Returns the version that held ``champion`` before ('' if none)."""
    from noa_core.tracking import promote as promote_version

    previous = promote_version(tracking_uri, model_name, version, reason=reason,
                               pipeline_run_id=pipeline_run_id)
    print(f"{model_name} version {version} is now champion (before: {previous or 'none'})")
    return previous or ""
