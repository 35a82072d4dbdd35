"""NOA checkpoints: the model directory evaluation and export read, and the training state.

``checkpoint/`` (what ``noa evaluate``, ``noa export`` and ``noa register`` take):
- ``config.yaml``: format, version, the full resolved run configuration, the feature schema, the
  tokenizer's directory name and weights sha256, and the validation figures at save time;
  from ``noa train``, also ``lineage`` (dataset and tokenizer sha256, git commit, pipeline run)
  and, when it tracked, ``tracking.mlflow_run_id``;
- ``model.pt``: the model's state dict, tensors only (``weights_only=True`` on load).

``state.pt`` (resume): model, AdamW and scheduler state, the global RNG state, counters, the
resolved configuration and (from ``noa train``) the dataset and tokenizer sha256. Resuming
refuses another model, another configuration (the budget aside) and other inputs. Only tensors
and plain containers, so it too loads with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from noa_core.config import NOAConfig, config_from_dict
from noa_core.errors import TrainingError
from noa_core.features.schema import FeatureSchema
from noa_core.tracking.constants import CHECKPOINT_LINEAGE, LINEAGE_UNKNOWN
from noa_core.tracking.safety import flatten
from noa_core.yaml_text import parse_yaml

if TYPE_CHECKING:
    from noa_core.models.backbone import NOABackbone
    from noa_core.training.trainer import Trainer

CHECKPOINT_FORMAT = "noa-model"
CHECKPOINT_VERSION = 1
CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.pt"
TRAINING_STATE_KEYS = frozenset({"model", "optimizer", "scheduler", "rng", "step", "skipped",
                                 "best_val", "consecutive_skips", "config"})
# What --resume may change: the budget (to extend or cut a run) and the run's label. Any other
# key changes the batches, the losses or the schedule, so the run would no longer continue.
RESUMABLE_CHANGES = frozenset({"name", "training.max_steps", "training.max_minutes"})
# The lineage keys naming the inputs a resumed run must keep: the data and the frozen tokenizer.
RESUME_INPUTS = ("dataset_sha256", "tokenizer_sha256")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _safe_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise TrainingError(f"{path}: refused: the file carries objects other than tensors "
                            f"({str(exc).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise TrainingError(f"{path}: unreadable: {exc}") from None


def save_model_checkpoint(directory: Path, model: NOABackbone, cfg: NOAConfig,
                          schema: FeatureSchema, tokenizer_dir: Path,
                          info: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Write ``directory`` atomically (a temporary sibling, then renamed into place).

    ``extra``: further top-level sections of ``config.yaml`` (plain YAML values), e.g. the
    ``lineage`` and ``tracking`` (MLflow run id) that ``noa register`` reads.
    """
    tmp = directory.with_name(f".{directory.name}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / MODEL_FILE)
    meta = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "feature_schema": schema.to_dict(),
        "tokenizer": {"name": tokenizer_dir.name,
                      "weights_sha256": _sha256(tokenizer_dir / "weights.pt")},
        "info": {k: v for k, v in info.items() if k != "by_policy"},
    }
    clash = sorted(set(extra or {}) & {*meta, "config"})
    if clash:
        raise ValueError(f"checkpoint sections {clash} are reserved")
    meta.update(extra or {})
    meta["config"] = cfg.model_dump(mode="json")
    (tmp / CONFIG_FILE).write_text(yaml.safe_dump(meta, sort_keys=False))
    if directory.exists():
        for f in directory.iterdir():
            f.unlink()
        directory.rmdir()
    tmp.replace(directory)


def load_model_checkpoint(directory: str | Path) -> tuple[NOABackbone, NOAConfig,
                                                            dict[str, Any]]:
    """The model (eval mode), its configuration and the checkpoint's metadata."""
    from noa_core.models.registry import build_model

    d = Path(directory)
    if not d.is_dir():
        raise TrainingError(f"{d}: no such checkpoint directory")
    for name in (CONFIG_FILE, MODEL_FILE):
        if not (d / name).is_file():
            raise TrainingError(f"{d}: missing {name} (not a NOA checkpoint directory)")
    meta = parse_yaml((d / CONFIG_FILE).read_text(), d / CONFIG_FILE, TrainingError)
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{d / CONFIG_FILE}: not a {CHECKPOINT_FORMAT!r} checkpoint")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise TrainingError(f"{d / CONFIG_FILE}: version {meta.get('version')!r}, this code "
                            f"reads {CHECKPOINT_VERSION}")
    if not isinstance(meta.get("config"), dict):
        raise TrainingError(f"{d / CONFIG_FILE}: config: expected the training configuration "
                            f"as a mapping, got {type(meta.get('config')).__name__}")
    cfg = config_from_dict(meta["config"], f"{d / CONFIG_FILE}:config")
    model = build_model(cfg)
    weights = _safe_load(d / MODEL_FILE)
    misfit = state_dict_misfit(model, weights)
    if misfit:
        raise TrainingError(f"{d / MODEL_FILE}: the weights do not fit the model that "
                            f"{d / CONFIG_FILE} describes: {misfit}; the two files come from "
                            "different trainings")
    model.load_state_dict(weights, strict=True)
    return model.eval(), cfg, meta


def state_dict_misfit(model: torch.nn.Module, state: Any) -> str | None:
    """Why ``state`` cannot load strictly into ``model`` (missing, unexpected and reshaped
    tensors, the first of each named), or None when it fits."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a dict of tensors"
    own = model.state_dict()
    reshaped = sorted(k for k in own.keys() & state.keys()
                      if not isinstance(state[k], torch.Tensor) or state[k].shape != own[k].shape)
    missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    parts = [f"{len(keys)} {what} tensors (first: {keys[0]})"
             for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
    if reshaped:
        k = reshaped[0]
        parts.append(f"{len(reshaped)} tensors of another shape (first: {k} {_shape(state[k])} "
                     f"where the model has {list(own[k].shape)})")
    return "; ".join(parts) or None


def _inputs(trainer: Trainer) -> dict[str, str]:
    """The replay's dataset and the tokenizer sha256 from the lineage ``train`` gave the
    trainer (empty for a trainer built without one)."""
    lineage = trainer.checkpoint_extra.get(CHECKPOINT_LINEAGE) or {}
    return {k: lineage[k] for k in RESUME_INPUTS if k in lineage}


def input_changes(saved: Any, current: dict[str, str]) -> str | None:
    """The inputs whose sha256 differs between a saved state and now (``key saved… → now…``),
    or None; an input either side does not know (absent or ``LINEAGE_UNKNOWN``) is not
    compared."""
    if not isinstance(saved, dict):
        return None
    known = [k for k in RESUME_INPUTS if LINEAGE_UNKNOWN not in (saved.get(k, LINEAGE_UNKNOWN),
                                                                 current.get(k, LINEAGE_UNKNOWN))]
    diff = [f"{k} {saved[k][:12]}… → {current[k][:12]}…" for k in known if saved[k] != current[k]]
    return ", ".join(diff) or None


def config_changes(saved: Any, current: dict[str, Any], shown: int = 3) -> str | None:
    """The keys outside ``RESUMABLE_CHANGES`` whose values differ between the configuration a
    training state was saved under and ``current`` (dotted paths, ``saved → current``, the
    first ``shown`` of them and a count), or None when none do."""
    if not isinstance(saved, dict):
        return f"config holds a {type(saved).__name__}, not a configuration"
    old, new = dict(flatten(saved)), dict(flatten(current))
    keys = sorted(k for k in old.keys() | new.keys()
                  if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k))
    if not keys:
        return None
    parts = [f"{k} {old.get(k)!r} → {new.get(k)!r}" for k in keys[:shown]]
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(parts) + more


def _shape(value: Any) -> str:
    return str(list(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


def save_training_state(path: Path, trainer: Trainer) -> None:
    """Everything ``resume`` needs to continue bit for bit, written atomically."""
    state = {
        "model": trainer.model.state_dict(), "optimizer": trainer.opt.state_dict(),
        "scheduler": trainer.sched.state_dict(), "rng": torch.get_rng_state(),
        "step": trainer.step, "skipped": trainer.skipped, "best_val": trainer.best_val,
        "consecutive_skips": trainer.consecutive_skips,
        "config": trainer.cfg.model_dump(mode="json"),
        "inputs": _inputs(trainer),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_training_state(path: Path, trainer: Trainer) -> None:
    """Restore ``save_training_state``'s content into ``trainer``."""
    state = _safe_load(path)
    afresh = "delete it (or train into another --out) to start afresh"
    if not isinstance(state, dict):
        raise TrainingError(f"{path}: holds a {type(state).__name__}, not a training state; "
                            f"{afresh}")
    lacking = sorted(TRAINING_STATE_KEYS - state.keys())
    if lacking:
        raise TrainingError(f"{path}: not a training state: keys {lacking} are missing; "
                            f"{afresh}")
    misfit = state_dict_misfit(trainer.model, state["model"])
    if misfit:
        raise TrainingError(f"{path}: written by a training of another model ({misfit}); "
                            f"{afresh}")
    changed = config_changes(state["config"], trainer.cfg.model_dump(mode="json"))
    if changed:
        allowed = ", ".join(sorted(RESUMABLE_CHANGES))
        raise TrainingError(f"{path}: written under another configuration: {changed} (only "
                            f"{allowed} may change on --resume); restore them, or {afresh}")
    swapped = input_changes(state.get("inputs"), _inputs(trainer))
    if swapped:
        raise TrainingError(f"{path}: written while training on other inputs: {swapped}; give "
                            f"the same replay file and tokenizer, or {afresh}")
    trainer.model.load_state_dict(state["model"])
    trainer.opt.load_state_dict(state["optimizer"])
    trainer.sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    trainer.step = int(state["step"])
    trainer.skipped = int(state["skipped"])
    trainer.best_val = float(state["best_val"])
    trainer.consecutive_skips = int(state["consecutive_skips"])

