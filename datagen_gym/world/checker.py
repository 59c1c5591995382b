"""Scores generated records against the world's ground truth: a diagnostic, never the reward."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from datagen_gym.world.tasks import expected_output, identify


def is_correct(record: dict[str, Any]) -> bool:
    """True if the record's instruction is a known task and its output is the exact answer."""
    truth = expected_output(str(record.get("instruction", "")), str(record.get("input", "")))
    return truth is not None and str(record.get("output", "")).strip() == truth


def correctness(records: Iterable[dict[str, Any]]) -> float:
    """Share of correct records (nan for an empty batch)."""
    flags = [is_correct(r) for r in records]
    return sum(flags) / len(flags) if flags else math.nan


def family_counts(records: Iterable[dict[str, Any]]) -> Counter:
    """How many records each task family got (``"unknown"`` for unrecognised instructions)."""
    counts: Counter = Counter()
    for r in records:
        family, _ = identify(str(r.get("instruction", "")))
        counts[family.name if family else "unknown"] += 1
    return counts
