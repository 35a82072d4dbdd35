"""DDP: a 2-process CPU (gloo) run equals the single-process run on the same global batch.

Each run is a child process executing this file as a script (``python test_ddp.py …``) with
the environment ``torchrun`` would set (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR on loopback,
a free MASTER_PORT); the trainer reads it through ``distributed_context()``. Every rank builds the
same ``Trainer``, takes K optimiser steps on the same global batches (each rank its half), and
rank 0 saves the parameters. DDP averages gradients over ranks and each rank's loss is a mean over
its equal share of the batch, so the update is the full-batch one up to float rounding.

The children then check the non-finite guard across ranks: a batch whose poisoned row lies in
one rank's share only is skipped by every rank (nothing applied, no collective left waiting), and
the next step trains.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

STEPS = 2  # K optimiser steps
WORLD = 2
TOLERANCE = 1e-6  # max relative difference of any parameter tensor
CHILD_TIMEOUT_S = 600  # a guard against a hung rendezvous, not a timing assertion


def _free_port() -> int:
    """A TCP port on the loopback interface that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child_env(rank: int, world: int, port: int) -> dict[str, str]:
    """What torchrun would export for ``rank`` of ``world`` (loopback only, one thread)."""
    env = dict(os.environ)
    env.update({"WORLD_SIZE": str(world), "RANK": str(rank), "LOCAL_RANK": str(rank),
                "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port), "GLOO_SOCKET_IFNAME": "lo",
                "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    return env


def _launch(world: int, config: Path, data: Path, tok: Path, out: Path) -> Path:
    """Run ``world`` ranks of ``_worker`` to completion; the path of rank 0's parameters."""
    port = _free_port()
    args = [sys.executable, __file__, str(config), str(data), str(tok), str(out)]
    procs = [subprocess.Popen(args, env=_child_env(r, world, port), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(world)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=CHILD_TIMEOUT_S)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for r, (p, log) in enumerate(zip(procs, logs, strict=True)):
        assert p.returncode == 0, f"rank {r} of {world} failed:\n{log[-4000:]}"
    return out / "params.pt"


def max_relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """max over tensors of ‖a − b‖_∞ / ‖b‖_∞ (a tensor that is zero in b: the absolute gap)."""
    assert a.keys() == b.keys()
    worst = 0.0
    for k in b:
        scale = float(b[k].abs().max()) if b[k].numel() else 0.0
        gap = float((a[k].double() - b[k].double()).abs().max()) if b[k].numel() else 0.0
        worst = max(worst, gap / scale if scale > 0 else gap)
    return worst


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(train_config_path: Path,
                                          train_data: tuple[Path, Path],
                                          tmp_path: Path) -> None:
    data, tok = train_data
    single = torch.load(_launch(1, train_config_path, data, tok, tmp_path / "single"),
                        weights_only=True)
    ddp = torch.load(_launch(WORLD, train_config_path, data, tok, tmp_path / "ddp"),
                     weights_only=True)
    start = torch.load(tmp_path / "single" / "initial.pt", weights_only=True)
    # The steps moved the weights (so the comparison is of an update, not of two inits) …
    assert max_relative_difference(single, start) > 1e-4
    # … and both layouts made the same update.
    diff = max_relative_difference(ddp, single)
    print(f"DDP (2 gloo ranks) vs one process after {STEPS} steps: max rel diff {diff:.3g}")
    assert diff <= TOLERANCE


def _worker(config: str, data: str, tok: str, out: str) -> None:
    """One rank: build the trainer (it joins the process group), take ``STEPS`` steps on the
    global batches of steps 0…K−1; rank 0 saves the parameters before and after. Then one
    batch whose non-finite row lies in the last rank's share only: every rank must skip that
    step together (no hang, nothing applied), and the next step must train again."""
    import torch.distributed as dist

    from noa_core.config import load_config
    from noa_core.training.trainer import Trainer, batch_indices

    torch.set_num_threads(1)
    cfg = load_config(config)
    t = cfg.training
    trainer = Trainer(cfg, data, tok, out, progress=False)
    world, rank = trainer.ctx.world, trainer.ctx.rank
    assert world == int(os.environ["WORLD_SIZE"])
    Path(out).mkdir(parents=True, exist_ok=True)
    if rank == 0:
        torch.save(_state(trainer.model), Path(out) / "initial.pt")
    for step in range(STEPS):
        rows = batch_indices(len(trainer.train_ds), t.batch_size, step, t.seed)
        assert len(rows) == t.batch_size and trainer.train_step(rows) is not None
    if rank == 0:
        torch.save(_state(trainer.model), Path(out) / "params.pt")

    rows = batch_indices(len(trainer.train_ds), t.batch_size, STEPS, t.seed)
    poisoned = int(rows.chunk(world)[-1][0])
    memory = trainer.train_ds._memory
    clean = memory[poisoned].clone()
    if rank == world - 1:
        memory[poisoned] = float("nan")
    before = _state(trainer.model)
    assert trainer.train_step(rows) is None and trainer.skipped == 1
    after = _state(trainer.model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    memory[poisoned] = clean
    assert trainer.train_step(rows) is not None and trainer.consecutive_skips == 0
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


if __name__ == "__main__":
    _worker(*sys.argv[1:5])
