"""NOA Phase 1: CNO dynamics, datasets and the pipeline that trains, gates and exports the NOA.

Layers (each depends only on those above it): configuration → dynamics → data → features →
tokenizer → models → training → evaluation → export → tracking → interface. This package never
imports ``kfp``; the KFP components in ``components/`` are thin doors to its stage functions.
"""

__version__ = "0.1.0"
