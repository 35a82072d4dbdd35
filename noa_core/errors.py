"""Exceptions that the CLI turns into one clear line on stderr.

Every message names the file (or object) and the key at fault and what was expected, so a user
can fix the input without reading a traceback.
"""


class NOAError(Exception):
    """Base class for user-facing errors: bad input, not a bug in this package."""


class ConfigError(NOAError):
    """A YAML configuration file is unreadable or does not match its schema."""


class DatasetError(NOAError):
    """An HDF5 dataset or replay file is missing, truncated or does not match the layout."""


class ReplayError(NOAError):
    """A rollout diverged, a replay worker failed or hung, or replay inputs disagree."""


class TokenizerError(NOAError):
    """A tokenizer checkpoint is incomplete, unsafe, or does not match the features given."""


class StorageError(NOAError):
    """An object store or local transfer failed: missing bucket or key, access denied, an
    unreachable endpoint, a file that does not match its manifest, or a manifest path that would
    land outside the destination."""


class TrackingError(NOAError):
    """The tracking server or model registry refused an operation, no tracking URI was given, or
    a tracking input (lineage, gate, version) is invalid."""


class TrainingError(NOAError):
    """Training cannot go on: a stream of non-finite steps, or an unusable checkpoint."""


class EvaluationError(NOAError):
    """Evaluation or export cannot run: a criteria file that does not match its schema, a
    checkpoint, tokenizer and replay file that do not belong together, or an ONNX file that
    lacks what ``noa predict`` needs."""
