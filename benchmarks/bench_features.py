"""Feature extraction speed: batched against a per-sample loop, in one process run.

Prints one JSON object with, on windows of the ``small`` preset (grid 32, C = 3, M = 3,
H + 1 = 65 states; random fields, fixed seed):

- ``batched``: the full feature set (``tokenizer_input(FeatureExtractor(schema)(window))``)
  for ``--batch`` operators per call;
- ``loop``: the same extractor called once per operator (B = 1), over the same operators;
- per operator: wall-clock and CPU seconds (best of ``--repeats``), and their ratio;
- ``sweep``: the batched wall time per operator for other batch sizes;
- ``gradient_coverage`` (unless ``--no-coverage``): per family, the fraction of tokenizer-input
  columns whose gradient with respect to one such window is finite and non-zero, and the columns
  without one (with the reason they are structurally flat).

``--device cuda`` runs both on a GPU (each timing ends with a synchronisation; CPU seconds then
measure the host's launch work, not the kernels). PyTorch's default thread count is kept. The
machine's load average is printed beside the timings: on shared cores wall-clock times move with
other processes (CPU seconds much less).

Usage: python benchmarks/bench_features.py [--operators 32] [--batch 8] [--repeats 3]
       [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

import torch

from noa_core.config import load_config
from noa_core.features.coverage import gradient_coverage
from noa_core.features.extract import FeatureExtractor, tokenizer_input
from noa_core.features.schema import feature_schema, structurally_flat


def _best(fn: Callable[[], None], repeats: int) -> tuple[float, float]:
    """(wall, cpu) seconds of the fastest of ``repeats`` runs of ``fn`` (after one warm-up)."""
    fn()
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu


def _run(extractor: FeatureExtractor, windows: torch.Tensor, batch: int) -> None:
    with torch.no_grad():
        for lo in range(0, len(windows), batch):
            tokenizer_input(extractor(windows[lo:lo + batch]))
    if windows.is_cuda:  # kernels run asynchronously: the time is the time they take to finish
        torch.cuda.synchronize(windows.device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--operators", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sweep", default="4,16", help="other batch sizes to time (comma list)")
    p.add_argument("--no-coverage", dest="coverage", action="store_false")
    p.add_argument("--device", default="cpu", help="where the features run: cpu or cuda")
    a = p.parse_args()
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {a.device}: no CUDA device is available")

    dyn = load_config("small").dynamics
    schema = feature_schema(dyn.feature_horizon)
    shape = (a.operators, dyn.realizations, schema.states, dyn.channels, dyn.grid, dyn.grid)
    windows = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(a.device)
    extractor = FeatureExtractor(schema)
    load_before = os.getloadavg()

    b_wall, b_cpu = _best(lambda: _run(extractor, windows, a.batch), a.repeats)
    l_wall, l_cpu = _best(lambda: _run(extractor, windows, 1), a.repeats)
    n = a.operators
    sweep = {}
    for size in (int(s) for s in a.sweep.split(",") if s.strip()):
        wall, _ = _best(lambda size=size: _run(extractor, windows, size), a.repeats)
        sweep[str(size)] = round(wall / n * 1e3, 2)
    report = {
        "preset": "small",
        "window": {"realizations": dyn.realizations, "states": schema.states,
                   "channels": dyn.channels, "grid": dyn.grid},
        "schema": schema.describe(),
        "operators": n,
        "device": torch.cuda.get_device_name(windows.device) if windows.is_cuda else "cpu",
        "batched": {"batch": a.batch, "wall_ms_per_op": round(b_wall / n * 1e3, 2),
                    "cpu_ms_per_op": round(b_cpu / n * 1e3, 2)},
        "loop": {"batch": 1, "wall_ms_per_op": round(l_wall / n * 1e3, 2),
                 "cpu_ms_per_op": round(l_cpu / n * 1e3, 2)},
        "loop_over_batched_wall": round(l_wall / b_wall, 2),
        "loop_over_batched_cpu": round(l_cpu / b_cpu, 2),
        "sweep_wall_ms_per_op": sweep,
        "torch_threads": torch.get_num_threads(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "load_average_1min": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if a.coverage:
        one = windows[:1].cpu()
        cov = gradient_coverage(schema, one, chunk=8)
        report["gradient_coverage"] = {
            "families": {k: round(v["fraction"], 4) for k, v in cov["families"].items()},
            "columns": {k: v["columns"] for k, v in cov["families"].items()},
            "uncovered": cov["uncovered"], "nonfinite": cov["nonfinite"],
            "declared_flat_small": structurally_flat(schema, channels=dyn.channels,
                                                     realizations=dyn.realizations),
            "declared_flat_tiny": structurally_flat(feature_schema(16), channels=2,
                                                    realizations=2),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
