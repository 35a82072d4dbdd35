"""Per-step latency of the exported NOA step: ONNX Runtime against torch eager, batch 1 and 32.

Builds the NOA of a preset (default ``small``: grid 32, C = 3) with its conditioning layers
perturbed so θ acts (or loads ``--checkpoint DIR``), exports the step at batch 2 with a dynamic
batch axis, and times one step (θ, context embedding, u) → u_next at each batch size: torch
eager under ``no_grad`` on an eval-mode copy, and an ONNX Runtime CPU session. Prints a table
and one JSON line: median milliseconds per step (of ``--repeats`` timed steps after warm-up)
and the ratio torch / ORT (> 1: ORT is faster). Both use ``--threads`` intra-op threads.
Wall-clock times on shared cores move with other processes; the load average is printed.

Usage: python benchmarks/bench_onnx.py [--config small] [--checkpoint DIR] [--threads 1]
       [--repeats 30] [--batches 1 32]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from noa_core.config import load_config
from noa_core.export.onnx_export import export_step, session, step_inputs
from noa_core.models import StepModule, build_model, perturb_zero_layers


def _median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="small", help="preset or YAML (ignored with --checkpoint)")
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # the exporter's registry notes
    if a.checkpoint is not None:
        from noa_core.training.checkpoint import load_model_checkpoint

        model, cfg, _ = load_model_checkpoint(a.checkpoint)
    else:
        cfg = load_config(a.config)
        torch.manual_seed(0)
        model = build_model(cfg)
        perturb_zero_layers(model, 0.05, torch.Generator().manual_seed(1))
    model.eval()
    c, g = cfg.dynamics.channels, cfg.dynamics.grid
    gen = torch.Generator().manual_seed(0)

    def inputs(b: int) -> dict[str, torch.Tensor]:
        return step_inputs(model, torch.rand(b, model.theta_dim, generator=gen),
                           torch.randn(b, c, g, g, generator=gen))

    step = StepModule(model).eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = export_step(model, Path(tmp) / "step.onnx", inputs(2))
        sess = session(path, a.threads)
        for b in a.batches:
            x = inputs(b)
            feeds = {k: v.numpy() for k, v in x.items()}
            with torch.no_grad():
                torch_ms = _median_ms(lambda x=x: step(**x), a.repeats)
                ref = step(**x).numpy()
            ort_ms = _median_ms(lambda feeds=feeds: sess.run(["u_next"], feeds), a.repeats)
            (got,) = sess.run(["u_next"], feeds)
            err = float(np.abs(got - ref).max() / max(ref.std(), 1e-12))
            rows.append({"batch": b, "torch_eager_ms": round(torch_ms, 3),
                         "onnxruntime_ms": round(ort_ms, 3),
                         "ratio_torch_over_ort": round(torch_ms / ort_ms, 3),
                         "max_rel_error": err})
    print(f"{'batch':>5}  {'torch eager ms/step':>20}  {'ORT ms/step':>12}  {'torch/ORT':>9}")
    for r in rows:
        print(f"{r['batch']:>5}  {r['torch_eager_ms']:>20.3f}  {r['onnxruntime_ms']:>12.3f}  "
              f"{r['ratio_torch_over_ort']:>9.3f}")
    print(json.dumps({"config": cfg.name, "grid": g, "channels": c,
                      "parameters": model.num_parameters(), "threads": a.threads,
                      "repeats": a.repeats, "load_average": os.getloadavg(), "results": rows}))


if __name__ == "__main__":
    main()
