"""Cron expressions as each scheduler wants them, checked before anything is sent.

KFP recurring runs use 6 fields with seconds first (``S M H DoM Mon DoW``, robfig/cron); the
Argo ``CronWorkflow`` alternative uses the standard 5 fields (``M H DoM Mon DoW``). A wrong count
is the classic mistake (a 5-field expression given to KFP fires every minute's *second* field):
both forms are refused with a message naming the field and what it accepts.
"""

from __future__ import annotations

import re

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# name → (low, high, names of the values from `low` on, whether "?" is allowed)
_FIELDS = {
    "second": (0, 59, None, False),
    "minute": (0, 59, None, False),
    "hour": (0, 23, None, False),
    "day of month": (1, 31, None, True),
    "month": (1, 12, _MONTHS, False),
    "day of week": (0, 6, _DAYS, True),
}
KFP_FIELDS = tuple(_FIELDS)
ARGO_FIELDS = KFP_FIELDS[1:]
_ATOM = re.compile(r"^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(\d+))?$")


class CronError(ValueError):
    """A cron expression the scheduler would reject or misread."""


def validate_kfp_cron(expr: str) -> str:
    """Check a KFP recurring-run cron (6 fields, seconds first); returns it normalised."""
    return _validate(expr, KFP_FIELDS, "KFP recurring runs take 6 fields with seconds first: "
                     "'S M H DoM Mon DoW', e.g. '0 0 3 * * *' for 03:00 every day")


def validate_argo_cron(expr: str) -> str:
    """Check an Argo CronWorkflow schedule (standard 5 fields); returns it normalised."""
    return _validate(expr, ARGO_FIELDS, "Argo CronWorkflow schedules take 5 fields: "
                     "'M H DoM Mon DoW', e.g. '0 3 * * *' for 03:00 every day")


def _validate(expr: str, fields: tuple[str, ...], form: str) -> str:
    parts = expr.split()
    if len(parts) != len(fields):
        raise CronError(f"cron {expr!r} has {len(parts)} fields; {form}")
    for name, part in zip(fields, parts, strict=True):
        _check_field(expr, name, part)
    return " ".join(parts)


def _check_field(expr: str, name: str, part: str) -> None:
    low, high, names, question = _FIELDS[name]
    if part == "?":
        if not question:
            raise CronError(f"cron {expr!r}: '?' is allowed only in day of month or day of week")
        return
    for item in part.split(","):
        m = _ATOM.match(item)
        if not m:
            raise CronError(f"cron {expr!r}: {name} field {part!r} is not a value, range, list "
                            f"or step ({low}-{high})")
        base, step = m.group(1), m.group(2)
        if step is not None and int(step) < 1:
            raise CronError(f"cron {expr!r}: {name} step must be at least 1, got {step}")
        if base != "*":
            for value in base.split("-"):
                _check_value(expr, name, value, low, high, names)


def _check_value(expr: str, name: str, value: str, low: int, high: int,
                 names: list[str] | None) -> None:
    if value.isdigit():
        if not low <= int(value) <= high:
            raise CronError(f"cron {expr!r}: {name} {value} is outside {low}-{high}")
        return
    if names is None or value.upper() not in names:
        allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
        raise CronError(f"cron {expr!r}: {name} {value!r} is not a number in {allowed}")
