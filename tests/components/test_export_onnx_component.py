"""``export_onnx``: a directory with ``model.onnx`` and its parity report, logged into the run."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from component_chain import Chain

from noa_core.export.stage import ONNX_FILE, PARITY_TOLERANCE, parity_path


def test_export_writes_a_checked_onnx_model(exported: Chain) -> None:
    model = Path(exported.artifacts["onnx"].path) / ONNX_FILE
    onnx.checker.check_model(str(model))
    report = json.loads(parity_path(model).read_text())
    assert report["passed"] is True
    assert exported.outputs["export"] == report["max_rel_error"] <= PARITY_TOLERANCE
    assert exported.artifacts["onnx"].metadata["file"] == ONNX_FILE
