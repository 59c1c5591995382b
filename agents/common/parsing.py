"""Reading names and numbers that come from users, configs and ``info`` dicts, one way for all."""

from __future__ import annotations

import math
from typing import Any


def normalize_agent_name(name: str) -> str:
    """The lookup key of an agent name: case, surrounding spaces and ``-`` vs ``_`` ignored
    (``"Random-Search"`` -> ``"random_search"``)."""
    return name.strip().lower().replace("-", "_")


def finite_float(value: Any) -> float | None:
    """``float(value)`` if that is a finite number, else None (missing, NaN, inf, not a
    number)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
