"""noa_core.yaml_text: one parse path and one error line for every YAML the package reads."""

from __future__ import annotations

import pytest

from noa_core.errors import ConfigError, TrainingError
from noa_core.yaml_text import parse_yaml


def test_valid_text_parses_to_data() -> None:
    assert parse_yaml("a: [1, 2]\nb: {c: x}\n", "f.yaml", ConfigError) == {
        "a": [1, 2], "b": {"c": "x"}}
    assert parse_yaml("", "f.yaml", ConfigError) is None


@pytest.mark.parametrize(("text", "line", "column"), [
    ("a: [1, 2\n", 2, 1),          # flow sequence never closed
    ("a: 1\n b: 2\n", 2, 3),       # mapping value where none may start
    ("a: 'open\n", 2, 1),          # quoted scalar never closed
])
def test_a_syntax_error_is_one_line_with_source_and_place(text: str, line: int,
                                                          column: int) -> None:
    with pytest.raises(TrainingError) as info:
        parse_yaml(text, "run/checkpoint/config.yaml", TrainingError)
    msg = str(info.value)
    assert msg.startswith(f"run/checkpoint/config.yaml: line {line}, column {column}: "
                          "invalid YAML: ")
    assert "\n" not in msg and "^" not in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__
