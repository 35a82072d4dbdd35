"""Configuration texts shared by the evaluation tests and their fixtures."""

FAST = """\
extends: tiny
tokenizer:
  training: {epochs: 3, patience: 3, batch_size: 16}
  families: {hidden_dim: 16, training: {epochs: 1, patience: 1, batch_size: 16}}
"""

# Criteria for 3 test operators: every criterion is computed (k = 2 clusters, 2 samples
# suffice), thresholds as in the spec.
FAST_CRITERIA = """\
version: 1
name: fast
seed: 0
min_samples: 2
batch_size: 2
bootstrap: {resamples: 100, level: 0.9}
clustering: {k: 2, n_init: 2, max_iter: 50}
"""
