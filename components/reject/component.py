"""``reject``: the gate failed, so the version is tagged and ``champion`` stays where it is."""


from kfp import dsl
from kfp.dsl import Artifact, Input

from components import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def reject(model_name: str, version: str, tracking_uri: str, gate: Input[Artifact],
           pipeline_run_id: str) -> list[str]:
    """``noa reject --model-name NAME --version V --tracking-uri URI --gate FILE``: tags the
    version with the criteria that failed in ``gate`` (gate.json). Returns their names."""
    from noa_core.tracking import load_gate
    from noa_core.tracking import reject as reject_version

    failed = reject_version(tracking_uri, model_name, version, load_gate(gate.path),
                            pipeline_run_id=pipeline_run_id)
    print(f"{model_name} version {version} rejected; failed: {', '.join(failed)}")
    return list(failed)
