"""``register``: the NOA as a model version aliased ``challenger``, with lineage tags."""

from kfp import dsl
from kfp.dsl import Input, Model

from components import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def register(checkpoint: Input[Model], onnx: Input[Model], model_name: str, tracking_uri: str,
             run_id: str, pipeline_run_id: str, image_digest: str, criteria: str) -> str:
    """``noa register --checkpoint DIR --onnx FILE --model-name NAME --tracking-uri URI
    --run-id ID --pipeline-run-id ID --image-digest IMAGE --criteria SHA256``: logs the ONNX and
    PyTorch flavours into the training run, creates a version aliased ``challenger`` with
    lineage tags (pipeline run, image, git commit, dataset and tokenizer sha256 as training
    recorded them, criteria hash). Returns the version number."""
    from pathlib import Path

    from noa_core.export.stage import ONNX_FILE
    from noa_core.tracking.register_stage import register_checkpoint

    result = register_checkpoint(checkpoint.path, Path(onnx.path) / ONNX_FILE, model_name,
                                 tracking_uri, run_id=run_id, pipeline_run_id=pipeline_run_id,
                                 image_digest=image_digest, criteria=criteria)
    print(f"{model_name} version {result['version']} is {result['alias']}; lineage: "
          f"{result['lineage']}")
    return str(result["version"])
