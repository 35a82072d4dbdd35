"""YAML text → Python data, a syntax error becoming one line that names the source and place.

Every YAML the package reads (configs, criteria, checkpoint and tokenizer metadata) is parsed
here, so a broken file reads the same whichever command met it:
``FILE: line L, column C: invalid YAML: PROBLEM``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from noa_core.errors import NOAError


def parse_yaml(text: str, source: str | Path, error: type[NOAError]) -> Any:
    """``yaml.safe_load(text)``; on a syntax error raise ``error`` naming ``source`` (a path or
    URI), the line and column (1-based) and the parser's problem, without the parser's
    multi-line excerpt."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{source}: {where}invalid YAML: {problem}") from None
