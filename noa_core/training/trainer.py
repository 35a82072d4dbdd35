"""Stage ``noa train``: the NOA against the frozen tokenizer.

- The global RNG is seeded once from ``training.seed``; the batch order of epoch e is a
  permutation from a generator seeded with (seed, e), so a resumed run sees the same batches.
- AdamW, linear warm-up then cosine decay, gradient clipping.
- A step whose loss or gradients are non-finite is skipped and counted; ``nonfinite_abort``
  consecutive skips abort with a clear message.
- bf16 autocast is selectable (CUDA or CPU); the AFNO keeps its FFTs in float32.
- Checkpoints every ``checkpoint_every`` steps (``state.pt``: model, optimiser, scheduler, RNG,
  counters) and the best model by validation trajectory MSE (``checkpoint/``); ``resume``
  continues exactly.
- Under ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in DDP and each rank takes its slice
  of every global batch.
- Context: each step's K comes from ``context_range`` by a generator seeded with (seed, step)
  (so a resumed run draws the same K); the batch's model input is realization 0's states
  u_0 … u_K, its rollout starts at u_K and is scored on states K + 1 … K + H. Validation uses
  K = ``training.context``.
- Writes ``metrics.jsonl`` (a record per ``log_every`` steps and per validation),
  ``metrics.json`` and ``curves.png`` (``noa_core.training.curves``) to the output directory.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from noa_core.atomic import write_atomic
from noa_core.config import NOAConfig, TrainConfig
from noa_core.errors import TrainingError
from noa_core.features.extract import FeatureExtractor
from noa_core.features.schema import feature_schema
from noa_core.models.backbone import NOABackbone, grad_states
from noa_core.models.registry import build_model, model_inputs
from noa_core.tokenizer.tokenizer import Tokenizer
from noa_core.training.checkpoint import (
    load_training_state,
    save_model_checkpoint,
    save_training_state,
)
from noa_core.training.curves import CURVES_FILE, plot_training_curves
from noa_core.training.data import ReplayWindows
from noa_core.training.field_stats import FieldMoments
from noa_core.training.losses import (
    alignment_terms,
    context_targets,
    heads_loss,
    trajectory_loss,
    weighted_total,
)

STATE_FILE = "state.pt"
BEST_DIR = "checkpoint"
METRICS_FILE = "metrics.json"
LOG_FILE = "metrics.jsonl"


@dataclass
class RunContext:
    """Distributed placement of this process."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def distributed_context() -> RunContext:
    """Initialise the process group when launched by torchrun; else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) \
        if torch.cuda.is_available() else torch.device("cpu")
    if world <= 1:
        return RunContext(device=device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return RunContext(dist.get_rank(), world, device)


def _seen(bar: tqdm, moments: FieldMoments, states: torch.Tensor) -> torch.Tensor:
    """``states`` [b, M, S, C, H, W], added to ``moments`` and its b operators to ``bar``."""
    moments.add(states)
    bar.update(len(states))
    return states


def alignment_factor(t: TrainConfig, step: int) -> float:
    """The share a ∈ (0, 1] of the alignment weights (latent, commit, recon, heads) at a step:
    (step + 1) / ``alignment_warmup`` until it reaches 1; 1 without a warm-up."""
    if t.alignment_warmup == 0:
        return 1.0
    return min(1.0, (step + 1) / t.alignment_warmup)


# A budgeted run plans its next step with the longest of its last few steps, and its close with
# the state save as well as the validation: steps vary (2.2-2.8 s on a shared 2-core machine),
# and planning with the last step and the validation alone let a 10-minute `small` run end at
# 600.8 s.
BUDGET_STEP_WINDOW = 8


def within_budget(budget_s: float | None, elapsed_s: float, step_s: float,
                  close_s: float) -> bool:
    """Whether one more step (``step_s``: the longest of the last ``BUDGET_STEP_WINDOW``) and
    the close of the run (``close_s``: the last validation and the last state save, as long as
    they were) still end within ``budget_s`` seconds of training; always true without a
    budget. A run whose steps are timed this way stops inside ``training.max_minutes``, not one
    step past it."""
    return budget_s is None or elapsed_s + step_s + close_s <= budget_s


def window_offset(t: TrainConfig, horizon: int, step: int) -> int | None:
    """The TBPTT warm-up of a training step: None (the last W updates) unless
    ``tbptt_position`` is "random", then uniform in 0 … H − W from a generator seeded with
    (seed, step)."""
    if t.tbptt_window is None or t.tbptt_position == "end":
        return None
    g = torch.Generator().manual_seed(t.seed * 1_000_003 + step + 11)
    return int(torch.randint(max(0, horizon - t.tbptt_window) + 1, (1,), generator=g))


def context_of_step(t: TrainConfig, step: int) -> int:
    """K of a training step: uniform over ``context_range`` from a generator seeded with
    (seed, step); ``context`` when no range is set."""
    if t.context_range is None:
        return t.context
    lo, hi = t.context_range
    g = torch.Generator().manual_seed(t.seed * 1_000_003 + step + 7)
    return lo + int(torch.randint(hi - lo + 1, (1,), generator=g))


def lr_factor(step: int, t: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_lr_ratio`` at ``max_steps``."""
    if step < t.warmup_steps:
        return (step + 1) / t.warmup_steps
    span = max(1, t.max_steps - t.warmup_steps)
    progress = min(1.0, (step - t.warmup_steps) / span)
    return t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def batch_indices(n: int, batch: int, step: int, seed: int) -> torch.Tensor:
    """Rows of the global batch of ``step``: epoch e is a permutation seeded with (seed, e)."""
    per_epoch = max(1, n // batch)
    epoch, pos = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return perm[pos * batch:(pos + 1) * batch]


class Trainer:
    """One training run writing into ``out``."""

    def __init__(self, cfg: NOAConfig, replay: str | Path, tokenizer_dir: str | Path,
                 out: str | Path, progress: bool = True,
                 dtype: torch.dtype = torch.float32) -> None:
        """``dtype``: of the model, the tokenizer and every tensor fed to them; float64 is for
        numerical checks (the DDP test compares layouts far below float32 rounding)."""
        self.cfg, self.t = cfg, cfg.training
        self.dtype = dtype
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():  # refused before minutes of setup
            raise TrainingError(f"{out}: exists and is not a directory (the training's output "
                                "directory)")
        self.progress = progress
        self.ctx = distributed_context()
        torch.manual_seed(self.t.seed)  # once, from the config
        horizon = cfg.dynamics.feature_horizon
        self.schema = feature_schema(horizon)
        self.tok = Tokenizer.from_checkpoint(tokenizer_dir).to(dtype)
        self.tok.check_schema(self.schema, f"features of horizon {horizon}")
        self.tokenizer_dir = Path(tokenizer_dir)
        self.extractor = FeatureExtractor(self.schema)
        self.contexts = self._contexts()
        shapes = model_inputs(cfg)
        self.train_ds = ReplayWindows(replay, "train", horizon, self.t.context,
                                      max_context=max(self.contexts), model_inputs=shapes)
        if len(self.train_ds) < self.t.batch_size:
            # batch_indices would hand every step the whole, smaller train split.
            raise TrainingError(f"{replay}: the train split holds {len(self.train_ds)} "
                                f"operators, fewer than training.batch_size "
                                f"{self.t.batch_size}; lower the batch or train on a larger "
                                "replay")
        self.val_ds = ReplayWindows(replay, "val", horizon, self.t.context,
                                    model_inputs=shapes)
        self.replay = Path(replay)
        # Alignment targets depend on where the window starts: one set per K served, all from
        # one read of the split. Tens of seconds before the first step (`small`: 8 s per K on
        # 2 cores): shown, per operator.
        # The same read gives the dataset-level field statistics (float32 states, as stored).
        moments = FieldMoments()
        bar = tqdm(total=len(self.train_ds), desc="alignment targets", unit="op",
                   disable=not (progress and self.ctx.main))
        with bar:
            targets = context_targets(self.tok, self.extractor,
                                      (_seen(bar, moments, states).to(dtype)
                                       for states in self.train_ds.state_batches()),
                                      self.contexts, horizon)
        self.targets = {k: t.to(self.ctx.device) for k, t in targets.items()}
        # Computed on the CPU beside the replay; the prediction's features meet the frozen
        # tokenizer on the run's device.
        self.tok = self.tok.to(self.ctx.device)
        self.model: NOABackbone = build_model(cfg).to(self.ctx.device, dtype)
        if self.ctx.device.type == "cpu":
            # oneDNN convolutions with NHWC weights skip a weight reorder per call: the `small`
            # training step ran 10 % faster (bench_train.py). Unmeasured on CUDA: left as is.
            self.model.to(memory_format=torch.channels_last)
        stats = moments.result()
        self.model.set_field_stats(stats.mean, stats.std, stats.increment_std)
        self.ddp = self.model
        if self.ctx.world > 1:
            # A step with K = 0 (or a model whose context is never fed) leaves the context
            # branch without gradients; DDP must be told, or the next step waits for them.
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, find_unused_parameters=self.model.context_encoder is not None)
        # The fused kernel: one pass per tensor instead of a dozen ops (CPU and CUDA have one;
        # on the `small` model's 171 tensors, 1.6 ms a step on two cores instead of 6.5).
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=self.t.lr,
                                     weight_decay=self.t.weight_decay,
                                     fused=self.ctx.device.type in ("cpu", "cuda") or None)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, self.t))
        self.step = 0
        self.skipped = 0
        self.consecutive_skips = 0
        self.best_val = float("inf")
        self.history: list[dict[str, Any]] = []
        # Set by ``train`` for tracking (rank 0): each metrics.jsonl record goes to ``on_record``;
        # ``checkpoint_extra`` adds sections to checkpoint/config.yaml (lineage, the run id) and
        # ``metrics_extra`` keys to metrics.json.
        self.on_record: Callable[[dict[str, Any]], None] | None = None
        self.checkpoint_extra: dict[str, Any] = {}
        self.metrics_extra: dict[str, Any] = {}

    # --- one step -------------------------------------------------------------------------

    def _local(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global batch."""
        return rows.chunk(self.ctx.world)[self.ctx.rank] if self.ctx.world > 1 else rows

    def _contexts(self) -> list[int]:
        """Every K training draws (one set of alignment targets each)."""
        if self.t.context_range is None:
            return [self.t.context]
        lo, hi = self.t.context_range
        return list(range(lo, hi + 1))

    def losses(self, rows: torch.Tensor, k: int | None = None,
               offset: int | None = None) -> dict[str, torch.Tensor]:
        """Every loss term and the weighted total for train rows ``rows`` with context K
        (default ``training.context``) and TBPTT warm-up ``offset`` (None: the last W)."""
        t, dev, ds = self.t, self.ctx.device, self.train_ds
        k = t.context if k is None else k
        theta = ds.theta[rows].to(dev, self.dtype)
        window = torch.stack([ds.window(int(i), k) for i in rows]).to(dev, self.dtype)
        u0 = window[:, 0, 0]  # realization 0's state K: what was observed last
        context = ds.contexts(rows.tolist(), k, device=dev, dtype=self.dtype)
        target = self.targets[k].rows(rows)
        amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=t.amp == "bf16")
        with amp:
            pred, heads = self.ddp(theta, u0, self.cfg.dynamics.feature_horizon, context,
                                   grad_window=t.tbptt_window, grad_offset=offset,
                                   checkpoint=t.checkpoint_activations)
        pred = pred.to(self.dtype)  # back from bf16 under autocast
        terms = {"traj": trajectory_loss(pred, window)}
        live = grad_states(self.cfg.dynamics.feature_horizon, t.tbptt_window, offset)
        terms.update(alignment_terms(self.tok, self.extractor, pred, target,
                                     with_recon=t.loss_mode == "vq_led", live=live))
        terms["heads"] = heads_loss({name: v.to(self.dtype) for name, v in heads.items()},
                                    target)
        terms["total"] = weighted_total(t, terms, alignment_factor(t, self.step))
        return terms

    def train_step(self, rows: torch.Tensor, k: int | None = None,
                   offset: int | None = None) -> dict[str, float] | None:
        """One optimiser step on global batch ``rows`` with context K and TBPTT warm-up
        ``offset``; None when skipped as non-finite."""
        self.ddp.train()
        self.opt.zero_grad(set_to_none=True)
        terms = self.losses(self._local(rows), k, offset)
        finite = bool(torch.isfinite(terms["total"]))
        norm = torch.tensor(float("nan"))
        if finite or self.ctx.world > 1:
            # Under DDP every rank runs backward even with a non-finite loss: the gradient
            # all-reduce is collective, a rank that left it out would stall the others.
            terms["total"].backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.t.grad_clip)
            finite = finite and bool(torch.isfinite(norm))
        if self.ctx.world > 1:  # every rank skips together
            flag = torch.tensor([float(finite)], device=self.ctx.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = bool(flag.item())
        if not finite:
            self.opt.zero_grad(set_to_none=True)
            self.skipped += 1
            self.consecutive_skips += 1
            if self.consecutive_skips >= self.t.nonfinite_abort:
                raise TrainingError(
                    f"{self.consecutive_skips} consecutive steps had a non-finite loss or "
                    f"gradient (last at step {self.step}); aborting ({self.skipped} skipped in "
                    "all). Lower training.lr or check the replay file for NaN/Inf.")
            return None
        self.consecutive_skips = 0
        self.opt.step()
        self.sched.step()
        return {name: float(v.detach()) for name, v in terms.items()} | \
            {"grad_norm": float(norm)}

    # --- validation -----------------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        """Deterministic rollouts on the val split with K = ``training.context``: trajectory
        MSE against the realization mean over H steps, beside persistence (u_t = u_K) on the
        same samples and steps."""
        self.model.eval()
        ds, dev = self.val_ds, self.ctx.device
        sq_pred, sq_pers = [], []
        for lo in range(0, len(ds), 16):
            rows = torch.arange(lo, min(len(ds), lo + 16))
            window = torch.stack([ds.window(int(i)) for i in rows]).to(dev, self.dtype)
            mean = window[:, :, 1:].mean(1)
            u0 = window[:, 0, 0]
            context = ds.contexts(rows.tolist(), device=dev, dtype=self.dtype)
            pred = self.model.rollout(ds.theta[rows].to(dev, self.dtype), u0,
                                      self.cfg.dynamics.feature_horizon, context)
            sq_pred.append((pred[:, 1:].to(self.dtype) - mean).pow(2).flatten(1).mean(1).cpu())
            sq_pers.append((u0[:, None] - mean).pow(2).flatten(1).mean(1).cpu())
        e_pred, e_pers = torch.cat(sq_pred).numpy(), torch.cat(sq_pers).numpy()
        out: dict[str, Any] = {"val_traj_mse": float(e_pred.mean()),
                               "val_persistence_mse": float(e_pers.mean()),
                               "val_samples": len(ds), "by_policy": {}}
        for policy in sorted(set(ds.policies)):
            sel = ds.policies == policy
            out["by_policy"][policy] = {"samples": int(sel.sum()),
                                        "traj_mse": float(e_pred[sel].mean()),
                                        "persistence_mse": float(e_pers[sel].mean())}
        return out

    # --- the loop -------------------------------------------------------------------------

    def _log(self, record: dict[str, Any]) -> None:
        if self.ctx.main:
            with open(self.out / LOG_FILE, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            if self.on_record is not None:
                self.on_record(record)

    def _save_state(self) -> None:
        if self.ctx.main:
            save_training_state(self.out / STATE_FILE, self)

    def resume(self) -> None:
        """Continue from ``out/state.pt`` exactly (model, optimiser, scheduler, RNG, counters).
        ``metrics.jsonl`` keeps the records up to the state's step: later ones came from steps
        the interrupted run lost, which this one repeats."""
        load_training_state(self.out / STATE_FILE, self)
        if self.ctx.main and (self.out / LOG_FILE).is_file():
            trim_log(self.out / LOG_FILE, self.step)

    def clear_outputs(self) -> None:
        """Before a fresh start, remove what an earlier training left in ``out``, so the
        directory holds only this run's: with a ``state.pt`` (the mark of a training directory)
        the state, best checkpoint, metrics and curves; without, only ``metrics.jsonl`` (the one
        file ``fit`` appends to, left by a run that stopped before its first state)."""
        if not self.ctx.main:
            return
        names = ((STATE_FILE, METRICS_FILE, LOG_FILE, CURVES_FILE, BEST_DIR)
                 if (self.out / STATE_FILE).is_file() else (LOG_FILE,))
        for name in names:
            path = self.out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()

    def fit(self, until: int | None = None) -> dict[str, Any]:
        """Train to ``max_steps`` (or the time budget, or step ``until`` — the schedule still
        spans ``max_steps``, so a run stopped there resumes exactly); writes ``metrics.json``."""
        self.out.mkdir(parents=True, exist_ok=True)
        t = self.t
        started = time.perf_counter()
        budget = None if t.max_minutes is None else t.max_minutes * 60
        bar = tqdm(total=t.max_steps, initial=self.step, desc="train", unit="step",
                   disable=not (self.progress and self.ctx.main))
        last: dict[str, float] | None = None
        val = None
        stop = t.max_steps if until is None else min(until, t.max_steps)
        steps_s: deque[float] = deque(maxlen=BUDGET_STEP_WINDOW)  # recent steps' wall seconds
        val_s = save_s = 0.0  # the last validation's and the last state save's wall seconds
        while self.step < stop:
            now = time.perf_counter()
            if not within_budget(budget, now - started, max(steps_s, default=0.0),
                                 val_s + save_s):
                break
            rows = batch_indices(len(self.train_ds), t.batch_size, self.step, t.seed)
            offset = window_offset(t, self.cfg.dynamics.feature_horizon, self.step)
            last = self.train_step(rows, context_of_step(t, self.step), offset) or last
            steps_s.append(time.perf_counter() - now)
            self.step += 1
            bar.update(1)
            if last is not None and self.step % t.log_every == 0:
                self._log({"step": self.step, "lr": self.sched.get_last_lr()[0], **last})
                bar.set_postfix(loss=f"{last['total']:.4g}", traj=f"{last['traj']:.4g}")
            if self.step % t.val_every == 0 or self.step == t.max_steps:
                began = time.perf_counter()
                val = self._validate_and_keep_best()
                val_s = time.perf_counter() - began
            if self.step % t.checkpoint_every == 0:
                began = time.perf_counter()
                self._save_state()
                save_s = time.perf_counter() - began
        bar.close()
        if val is None or self.history[-1]["step"] != self.step:
            val = self._validate_and_keep_best()
        self._save_state()
        metrics = {**val, "steps": self.step, "skipped_nonfinite": self.skipped,
                   "best_val_traj_mse": self.best_val, "train_seconds":
                   round(time.perf_counter() - started, 1), "last_train": last,
                   "parameters": self.model.num_parameters(), "loss_mode": t.loss_mode,
                   **self.metrics_extra}
        if self.ctx.main:
            write_atomic(self.out / METRICS_FILE, json.dumps(metrics, indent=2))
            plot_training_curves(self.out / LOG_FILE, self.out / CURVES_FILE)
        return metrics

    def _validate_and_keep_best(self) -> dict[str, Any]:
        val = self.validate()
        self.history.append({"step": self.step, **{k: v for k, v in val.items()
                                                   if k != "by_policy"}})
        self._log({"step": self.step, "val": val})
        if val["val_traj_mse"] < self.best_val:
            self.best_val = val["val_traj_mse"]
            if self.ctx.main:
                save_model_checkpoint(self.out / BEST_DIR, self.model, self.cfg, self.schema,
                                      self.tokenizer_dir, {"step": self.step, **val},
                                      extra=self.checkpoint_extra)
        return val


def trim_log(log: Path, step: int) -> None:
    """Keep the records of ``log`` (a metrics.jsonl) up to ``step``, rewritten atomically. A
    last line cut short (the run was killed while appending it) is dropped and said on stderr;
    an unreadable line before it is an error naming the line."""
    lines = log.read_text().splitlines()
    kept = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            if number < len(lines):
                raise TrainingError(f"{log}: line {number} is not a JSON record; repair or "
                                    "remove the file to resume")
            print(f"{log}: dropped its last line, cut short: {line[:60]!r}", file=sys.stderr)
            continue
        if record.get("step", 0) <= step:
            kept.append(line + "\n")
    write_atomic(log, "".join(kept))


def resume_notice(state: Path, resume: bool, found: bool, step: int, max_steps: int
                  ) -> str | None:
    """The line training prints on stderr about ``state``: with ``--resume``, the step it
    continues from, or that there was nothing to continue (a first attempt, or a mistyped OUT);
    without, that an existing state (with its checkpoint and metrics) was removed by
    ``clear_outputs``. None: nothing to say."""
    if resume and found:
        return f"resuming from {state} at step {step} of {max_steps}"
    if resume:
        return f"--resume: {state} does not exist; training starts at step 0"
    if found:
        return (f"{state} exists: this training starts afresh at step 0 and has replaced it, "
                "its checkpoint and metrics (--resume would have continued it)")
    return None


def train(cfg: NOAConfig, replay: str | Path, tokenizer_dir: str | Path, out: str | Path, *,
          resume: bool = False, progress: bool = True, tracking_uri: str | None = None,
          pipeline_run_id: str | None = None) -> dict[str, Any]:
    """Build a trainer, optionally resume, fit. The stage function behind ``noa train``.

    The checkpoint records the lineage training knows (dataset and tokenizer sha256, git
    commit, ``pipeline_run_id``). With ``tracking_uri``, rank 0 logs into an MLflow run (opened,
    or continued when resuming: ``noa_core.training.tracked``) and the returned metrics, OUT/
    metrics.json and the checkpoint carry its id as ``mlflow_run_id``. Without one, nothing
    touches MLflow.
    """
    from noa_core.tracking.constants import CHECKPOINT_LINEAGE
    from noa_core.tracking.lineage import training_lineage
    from noa_core.tracking.reachability import reachable_tracking_uri

    if tracking_uri is not None:
        tracking_uri = reachable_tracking_uri(tracking_uri)  # refused before any work
    trainer = Trainer(cfg, replay, tokenizer_dir, out, progress)
    # before resuming: state.pt records the inputs' sha256 and resume compares them
    lineage = training_lineage(replay, tokenizer_dir, pipeline_run_id)
    trainer.checkpoint_extra[CHECKPOINT_LINEAGE] = lineage
    state = Path(out) / STATE_FILE
    found = state.exists()
    if resume and found:
        trainer.resume()
    else:
        trainer.clear_outputs()
    notice = resume_notice(state, resume, found, trainer.step, cfg.training.max_steps)
    if notice and trainer.ctx.main:
        print(notice, file=sys.stderr, flush=True)
    if tracking_uri is None or not trainer.ctx.main:
        return trainer.fit()
    from noa_core.training.tracked import fit_tracked

    return fit_tracked(trainer, tracking_uri, lineage, resume=resume)

