"""Evaluation against the Phase 1 success criteria: metrics, baselines, skill, the gate, reports.

``evaluate`` (the stage behind ``noa evaluate``) lives in ``noa_core.evaluation.evaluate``;
``gate`` and ``load_criteria`` are pure and import no model code.
"""

from noa_core.evaluation.criteria import Criteria, load_criteria
from noa_core.evaluation.gate import gate

__all__ = ["Criteria", "gate", "load_criteria"]
