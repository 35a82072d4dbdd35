"""Behavioural features of trajectory windows: INITIAL, TEMPORAL and SUMMARY, in torch.

Batched, vectorised, differentiable with respect to the trajectory and NaN-free; one schema
(``FeatureSchema``) names every column and travels with the data. See ``extract`` for the
extractor, ``schema`` for the names, ``io`` for the HDF5 groups and ``noa features extract``.
"""

from noa_core.features.extract import (
    FeatureExtractor,
    Features,
    feature_window,
    tokenizer_input,
)
from noa_core.features.schema import FEATURE_SCHEMA_VERSION, FeatureSchema, feature_schema

__all__ = [
    "FEATURE_SCHEMA_VERSION",
    "FeatureExtractor",
    "FeatureSchema",
    "Features",
    "feature_schema",
    "feature_window",
    "tokenizer_input",
]
