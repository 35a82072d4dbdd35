"""``export_onnx``: the NOA step as ONNX, parity-checked in ONNX Runtime, logged into the run."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def export_onnx(checkpoint: Input[Model], replay: Input[Dataset], tracking_uri: str, run_id: str,
                onnx: Output[Model]) -> float:
    """``noa export --checkpoint DIR --out model.onnx --replay FILE --tracking-uri URI --run-id
    ID``: ``onnx`` is a directory with ``model.onnx`` and its parity report. Returns the
    rollout parity error (relative to each sample's field standard deviation)."""
    from pathlib import Path

    from noa_core.export.stage import ONNX_FILE, export_model

    Path(onnx.path).mkdir(parents=True, exist_ok=True)
    report = export_model(checkpoint.path, Path(onnx.path) / ONNX_FILE, replay=replay.path,
                          tracking_uri=tracking_uri, run_id=run_id)
    onnx.metadata.update({"file": ONNX_FILE, "opset": report.get("opset"),
                          "parity_max_rel_error": report.get("max_rel_error")})
    return float(report["max_rel_error"])
