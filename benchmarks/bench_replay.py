"""Replay throughput: the canonical layout against the original's way, in one process run.

Prints one JSON object: trajectories per second (one trajectory = one realization of one
operator over K_max + H steps) for

- ``original``: the original's replay (``spinlock_dynamics.md`` §8): an ``nn.Module`` operator,
  one operator and one realization at a time, a Python loop over steps, the global RNG reseeded
  every step, noise drawn on the last hidden features, a NaN check every step, PyTorch's default
  thread count (all cores);
- ``canonical_1proc``: ``CNOReplayer.rollout`` (all M realizations in one call, one thread);
- ``canonical_stage``: the replay stage's layout on all cores: worker processes at one thread
  each (start-up of the workers included);

on operators of the ``small`` preset (the same θ and weights for every method), and the ratios.

Usage: python benchmarks/bench_replay.py [--operators 192] [--baseline-operators 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from torch import nn

from noa_core.config import load_config
from noa_core.data.parallel import available_cpus, map_ordered
from noa_core.dynamics.operator import CNOOperator, ConvBlock, ResidualBlock
from noa_core.dynamics.parameters import ThetaSpace
from noa_core.dynamics.replay import CNOReplayer, Sample
from noa_core.dynamics.seeding import sample_seeds


class _Block(nn.Module):
    def __init__(self, cb: ConvBlock) -> None:
        super().__init__()
        c_out, c_in, k, _ = cb.weight.shape
        self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
        self.norm = nn.InstanceNorm2d(c_out, affine=True, eps=1e-5)
        self.act = nn.GELU()
        self.drop = nn.Dropout2d(0.0)
        with torch.no_grad():
            self.conv.weight.copy_(cb.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.act(self.norm(self.conv(x))))


class _Residual(nn.Module):
    def __init__(self, blk: ResidualBlock) -> None:
        super().__init__()
        self.first, self.second = _Block(blk.first), _Block(blk.second)
        self.skip = nn.Identity()
        if blk.skip is not None:
            self.skip = nn.Conv2d(blk.skip.shape[1], blk.skip.shape[0], 1, bias=False)
            with torch.no_grad():
                self.skip.weight.copy_(blk.skip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x)) + self.skip(x)


class OriginalStyleOperator(nn.Module):
    """The original's module structure, holding the weights of a ``CNOOperator``."""

    def __init__(self, op: CNOOperator) -> None:
        super().__init__()
        self.sigma = op.spec.noise_scale
        self.stem = _Block(op.stem)
        self.hidden = nn.Sequential(*[_Block(b) if isinstance(b, ConvBlock) else _Residual(b)
                                      for b in op.hidden])
        self.out = nn.Conv2d(op.out_weight.shape[1], op.channels, 1)
        with torch.no_grad():
            self.out.weight.copy_(op.out_weight)
            self.out.bias.copy_(op.out_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden(self.stem(x))
        h = h + self.sigma * torch.randn_like(h)  # the original's StochasticBlock, global RNG
        return self.out(h)


def original_rollout(model: OriginalStyleOperator, ic: torch.Tensor, steps: int, m: int,
                     policy: str, dt: float, alpha: float, seed: int) -> torch.Tensor:
    """One realization at a time, a Python loop over steps, reseeded and NaN-checked per step."""
    outs = []
    with torch.no_grad():
        for r in range(m):
            x = ic[None].clone()
            states = [x]
            for t in range(1, steps + 1):
                torch.manual_seed(seed + r + t)
                o = model(x)
                x = x + dt * o if policy == "residual" else alpha * x + (1 - alpha) * o
                if torch.isnan(x).any() or torch.isinf(x).any():
                    raise ValueError("NaN/Inf in rollout")
                states.append(x)
            outs.append(torch.cat(states))
    return torch.stack(outs)


def _setup(cfg_dict: dict) -> CNOReplayer:
    from noa_core.config import NOAConfig

    return CNOReplayer(NOAConfig.model_validate(cfg_dict), cache_size=0, isolate=False)


def _replay(rep: CNOReplayer, job: tuple[Sample, np.ndarray]) -> int:
    sample, ic = job
    return int(rep.rollout(sample, ic).shape[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--operators", type=int, default=192,
                    help="operators replayed by the stage layout (worker start-up included)")
    ap.add_argument("--single-operators", type=int, default=24,
                    help="operators replayed in one process")
    ap.add_argument("--baseline-operators", type=int, default=8,
                    help="operators replayed the original's way (the slowest)")
    ap.add_argument("--preset", default="small")
    args = ap.parse_args()

    cfg = load_config(args.preset)
    dyn = cfg.dynamics
    space = ThetaSpace(cfg.parameter_space, dyn)
    theta, _ = space.sample(args.operators, seed=2026)
    samples = [Sample(i, theta[i], sample_seeds(2026, i)) for i in range(args.operators)]
    gen = torch.Generator().manual_seed(0)
    ics = [torch.randn(dyn.channels, dyn.grid, dyn.grid, generator=gen) for _ in samples]
    rep = CNOReplayer(cfg, cache_size=0)
    steps, m = dyn.steps, dyn.realizations

    # The baseline is the same operator: outputs agree without noise.
    op = rep.operator(samples[0].theta, samples[0].seeds["weights"])
    model = OriginalStyleOperator(op).eval()
    model.sigma = 0.0
    with torch.no_grad():
        dev = float((model(ics[0][None]) - op(ics[0][None])).abs().max())
    if dev > 1e-4:
        raise SystemExit(f"baseline operator differs from the CNO by {dev}")

    # Warm-up (oneDNN primitive creation, allocator) outside the timed loops.
    original_rollout(model, ics[0], 4, 1, "residual", dyn.dt, dyn.alpha, 0)
    rep.rollout(samples[0], ics[0], steps=4)

    n_base = min(args.baseline_operators, args.operators)
    t0 = time.perf_counter()
    for s, ic in zip(samples[:n_base], ics[:n_base], strict=True):
        spec = space.map(s.theta)
        model = OriginalStyleOperator(rep.operator(s.theta, s.seeds["weights"])).eval()
        original_rollout(model, ic, steps, m, spec.update_policy, spec.dt, spec.alpha, 0)
    original = n_base * m / (time.perf_counter() - t0)

    n_single = min(args.single_operators, args.operators)
    t0 = time.perf_counter()
    for s, ic in zip(samples[:n_single], ics[:n_single], strict=True):
        rep.rollout(s, ic)
    canonical_1proc = n_single * m / (time.perf_counter() - t0)

    workers = available_cpus()
    jobs = list(zip(samples, [ic.numpy() for ic in ics], strict=True))
    t0 = time.perf_counter()
    done = sum(map_ordered(_replay, jobs, setup=_setup, setup_args=(cfg.model_dump(mode="json"),),
                           workers=workers, progress=False))
    canonical_stage = done / (time.perf_counter() - t0)

    print(json.dumps({
        "benchmark": "replay", "preset": args.preset, "grid": dyn.grid, "steps": steps,
        "realizations": m,
        "operators": {"stage": args.operators, "single": n_single, "original": n_base},
        "cpus": workers, "torch_threads_default": torch.get_num_threads(),
        "torch": torch.__version__, "machine": platform.machine(),
        "baseline_max_abs_deviation": dev,
        "trajectories_per_s": {"original": round(original, 2),
                               "canonical_1proc": round(canonical_1proc, 2),
                               "canonical_stage": round(canonical_stage, 2)},
        "ratio_canonical_stage_vs_original": round(canonical_stage / original, 2),
        "ratio_canonical_1proc_vs_original": round(canonical_1proc / original, 2),
        "grouped_layout": None,
    }, indent=2))


if __name__ == "__main__":
    main()
