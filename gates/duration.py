"""Durations as team leads write them in YAML: ``30m``, ``48h``, ``14d``, ``2w``.

ISO 8601 (``P14D``) is what pydantic accepts natively, but nobody edits a policy file in it;
the short form reads at a glance and round-trips through the JSON Schema as a pattern.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
PATTERN = r"^\s*\d+\s*[smhdw]\s*$"


def parse_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    match = _PATTERN.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ValueError(
            f"invalid duration {value!r}: write a number and a unit, e.g. 30m, 48h, 14d or 2w"
        )
    amount, unit = match.groups()
    return timedelta(**{_UNITS[unit]: int(amount)})


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": PATTERN, "examples": ["48h", "14d"]}),
]
