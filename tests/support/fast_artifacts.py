"""Configuration texts shared by the tests that run the real stages on `tiny` artifacts
(evaluation, tracking, components): short fits, every mechanism, in seconds.

``tests/support`` is on pytest's ``pythonpath`` (pyproject.toml), so any test imports it.
"""

# `tiny` with a short tokenizer fit.
FAST_TOKENIZER = """\
extends: tiny
tokenizer:
  training: {epochs: 3, patience: 3, batch_size: 16}
  families: {hidden_dim: 16, training: {epochs: 1, patience: 1, batch_size: 16}}
"""

# ... and a 4-step training (validation and checkpoints at 2 and 4).
FAST_TRAINING = FAST_TOKENIZER + """\
training:
  batch_size: 4
  max_steps: 4
  warmup_steps: 1
  val_every: 2
  checkpoint_every: 2
  log_every: 1
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
