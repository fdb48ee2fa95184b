"""Strict field parsers shared by the file readers; each failure names the field."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime


class FieldError(ValueError):
    """A single input field that cannot be used, with the field's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field '{field}': {message}")
        self.field = field


def parse_time(value: object, field: str) -> datetime:
    """An ISO date (midnight UTC) or datetime; a naive datetime is taken as UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            if len(text) == 10:
                d = date.fromisoformat(text)
                return datetime(d.year, d.month, d.day, tzinfo=UTC)
            parsed = datetime.fromisoformat(text.replace(" ", "T", 1))
        except ValueError:
            raise FieldError(field, f"not an ISO date or datetime: {value!r}") from None
    else:
        raise FieldError(field, f"missing or not a date: {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # the data files are UTC throughout
    return parsed.astimezone(UTC)


def parse_number(
    value: object,
    field: str,
    *,
    required: bool = True,
    minimum: float | None = None,
    strict_min: bool = False,
) -> float | None:
    """A finite float; empty means None unless ``required``; bounds checked with the name."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FieldError(field, "missing")
        return None
    if isinstance(value, bool):
        raise FieldError(field, f"not a number: {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FieldError(field, f"not a number: {value!r}") from None
    if not math.isfinite(number):
        raise FieldError(field, f"not a finite number: {value!r}")
    if minimum is not None and (number <= minimum if strict_min else number < minimum):
        op = ">" if strict_min else ">="
        raise FieldError(field, f"must be {op} {minimum:g}, got {value!r}")
    return number
