"""Credit amounts. Stored as integer millicredits; shown as numbers of credits."""

from __future__ import annotations

MILLI = 1000


def to_millicredits(credits: float) -> int:
    return round(credits * MILLI)


def to_credits(millicredits: int) -> float:
    value = millicredits / MILLI
    return int(value) if value == int(value) else value
