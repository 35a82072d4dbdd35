"""Names shared by the tracking module, the pipeline and the tests: aliases, tag keys, paths.

One source of truth: every alias, tag key and artifact path the project writes to MLflow is
defined here and imported everywhere else.
"""

from __future__ import annotations

# Registry aliases (MLflow 3 aliases replace the deprecated stages).
ALIAS_CHALLENGER = "challenger"
ALIAS_CHAMPION = "champion"

TAG_PREFIX = "noa."

# Lineage: the ``lineage`` dict's keys (what stages pass) and the tag each becomes on the run and
# on the model version. ``*_sha256`` values are 64 lowercase hex digits (or LINEAGE_UNKNOWN).
LINEAGE_TAGS: dict[str, str] = {
    "pipeline_run_id": "noa.pipeline_run_id",  # the KFP run that produced the model
    "image_digest": "noa.image_digest",
    "git_commit": "noa.git_commit",
    "dataset_sha256": "noa.dataset_sha256",
    "tokenizer_sha256": "noa.tokenizer_sha256",
    "criteria_hash": "noa.criteria_hash",
}

# A lineage value that could not be determined (a stage run by hand has no pipeline run id or
# image digest; a checkpoint written before lineage was recorded has no dataset sha256). Allowed
# for every key, ``*_sha256`` included: an unknown value is said to be unknown, never faked.
LINEAGE_UNKNOWN = "unknown"
# Environment variable naming the commit the installed code was built from (an image sets it
# from its build's revision); otherwise ``git rev-parse HEAD`` of a source checkout, or unknown.
ENV_GIT_COMMIT = "NOA_GIT_COMMIT"

# Training: the experiment its runs go to; the file in the training OUT directory naming the run
# (so a retried pod that resumes continues the same run); the key of the run id in OUT/
# metrics.json and in the checkpoint's config.yaml (section ``tracking``); the checkpoint
# section holding the lineage training recorded.
TRAIN_EXPERIMENT = "noa-phase1"
TRAIN_RUN_FILE = "mlflow_run.json"
RUN_ID_KEY = "mlflow_run_id"
CHECKPOINT_TRACKING = "tracking"
CHECKPOINT_LINEAGE = "lineage"
# Metric names of a training run: ``train.<loss term>`` (and ``train.lr``, ``train.grad_norm``)
# at each log point; the validation figures under their metrics.json names (``val_traj_mse``,
# ``val_persistence_mse``, ``val_samples``) and ``val_by_policy.<policy>.<figure>``.
TRAIN_METRIC_PREFIX = "train."
VAL_POLICY_PREFIX = "val_by_policy."

# Set by ``register_model`` on the version.
TAG_ONNX_SHA256 = "noa.onnx_sha256"
TAG_PYTORCH_MODEL_URI = "noa.pytorch_model_uri"
# A model with a context encoder: the encoder graph's run-artifact path and sha256.
TAG_CONTEXT_ENCODER = "noa.context_encoder_artifact"
TAG_CONTEXT_ENCODER_SHA256 = "noa.context_encoder_sha256"
CONTEXT_ENCODER_ARTIFACT_DIR = "onnx_context_encoder"

# Set by ``promote`` / ``reject`` on the version, and ``TAG_DECISION`` on its run too.
TAG_DECISION = "noa.decision"
DECISION_PROMOTED = "promoted"
DECISION_REJECTED = "rejected"
TAG_DECISION_REASON = "noa.decision_reason"
TAG_DECISION_PIPELINE_RUN = "noa.decision_pipeline_run_id"
TAG_PREVIOUS_CHAMPION = "noa.previous_champion"  # version, or NO_VERSION
TAG_FAILED_CRITERIA = "noa.failed_criteria"  # comma-separated criterion names
TAG_GATE_PREFIX = "noa.gate."  # + criterion name: "value op threshold", e.g. "0.31 <= 0.25"
TAG_MODEL_VERSION = "noa.model_version"  # on the run: "NAME/VERSION" it was registered as
NO_VERSION = "none"
DEFAULT_PROMOTION_REASON = "passed its gate"

# Artifact paths inside a run and names of the logged models.
ARTIFACT_CONFIG = "config/resolved.yaml"
ONNX_MODEL_NAME = "onnx"
PYTORCH_MODEL_NAME = "pytorch"

# The exit handler's record of each pipeline execution (``noa_core.tracking.pipeline_runs``).
PIPELINE_EXPERIMENT = "noa-pipeline-runs"
TAG_PIPELINE_STATE = "noa.pipeline_state"  # KFP's final state: SUCCEEDED, FAILED, ...
TAG_PIPELINE_ERROR = "noa.pipeline_error"
TAG_PIPELINE_MODEL = "noa.pipeline_model_name"
