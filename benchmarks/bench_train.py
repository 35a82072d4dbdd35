"""NOA training-step throughput and FLOP efficiency of a preset, in one process run.

Runs the real ``Trainer.train_step`` (rollout with its gradient window, feature heads, features of
the prediction, frozen-tokenizer alignment terms, backward, clipping, AdamW) of the preset *as
configured*: the model, ``training.batch_size``, ``training.tbptt_window``, AMP and activation
checkpointing all come from the preset, nothing is shrunk. The replay file and the tokenizer
are a small bootstrap made first (``--operators`` operators of the preset's dynamics; the
tokenizer fit is cut to a few epochs, its architecture kept): they feed the step, they are not
timed.

Prints one JSON object:

- ``samples_per_s``: global batch / median step seconds (``--warmup`` steps excluded);
- ``flops_per_step``: forward + backward FLOPs of one training step counted with
  ``torch.utils.flop_counter.FlopCounterMode``. It counts matrix products and convolutions
  (mm, addmm, bmm, convolutions and their backward); **FFTs are not counted** (the AFNO's
  rfft2/irfft2 and the features' spectra), nor elementwise, normalisation and optimiser work;
  ``flops_by_op`` splits the count. The timed steps run the AFNO transforms as DFT matrices
  (GEMMs, the trainer's default); the counted step runs them as FFTs (``fft_transforms``), so
  the transforms' work is left out of the count in both forms;
- ``achieved_flops_per_s`` = flops_per_step / step_seconds;
- ``gemm_flops_per_s``: a 2048×2048 fp32 ``torch.matmul`` in the same process and thread count
  (2·2048³ FLOPs per product, best of ``--gemm-repeats``);
- ``ratio`` = achieved / GEMM, against ``target`` 0.25;
- ``device``: where the trainer runs (its own choice: CUDA when present, else the CPU);
- ``cpu``, ``cpu_capability``: the CPU's model name and the vector instructions torch uses
  (AVX2, AVX512): the ratio depends on them;
- ``peak_memory_bytes``: on CUDA, the most memory the allocator held during the timed steps
  (``torch.cuda.max_memory_allocated``);
- ``paper_gpu``: when a GPU is present, the same measurement of the ``paper`` preset with
  ``training.amp = bf16`` on it, against the card's **bf16** GEMM rate (an 8192² bf16
  ``torch.matmul``: a 2048² product is too small to fill a data-centre GPU); else the reason it
  is unmeasured.

With ``--profile`` one more step runs under ``torch.profiler`` and ``top_ops`` lists where its
CPU time goes (self time, the largest first).

Usage: python benchmarks/bench_train.py [--preset small] [--steps 3] [--warmup 1] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from noa_core.config import NOAConfig, load_config
from noa_core.data.generate import generate_dataset
from noa_core.data.parallel import available_cpus
from noa_core.models.afno import fft_transforms
from noa_core.tokenizer.train import train_tokenizer
from noa_core.training.trainer import Trainer, batch_indices

TARGET_RATIO = 0.25
GEMM_N = 2048
PAPER_GEMM_N = 8192


def bootstrap_config(cfg: NOAConfig, epochs: int) -> NOAConfig:
    """``cfg`` with the tokenizer's (and family encoders') training cut to ``epochs`` epochs;
    the tokenizer architecture, dynamics and the NOA sections are untouched."""
    tok = cfg.tokenizer
    loop = tok.training.model_copy(update={"epochs": epochs, "patience": epochs})
    fam_loop = tok.families.training.model_copy(update={"epochs": epochs, "patience": epochs})
    fam = tok.families.model_copy(update={"training": fam_loop})
    return cfg.model_copy(update={"tokenizer": tok.model_copy(
        update={"training": loop, "families": fam})})


def make_bootstrap(cfg: NOAConfig, root: Path, operators: int, epochs: int
                   ) -> tuple[Path, Path]:
    """(replay-like dataset with K_max + H steps of trajectories, tokenizer directory)."""
    data, tok = root / "dataset.h5", root / "tokenizer"
    # One worker process per operator up to the CPUs (a paper operator takes about 30 s on one
    # core; a GPU machine has many): the file does not depend on the worker count.
    generate_dataset(bootstrap_config(cfg, epochs), data, num_samples=operators,
                     workers=min(available_cpus(), operators), progress=False)
    train_tokenizer(data, tok, progress=False)
    return data, tok


def gemm_flops_per_s(device: torch.device, dtype: torch.dtype = torch.float32,
                     n: int = GEMM_N, repeats: int = 5) -> float:
    """FLOP/s of an n×n matmul (2n³ per product) on ``device``, best of ``repeats`` after a
    warm-up."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, dtype)
    b = torch.randn(n, n, generator=gen).to(device, dtype)
    torch.matmul(a, b)
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``): the
    ratio depends on it, since the GEMM baseline scales with the vector units and the step's
    elementwise work does not."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def log(message: str) -> None:
    """A progress line on stderr (stdout carries the JSON alone)."""
    print(f"[bench_train {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def step_rows(trainer: Trainer, step: int) -> torch.Tensor:
    """The global batch [batch_size] of row indices the trainer would take at ``step``."""
    t = trainer.t
    return batch_indices(len(trainer.train_ds), t.batch_size, step, t.seed)


def count_step_flops(trainer: Trainer, rows: torch.Tensor) -> tuple[int, dict[str, int]]:
    """FLOPs (forward + backward; matmuls and convolutions only) of one training step, the AFNO
    transforms as (uncounted) FFTs."""
    with fft_transforms(trainer.model), FlopCounterMode(display=False) as counter:
        if trainer.train_step(rows) is None:
            raise SystemExit("the counted step was skipped as non-finite")
    by_op = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), dict(sorted(by_op.items(), key=lambda kv: -kv[1]))


def time_steps(trainer: Trainer, warmup: int, steps: int) -> list[float]:
    """Wall seconds of ``steps`` training steps after ``warmup`` untimed ones."""
    seconds = []
    for i in range(warmup + steps):
        rows = step_rows(trainer, i)
        _sync(trainer.ctx.device)
        t0 = time.perf_counter()
        if trainer.train_step(rows) is None:
            raise SystemExit(f"step {i} was skipped as non-finite")
        _sync(trainer.ctx.device)
        if i >= warmup:
            seconds.append(time.perf_counter() - t0)
    return seconds


def profile_step(trainer: Trainer, rows: torch.Tensor, top: int = 15) -> list[dict[str, Any]]:
    """Self CPU time per operator of one training step, the ``top`` largest."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.train_step(rows)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [{"op": e.key, "self_cpu_s": round(e.self_cpu_time_total / 1e6, 4),
             "fraction": round(e.self_cpu_time_total / total, 4), "calls": e.count}
            for e in events[:top]]


def measure(preset: str, amp: str | None, args: argparse.Namespace,
            gemm_dtype: torch.dtype = torch.float32, gemm_n: int = GEMM_N) -> dict[str, Any]:
    """Bootstrap, build the trainer of ``preset`` (``amp`` overrides ``training.amp``), time
    steps, count one step's FLOPs, compare with a ``gemm_n``² ``gemm_dtype`` GEMM on the same
    device."""
    cfg = load_config(preset)
    if amp is not None:
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"amp": amp})})
    t = cfg.training
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        log(f"{preset}: bootstrap of {args.operators} operators and a tokenizer")
        data, tok = make_bootstrap(cfg, Path(tmp), args.operators, args.tokenizer_epochs)
        trainer = Trainer(cfg, data, tok, Path(tmp) / "run", progress=False)
        log(f"{preset}: {args.warmup} + {args.steps} steps on {trainer.ctx.device}")
        if len(trainer.train_ds) < t.batch_size:
            raise SystemExit(f"{len(trainer.train_ds)} train operators < batch {t.batch_size}: "
                             "raise --operators")
        device = trainer.ctx.device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = time_steps(trainer, args.warmup, args.steps)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        n = args.warmup + args.steps
        flops, by_op = count_step_flops(trainer, step_rows(trainer, n))
        top = profile_step(trainer, step_rows(trainer, n + 1)) if args.profile else None
        params = trainer.model.num_parameters()
    gemm = gemm_flops_per_s(device, gemm_dtype, gemm_n, repeats=args.gemm_repeats)
    step_s = statistics.median(seconds)
    achieved = flops / step_s
    out: dict[str, Any] = {
        "preset": preset, "device": str(device), "batch_size": t.batch_size,
        "horizon": cfg.dynamics.feature_horizon, "tbptt_window": t.tbptt_window, "amp": t.amp,
        "checkpoint_activations": t.checkpoint_activations, "loss_mode": t.loss_mode,
        "grid": cfg.dynamics.grid, "parameters": params,
        "samples_per_s": t.batch_size / step_s, "step_seconds": step_s,
        "step_seconds_all": [round(s, 3) for s in seconds],
        "flops_per_step": flops,
        "flops_counted": "FlopCounterMode, forward + backward: matmuls and convolutions; "
                         "FFTs (AFNO and feature spectra), elementwise, normalisation and "
                         "optimiser work are not counted; the AFNO transforms, timed as DFT "
                         "matrices, are counted as FFTs (not at all)",
        "flops_by_op": by_op,
        "achieved_flops_per_s": achieved, "gemm_flops_per_s": gemm,
        "gemm": f"{str(gemm_dtype).removeprefix('torch.')} torch.matmul {gemm_n}x{gemm_n} "
                f"on {device}, best of {args.gemm_repeats}",
        "ratio": achieved / gemm, "target": TARGET_RATIO,
        "meets_target": achieved / gemm >= TARGET_RATIO,
    }
    if peak is not None:
        out["peak_memory_bytes"] = peak
        out["device_name"] = torch.cuda.get_device_name(device)
    if top is not None:
        out["top_ops"] = top
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--operators", type=int, default=16,
                    help="operators in the bootstrap replay file (its train split must hold "
                         "at least one global batch)")
    ap.add_argument("--tokenizer-epochs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--gemm-repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--no-paper", action="store_true",
                    help="skip the paper-preset bf16 measurement even when a GPU is present")
    args = ap.parse_args()

    out = measure(args.preset, None, args)
    if not torch.cuda.is_available():
        out["paper_gpu"] = "unmeasured: no GPU lent to this task"
    elif args.no_paper:
        out["paper_gpu"] = "unmeasured: --no-paper"
    else:
        out["paper_gpu"] = measure("paper", "bf16", args, torch.bfloat16, PAPER_GEMM_N)
    out.update({"torch": torch.__version__, "threads": torch.get_num_threads(),
                "cpus": os.cpu_count(), "machine": platform.machine(), "cpu": cpu_name(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "load_average": [round(x, 2) for x in os.getloadavg()]})
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
