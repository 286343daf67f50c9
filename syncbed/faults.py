"""The fault settings (latency, jitter, injected 503s and resets), their names and their bounds.

The server's settings and its admin API both check values with `validate`, so what is refused at
start-up is refused live too, in the same words; the monitor takes the field names from here and
decodes the admin API's answers with `FaultSettings`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import msgspec


class FaultSettings(msgspec.Struct):
    """The four settings as they now are: the answer of GET and PUT /api/v1/admin/faults."""

    latency_ms: int = 0
    jitter_ms: int = 0
    error_rate: float = 0.0
    reset_rate: float = 0.0


FAULT_FIELDS: Final = FaultSettings.__struct_fields__
MAX_DELAY_MS = 600_000  # ten minutes: anything longer is a typo, and would outlive every client timeout


class FaultError(ValueError):
    """A bad fault setting; `field` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


def _check_ms(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(field, f"expected a whole number of milliseconds, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise FaultError(field, f"expected a whole number of milliseconds, got {value!r}")
    if not 0 <= value <= MAX_DELAY_MS:
        raise FaultError(field, f"must be between 0 and {MAX_DELAY_MS} ms, got {value!r}")
    return int(value)


def _check_rate(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(field, f"expected a fraction between 0 and 1, got {value!r}")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise FaultError(field, f"must be between 0 and 1, got {value!r}")
    return float(value)


def validate(changes: Mapping[str, object]) -> dict[str, int | float]:
    """Check a (partial) set of fault settings; raise FaultError naming the first bad field."""
    clean: dict[str, int | float] = {}
    for key, value in changes.items():
        if key in ("latency_ms", "jitter_ms"):
            clean[key] = _check_ms(key, value)
        elif key in ("error_rate", "reset_rate"):
            clean[key] = _check_rate(key, value)
        else:
            raise FaultError(key, f"unknown fault setting; known: {', '.join(FAULT_FIELDS)}")
    return clean
