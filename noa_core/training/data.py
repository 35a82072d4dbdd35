"""Training data: windows of a replay file, read safely from DataLoader workers.

One item is one operator: θ [P] (float32 unit vector), the ground-truth window
[M, H+1, C, H, W] of its stored trajectories (states ``K … K + H``) and its row. The context of
an operator is realization 0's states u_0 … u_K [K + 1, C, H, W]; the window starts at u_K.
A dataset that serves several K (``max_context``) keeps states 0 … max_context + H.
Targets come from the replay file, computed once by ``noa replay``; nothing is regenerated here.
Each DataLoader worker opens its own HDF5 handle (h5py handles must not cross a fork).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from noa_core.data import layout as L
from noa_core.data.hdf5_reader import DatasetReader
from noa_core.errors import DatasetError

# Below this many bytes of windows a split is read into memory once (no per-item HDF5 reads).
PRELOAD_BYTES = 2 << 30
# Operators per batch when a whole split is streamed (alignment targets, field statistics): a
# `paper` train split is ~24 GB as float32, more than a node may hold beside its copies.
STREAM_BATCH = 16


class ReplayWindows(Dataset):
    """Operators of one split of a replay file, as windows of H + 1 states from state K
    (``context`` by default; any K ≤ ``max_context``). ``model_inputs`` (θ slots P, [C, H, W]),
    when given, is checked before anything else: a file of another configuration is named as
    such, not trained or scored on."""

    def __init__(self, path: str | Path, split: str, horizon: int, context: int = 0,
                 preload: bool | None = None, max_context: int | None = None,
                 model_inputs: tuple[int, tuple[int, int, int]] | None = None) -> None:
        self.path = Path(path)
        span = max(context, context if max_context is None else max_context)
        with DatasetReader(self.path) as r:
            if model_inputs is not None:
                r.require_inputs(*model_inputs)
            if not r.has_trajectories:
                raise DatasetError(f"{self.path}: {L.OUTPUTS} is missing: a {r.kind} file without "
                                   "stored trajectories; replay it first (noa replay --dataset "
                                   f"{self.path} --split all --out REPLAY.h5)")
            steps = r.num_steps or 0
            if span + horizon > steps:
                raise DatasetError(
                    f"{self.path}: {L.OUTPUTS} holds {steps} steps, the window needs "
                    f"context {span} + horizon {horizon}; replay with --steps ≥ "
                    f"{span + horizon}")
            self.rows = r.indices_of_split(split)
            if self.rows.size == 0:
                raise DatasetError(f"{self.path}: {L.SPLIT} has no '{split}' rows")
            self.theta = torch.as_tensor(r.theta[self.rows], dtype=torch.float32)
            self.sample_ids = r.sample_ids[self.rows].copy()
            self.policies = (r.policies[self.rows].copy() if r.policies is not None
                             else np.full(len(self.rows), "unknown"))
            m = r.num_realizations or 1
            c, h, w = r.field_shape
        self.split, self.context, self.horizon = split, context, horizon
        self.max_context = span
        self.window_shape = (m, horizon + 1, c, h, w)
        # Kept per operator: states 0 … max_context + H (the contexts and every window).
        self._span_shape = (m, span + horizon + 1, c, h, w)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        size = len(self.rows) * int(np.prod(self._span_shape)) * 4
        self._memory: torch.Tensor | None = None
        if preload if preload is not None else size <= PRELOAD_BYTES:
            # Filled in place: stacking per-item reads held the split twice at its peak.
            self._memory = torch.empty((len(self.rows), *self._span_shape), dtype=torch.float32)
            for i in range(len(self.rows)):
                self._memory[i] = self._read(i)
            self._file.close()
            self._file = None

    def __len__(self) -> int:
        return len(self.rows)

    def _handle(self) -> h5py.File:
        # A handle per process: DataLoader workers are forked after __init__.
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def _read(self, i: int) -> torch.Tensor:
        """Kept states [M, max_context + H + 1, C, H, W] of item i."""
        ds = self._handle()[L.OUTPUTS]
        block = ds[int(self.rows[i]), :, :self._span_shape[1]]
        return torch.from_numpy(np.asarray(block, dtype=np.float32))

    def _states(self, i: int) -> torch.Tensor:
        return self._memory[i] if self._memory is not None else self._read(i)

    def _k(self, k: int | None) -> int:
        k = self.context if k is None else k
        if not 0 <= k <= self.max_context:
            raise ValueError(f"K = {k} is outside the 0 … {self.max_context} this dataset "
                             "keeps")
        return k

    def window(self, i: int, k: int | None = None) -> torch.Tensor:
        """Ground-truth window [M, H+1, C, H, W] of item i from state K (default ``context``)."""
        return self._states(i).narrow(1, self._k(k), self.horizon + 1)

    def context_states(self, i: int, k: int | None = None) -> torch.Tensor:
        """Realization 0's observed states u_0 … u_K [K + 1, C, H, W] of item i."""
        return self._states(i)[0, :self._k(k) + 1]

    def contexts(self, rows: Sequence[int], k: int | None = None, *,
                 device: torch.device | str = "cpu", dtype: torch.dtype | None = None
                 ) -> torch.Tensor | None:
        """The observed states u_0 … u_K [b, K + 1, C, H, W] of ``rows`` on ``device`` (in
        ``dtype`` when given); None for K = 0."""
        k = self.context if k is None else k
        if k == 0:
            return None
        return torch.stack([self.context_states(int(i), k) for i in rows]).to(device, dtype)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"theta": self.theta[i], "window": self.window(i), "index": torch.tensor(i)}

    def state_batches(self, batch: int = STREAM_BATCH) -> Iterator[torch.Tensor]:
        """Every kept state, ``batch`` operators at a time: [b, M, S, C, H, W] in row order
        (views of the preloaded split, else read)."""
        for lo in range(0, len(self), batch):
            hi = min(lo + batch, len(self))
            yield (self._memory[lo:hi] if self._memory is not None
                   else torch.stack([self._read(i) for i in range(lo, hi)]))

    def window_batches(self, k: int | None = None,
                       batch: int = STREAM_BATCH) -> Iterator[torch.Tensor]:
        """Every window from state K, ``batch`` operators at a time: [b, M, H+1, C, H, W]
        (for precomputing ground-truth features once)."""
        j = self._k(k)
        for states in self.state_batches(batch):
            yield states.narrow(2, j, self.horizon + 1)

    def all_windows(self, k: int | None = None) -> torch.Tensor:
        """Every window [N, M, H+1, C, H, W] from state K, at once (a view when preloaded)."""
        if self._memory is not None:
            return self._memory.narrow(2, self._k(k), self.horizon + 1)
        return torch.cat(list(self.window_batches(k)))

    def all_states(self) -> torch.Tensor:
        """Every kept state [N, M, S, C, H, W], at once (the preloaded tensor itself)."""
        if self._memory is not None:
            return self._memory
        return torch.cat(list(self.state_batches()))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None
        return state
