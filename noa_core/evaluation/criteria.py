"""The gate's criteria file (``configs/criteria/phase1.yaml``): schema, defaults and loader.

A criteria file names, for each criterion, the metric of ``metrics.json`` it reads, a comparison
and a threshold; plus the evaluation settings that change the numbers (seed, bootstrap,
clustering, the minimum sample count, which baselines run) and the optional champion rule.
Unknown keys are errors (``extra="forbid"``), and every error names the file and the key.

The defaults of ``Criteria()`` are the Phase 1 specification's table ("Expected Metrics") plus
the skill criteria, identical to ``configs/criteria/phase1.yaml`` (a test keeps them equal), so
an image without the ``configs/`` folder still gates by the same rules.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from noa_core.config import StrictModel, format_validation_error
from noa_core.errors import EvaluationError
from noa_core.yaml_text import parse_yaml

Op = Literal["<", "<=", ">", ">="]

#: Metrics of ``metrics.json`` a criterion may read (each an entry with ``value`` and ``n``).
GATEABLE_METRICS: tuple[str, ...] = (
    "vq_recon_error", "token_agreement", "token_entropy_ratio", "codebook_utilization",
    "cluster_ari", "rollout_mse", "rollout_nmse", "skill_vs_persistence", "skill_vs_theta_only",
    "skill_vs_new_weights", "heads_mse",
)
# Usable inside an MLflow tag key and accepted by ``noa_core.tracking.gate.parse_gate``.
_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,200}$")


class CriterionSpec(StrictModel):
    """``value(metric) op threshold`` must hold on at least ``min_samples`` samples."""

    metric: str
    op: Op
    threshold: float
    enabled: bool = True
    min_samples: int | None = Field(None, ge=1)  # None: the file's ``min_samples``
    description: str = ""

    @field_validator("metric")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in GATEABLE_METRICS:
            raise ValueError(f"unknown metric {v!r}; expected one of {', '.join(GATEABLE_METRICS)}")
        return v

    @field_validator("threshold")
    @classmethod
    def _finite(cls, v: float) -> float:
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("threshold must be a finite number")
        return v


class ChampionRule(StrictModel):
    """The challenger may not be worse than the champion on ``metric`` by more than
    ``tolerance`` (a fraction of the champion's value when ``relative``, else absolute)."""

    enabled: bool = True
    metric: str = "rollout_mse"
    higher_is_better: bool = False
    tolerance: float = Field(0.05, ge=0)
    relative: bool = True

    @field_validator("metric")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in GATEABLE_METRICS:
            raise ValueError(f"unknown metric {v!r}; expected one of {', '.join(GATEABLE_METRICS)}")
        return v


class BootstrapSpec(StrictModel):
    """Percentile bootstrap over test samples: ``resamples`` draws, a ``level`` interval."""

    resamples: int = Field(1000, ge=10)
    level: float = Field(0.95, gt=0, lt=1)


class ClusteringSpec(StrictModel):
    """Seeded k-means (k-means++ initialisation, Lloyd iterations, best of ``n_init``)."""

    k: int = Field(12, ge=2)
    n_init: int = Field(10, ge=1)
    max_iter: int = Field(300, ge=1)


class BaselineSpec(StrictModel):
    """Baselines that cost more than arithmetic: the same-θ-new-weights replay."""

    new_weights: bool = True


def _spec_table() -> dict[str, CriterionSpec]:
    c = CriterionSpec
    return {
        "vq_recon_error": c(metric="vq_recon_error", op="<", threshold=0.15,
                            description="spec: MSE(z_q NOA, z_q ground truth) < 0.15"),
        "token_entropy_ratio": c(metric="token_entropy_ratio", op=">", threshold=0.9,
                                 description="spec: token entropy > 0.9 × dataset"),
        "codebook_utilization": c(metric="codebook_utilization", op=">", threshold=0.40,
                                  description="spec: codebook utilization > 40%"),
        "cluster_ari": c(metric="cluster_ari", op=">", threshold=0.80,
                         description="spec: > 80% cluster agreement (adjusted Rand index)"),
        "rollout_mse": c(metric="rollout_mse", op="<", threshold=0.1,
                         description="spec: grid MSE < 0.1 over the horizon"),
        "skill_vs_persistence": c(metric="skill_vs_persistence", op="<", threshold=0.9,
                                  description="skill: rollout MSE < 0.9 × persistence's"),
        "skill_vs_theta_only": c(metric="skill_vs_theta_only", op="<", threshold=0.9,
                                 description="skill: rollout MSE < 0.9 × the θ-only baseline's"),
    }


class Criteria(StrictModel):
    """A criteria file. Defaults: the Phase 1 table plus skill (see the module docstring).

    A file's ``criteria`` mapping replaces the default table as a whole (the file lists every
    criterion it gates on); the other sections default key by key.
    """

    version: Literal[1] = 1
    name: str = "phase1"
    seed: int = Field(0, ge=0)  # seeds the global RNG once, the bootstrap and k-means
    min_samples: int = Field(32, ge=1)  # fewer test samples: "insufficient data", failed
    batch_size: int = Field(16, ge=1)  # operators per rollout / feature batch
    bootstrap: BootstrapSpec = BootstrapSpec()
    clustering: ClusteringSpec = ClusteringSpec()
    baselines: BaselineSpec = BaselineSpec()
    criteria: dict[str, CriterionSpec] = Field(default_factory=_spec_table)
    champion: ChampionRule = ChampionRule()

    @model_validator(mode="after")
    def _names(self) -> Criteria:
        for name in self.criteria:
            if not _NAME.match(name):
                raise ValueError(f"criterion name {name!r} must match {_NAME.pattern}")
        if not any(c.enabled for c in self.criteria.values()):
            raise ValueError("every criterion is disabled; a gate needs at least one")
        return self

    def digest(self) -> str:
        """sha256 of the canonical JSON of the resolved criteria (a lineage tag)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def criteria_from_dict(data: Any, origin: str = "<criteria>") -> Criteria:
    """Validate a mapping; errors name ``origin`` and the key path."""
    if not isinstance(data, dict):
        raise EvaluationError(f"{origin}: expected a mapping at the top level, found "
                              f"{type(data).__name__}")
    try:
        return Criteria.model_validate(data)
    except ValidationError as exc:
        raise EvaluationError(format_validation_error(origin, exc)) from None


def load_criteria(source: str | Path | Criteria | None) -> Criteria:
    """A ``Criteria`` from a path (inside the image), an ``s3://bucket/key`` URI (read with
    boto3's standard credential chain and ``AWS_ENDPOINT_URL``), an existing object, or None
    (the built-in defaults)."""
    if source is None:
        return Criteria()
    if isinstance(source, Criteria):
        return source
    text = str(source)
    raw = _read_s3_criteria(text) if "://" in text else _read_local_criteria(Path(text))
    return criteria_from_dict(parse_yaml(raw, text, EvaluationError), text)


def _read_local_criteria(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvaluationError(f"{path}: no such criteria file") from None
    except OSError as exc:
        raise EvaluationError(f"{path}: cannot read the criteria file: {exc.strerror}") from None


def _read_s3_criteria(uri: str) -> str:
    from noa_core.data.s3_client import is_s3_url
    from noa_core.data.storage import read_small
    from noa_core.errors import StorageError

    if not is_s3_url(uri):
        raise EvaluationError(f"criteria {uri!r}: expected a file path (inside the image) or "
                              "an s3://bucket/key URI")
    try:
        return read_small(uri).decode("utf-8")
    except StorageError as exc:
        raise EvaluationError(f"criteria file {exc}") from None
    except UnicodeDecodeError:
        raise EvaluationError(f"{uri}: the criteria file is not UTF-8 text") from None
