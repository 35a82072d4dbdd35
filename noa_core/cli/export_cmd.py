"""``noa export`` (the NOA step as ONNX, parity-checked) and ``noa predict`` (ONNX Runtime)."""

from __future__ import annotations

import argparse
from pathlib import Path

from noa_core.cli.args import non_negative, positive


def _cmd_export(a: argparse.Namespace) -> int:
    from noa_core.export.stage import export_model, parity_path

    report = export_model(a.checkpoint, a.out, replay=a.replay, steps=a.steps,
                          tracking_uri=a.tracking_uri, run_id=a.run_id)
    print(f"wrote {a.out} (opset {report['opset']}); ONNX Runtime vs torch over "
          f"{report['steps']} steps at batch {report['batch']}: max error "
          f"{report['max_rel_error']:.3g} of the field std (≤ {report['tolerance']:g}); "
          f"report {parity_path(a.out)}")
    return 0


def _cmd_predict(a: argparse.Namespace) -> int:
    from noa_core.export.predict import predict

    s = predict(a.onnx, a.replay, a.out, split=a.split, steps=a.steps,
                batch_size=a.batch_size, threads=a.threads, context=a.context)
    print(f"wrote {s['out']}: {s['operators']} operators × {s['steps']} steps from "
          f"{s['start_state']}, context K = {s['context']} ({s['nonfinite']} non-finite)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser(
        "export", help="export the NOA step to ONNX and check it against torch",
        description="Export the checkpoint's single step (θ, context embedding[, context "
                    "field], u_t) → u_{t+1} to ONNX (opset 20, dynamic batch) with the feature "
                    "schema, normalisation, θ names and versions in metadata_props; a model "
                    "with a context encoder also gets FILE's stem + .context.onnx (observed "
                    "states u_0 … u_K → context embedding and field). Roll both out for H steps "
                    "in ONNX Runtime beside torch at a batch size other than the traced one "
                    "and write FILE's stem + .parity.json. Exits 1 if the parity check fails.")
    e.add_argument("--checkpoint", required=True, type=Path, metavar="DIR")
    e.add_argument("--out", required=True, type=Path, metavar="FILE.onnx")
    e.add_argument("--replay", type=Path, default=None, metavar="FILE",
                   help="take the parity inputs (start states and contexts) from this file's "
                        "test split (default: seeded smooth random fields)")
    e.add_argument("--steps", type=positive, default=None, metavar="H",
                   help="parity rollout length (default: the feature horizon)")
    e.add_argument("--tracking-uri", default=None, metavar="URI",
                   help="MLflow URI to log the model and parity report into (with --run-id)")
    e.add_argument("--run-id", default=None, metavar="ID")
    e.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "predict", help="roll an exported ONNX step out with ONNX Runtime alone",
        description="Roll the exported step out in ONNX Runtime (no torch model) from the start "
                    "state of each operator of a split (realization 0's state K), given its "
                    "observed states u_0 … u_K through the exported context encoder beside "
                    "the step, writing predictions/fields [N, steps+1, C, H, W] to an HDF5 file "
                    "(atomically).")
    p.add_argument("--onnx", required=True, type=Path, metavar="FILE")
    p.add_argument("--replay", required=True, type=Path, metavar="FILE")
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="test")
    p.add_argument("--steps", type=positive, default=None, metavar="H",
                   help="steps to roll out (default: the model's horizon)")
    p.add_argument("--context", type=non_negative, default=None, metavar="K",
                   help="observed transitions to give the model (default: the model's "
                        "noa.context; 0: none)")
    p.add_argument("--batch-size", type=positive, default=32, metavar="B")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="ONNX Runtime intra-op threads (0: its default)")
    p.set_defaults(func=_cmd_predict)
