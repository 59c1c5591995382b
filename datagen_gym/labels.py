"""The label space of a classification task: the classes its records must use.

Generated labels are normalised (case, whitespace, quotes, surrounding punctuation and
markdown, ``Label:``-style prefixes, a trailing explanation) and mapped onto the space; a label
that maps to none is off-label. The generators use it; :mod:`datagen_gym.task` builds it from a
user's labelled records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

MAX_LABELS = 32  # more distinct outputs than this is a generation task, not classification

# "Label:", "Class label:", "Answer -", "**Sentiment**:" ... before the label itself.
_PREFIX = re.compile(
    r"^\s*(?:[*_`#>]+\s*)?[A-Za-z][\w ]{0,24}?\s*(?:[*_`]+\s*)?[:=\-]\s+|^\s*[:=]\s*"
)
_EDGE = " \t\r\n\"'`*_.,;:!?()[]{}<>«»“”‘’"
_SEPARATOR = re.compile(r"[\s.,;:!?()\[\]\-–—/]")


class TaskError(ValueError):
    """The task's seeds or labels cannot be built (one line naming what is missing)."""


def normalise_label(text: str) -> str:
    """``'  **Positive.** '`` -> ``'positive'``: case-folded, quotes, markdown and surrounding
    punctuation removed, runs of whitespace collapsed."""
    return " ".join(str(text).strip(_EDGE).split()).casefold().strip(_EDGE)


class LabelSpace:
    """The classes a classification task's records must use (see the module docstring)."""

    def __init__(self, labels: Iterable[str]) -> None:
        self.labels: tuple[str, ...] = tuple(dict.fromkeys(str(x).strip() for x in labels))
        if not self.labels:
            raise TaskError("a label space needs at least one label")
        self._by_key: dict[str, str] = {}
        for label in self.labels:
            self._by_key.setdefault(normalise_label(label), label)

    @classmethod
    def of_records(cls, records: Sequence[dict[str, Any]]) -> LabelSpace | None:
        """The label space of labelled records, or ``None`` if their outputs are not classes."""
        outputs = [str(r.get("output", "")).strip() for r in records]
        distinct = set(outputs)
        if not outputs or "" in distinct or len(distinct) > MAX_LABELS:
            return None
        if len(outputs) < 2 * len(distinct):  # mostly unique outputs: answers, not classes
            return None
        return cls(sorted(distinct))

    def map(self, text: str) -> str | None:
        """The label ``text`` means, or ``None`` (off-label, or naming two labels)."""
        first = str(text).strip().split("\n", 1)[0]
        candidates = (_PREFIX.sub("", first, count=1), first)
        for candidate in candidates:
            key = normalise_label(candidate)
            if key in self._by_key:
                return self._by_key[key]
        # "Positive - the reviewer loved it", "negative (sarcasm)": a label, then a separator.
        for candidate in candidates:
            label = self._leading_label(normalise_label(candidate))
            if label is not None:
                return label
        return None

    def _leading_label(self, key: str) -> str | None:
        hits = [
            k
            for k in self._by_key
            if key.startswith(k) and (len(key) == len(k) or _SEPARATOR.match(key[len(k)]))
        ]
        if not hits:
            return None
        longest = max(hits, key=len)
        rest = key[len(longest) :]
        if any(re.search(rf"\b{re.escape(k)}\b", rest) for k in self._by_key):
            return None  # "positive, not negative": no single label
        return self._by_key[longest]

    def __repr__(self) -> str:
        return f"LabelSpace({list(self.labels)!r})"
