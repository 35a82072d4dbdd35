"""A replay worker process with a per-call timeout.

A CUDA kernel that hangs cannot be interrupted from Python inside the process that launched it
(the original's training hung for good at a fixed batch). Here each rollout is sent to a spawned
worker; the parent waits at most ``timeout_s`` and, past it, kills the worker and raises
``ReplayError``. The next call starts a fresh worker.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

from noa_core.config import NOAConfig
from noa_core.errors import ReplayError

STARTUP_TIMEOUT_S = 300.0


def _serve(conn: Connection, cfg_dict: dict[str, Any], device: str, cache_size: int,
           before_call: Callable[[], object] | None) -> None:
    # Imported here: the worker is a fresh interpreter (spawn), and this keeps the parent's
    # import of this module light.
    from noa_core.config import NOAConfig
    from noa_core.dynamics.replay import CNOReplayer

    replayer = CNOReplayer(NOAConfig.model_validate(cfg_dict), cache_size, device, isolate=False)
    conn.send(("ready", None))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        theta, weight_seed, ic, steps, m, all_steps, noise_seed = request
        try:
            if before_call is not None:
                before_call()
            out = replayer.rollout(theta, torch.from_numpy(ic), steps, m, all_steps,
                                   weight_seed=weight_seed, noise_seed=noise_seed)
            conn.send(("ok", out.numpy()))
        except Exception as exc:  # sent to the parent, which raises it as a ReplayError
            conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))


class ReplayWorker:
    """Runs ``CNOReplayer.rollout`` calls in a spawned process, each with a time limit."""

    def __init__(self, cfg: NOAConfig, device: str, cache_size: int, timeout_s: float,
                 before_call: Callable[[], object] | None = None) -> None:
        self.cfg_dict = cfg.model_dump(mode="json")
        self.device = device
        self.cache_size = cache_size
        self.timeout_s = timeout_s
        self.before_call = before_call
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve, daemon=True, name="noa-replay-worker",
            args=(child, self.cfg_dict, self.device, self.cache_size, self.before_call),
        )
        self._proc.start()
        child.close()
        self._conn = parent
        # Interpreter start and imports do not count against the per-rollout limit.
        if not parent.poll(STARTUP_TIMEOUT_S) or parent.recv()[0] != "ready":
            self._kill()
            raise ReplayError(f"the replay worker on {self.device} did not start within "
                              f"{STARTUP_TIMEOUT_S:g} s")
        return parent

    def _kill(self) -> None:
        if self._proc is not None and self._proc.pid is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(timeout=10)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def rollout(self, theta: np.ndarray, weight_seed: int, ic: torch.Tensor, steps: int, m: int,
                all_steps: bool, noise_seed: int, label: str) -> torch.Tensor:
        """The worker's rollout [M, S+1, C, H, W] (or [M, C, H, W]) as a CPU tensor."""
        conn = self._conn or self._start()
        if self._proc is not None and not self._proc.is_alive():
            self._kill()
            conn = self._start()
        conn.send((np.asarray(theta, np.float64), weight_seed, ic.cpu().numpy(), steps, m,
                   all_steps, noise_seed))
        if not conn.poll(self.timeout_s):
            pid = self._proc.pid if self._proc else "?"
            self._kill()
            raise ReplayError(
                f"{label}: replay on {self.device} did not finish within {self.timeout_s:g} s; "
                f"the worker process (pid {pid}) was killed (a hung kernel cannot be interrupted "
                "in-process). Raise dynamics.replay_timeout_s if the operator is just slow."
            )
        try:
            reply = conn.recv()
        except (EOFError, OSError):
            code = self._proc.exitcode if self._proc else None
            self._kill()
            raise ReplayError(f"{label}: the replay worker on {self.device} died "
                              f"(exit code {code})") from None
        if reply[0] == "error":
            raise ReplayError(f"{label}: replay on {self.device} failed in the worker: {reply[1]}")
        return torch.from_numpy(reply[1])

    def close(self) -> None:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(None)
            self._proc.join(timeout=5)
        self._kill()
