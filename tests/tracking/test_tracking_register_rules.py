"""``noa register``'s rules without a store: which run it registers into, and how each lineage
value is chosen (training's record, the options, the caller's word; unknown otherwise)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from noa_core.errors import EvaluationError, TrackingError
from noa_core.evaluation.criteria import Criteria
from noa_core.tracking import LINEAGE_TAGS, lineage_tags
from noa_core.tracking.constants import LINEAGE_UNKNOWN
from noa_core.tracking.register_stage import criteria_hash, resolve_lineage, resolve_run_id

URI = "sqlite:///never-opened.db"  # every case here decides before any store is reached
H = {k: hashlib.sha256(k.encode()).hexdigest() for k in ("data", "tok", "weights", "crit")}


def _checkpoint(tmp_path: Path, run_id: str | None = None) -> tuple[Path, dict]:
    ckpt = tmp_path / "train" / "checkpoint"
    ckpt.mkdir(parents=True)
    meta = {"tokenizer": {"weights_sha256": H["weights"]}}
    if run_id:
        meta["tracking"] = {"mlflow_run_id": run_id}
    return ckpt, meta


def test_run_id_given_then_checkpoint_then_train_metrics(tmp_path: Path) -> None:
    ckpt, meta = _checkpoint(tmp_path, "from-checkpoint")
    (ckpt.parent / "metrics.json").write_text(json.dumps({"mlflow_run_id": "from-metrics"}))
    assert resolve_run_id(ckpt, meta, "given") == "given"
    assert resolve_run_id(ckpt, meta, None) == "from-checkpoint"
    del meta["tracking"]
    assert resolve_run_id(ckpt, meta, None) == "from-metrics"
    (ckpt.parent / "metrics.json").write_text(json.dumps({"steps": 4}))
    with pytest.raises(TrackingError, match=r"no MLflow run recorded.*or pass --run-id"):
        resolve_run_id(ckpt, meta, None)


def test_lineage_unknown_unless_recorded_or_given(tmp_path: Path) -> None:
    _, meta = _checkpoint(tmp_path)
    bare = resolve_lineage(meta, URI, "r", pipeline_run_id=None, image_digest=None,
                           criteria=H["crit"], lineage=None)
    assert bare == {**{k: LINEAGE_UNKNOWN for k in LINEAGE_TAGS},
                    "tokenizer_sha256": H["weights"], "criteria_hash": H["crit"]}
    assert lineage_tags(bare)  # unknown is a valid value, sha256 keys included

    meta["lineage"] = {"dataset_sha256": H["data"], "tokenizer_sha256": H["tok"],
                       "git_commit": LINEAGE_UNKNOWN, "pipeline_run_id": "kfp-train"}
    full = resolve_lineage(meta, URI, "r", pipeline_run_id="kfp-register",
                           image_digest="sha256:" + "0" * 64, criteria=H["crit"],
                           lineage={"git_commit": "c" * 40, "dataset_sha256": ""})
    assert full == {"pipeline_run_id": "kfp-register", "image_digest": "sha256:" + "0" * 64,
                    "git_commit": "c" * 40, "dataset_sha256": H["data"],
                    "tokenizer_sha256": H["tok"], "criteria_hash": H["crit"]}


def test_criteria_hash_from_a_file_or_a_digest(tmp_path: Path) -> None:
    path = tmp_path / "criteria.yaml"
    path.write_text("version: 1\nname: strict\nmin_samples: 8\n")
    digest = criteria_hash(path, URI, "r")
    assert digest == Criteria(name="strict", min_samples=8).digest() != Criteria().digest()
    assert criteria_hash(digest, URI, "r") == digest
    with pytest.raises(EvaluationError, match="no such criteria file"):
        criteria_hash(tmp_path / "missing.yaml", URI, "r")


def test_a_made_up_digest_is_still_refused() -> None:
    values = {k: LINEAGE_UNKNOWN for k in LINEAGE_TAGS}
    with pytest.raises(TrackingError, match=r"dataset_sha256.*64 lowercase hex"):
        lineage_tags({**values, "dataset_sha256": "0" * 63})
