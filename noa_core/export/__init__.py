"""Export of the trained NOA step to ONNX, with an ONNX Runtime parity check."""

from noa_core.export.onnx_export import check_parity, export_step, step_inputs

__all__ = ["check_parity", "export_step", "step_inputs"]
