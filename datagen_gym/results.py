"""Results: generated records with their metadata, JSONL persistence and summary statistics."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from datagen_gym.atomic_io import atomic_write_jsonl

RECORD_FIELDS = ("instruction", "input", "output")


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows to ``path`` so that a crash mid-write leaves the old file intact (the file
    honours the umask)."""
    atomic_write_jsonl(path, rows)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file; a malformed line is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JSONL file not found: {path}")
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            lines = list(fh)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); expected JSON "
                         "Lines") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object per line")
        rows.append(row)
    return rows


class Results:
    """Generated records: ``instruction``, ``input``, ``output`` plus metadata.

    Metadata per record: ``method``, ``template``, ``temperature``, ``top_p``, ``step`` and
    whatever the generator adds (``is_classification``). ``num_candidates`` counts the
    instructions proposed before filtering, so :attr:`kept_fraction` says how much survived.
    """

    def __init__(self, records: Iterable[dict[str, Any]] = (), num_candidates: int = 0,
                 num_kept: int = 0) -> None:
        self.data: list[dict[str, Any]] = list(records)
        self.num_candidates = num_candidates
        self.num_kept = num_kept

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.data)

    def __getitem__(self, i):
        return self.data[i]

    def extend(self, other: Results) -> None:
        self.data.extend(other.data)
        self.num_candidates += other.num_candidates
        self.num_kept += other.num_kept

    @property
    def kept_fraction(self) -> float:
        """Share of proposed instructions that passed every filter (1.0 if none proposed)."""
        return self.num_kept / self.num_candidates if self.num_candidates else 0.0

    @property
    def unique_ratio(self) -> float:
        """Share of distinct (instruction, input, output) triples among the records."""
        if not self.data:
            return 0.0
        keys = {tuple(r.get(k, "") for k in RECORD_FIELDS) for r in self.data}
        return len(keys) / len(self.data)

    @property
    def mean_length(self) -> float:
        """Mean number of words over instruction + input + output."""
        if not self.data:
            return 0.0
        return sum(len(" ".join(str(r.get(k, "")) for k in RECORD_FIELDS).split())
                   for r in self.data) / len(self.data)

    def summary(self) -> dict[str, float]:
        return {
            "count": len(self.data),
            "num_candidates": self.num_candidates,
            "num_kept": self.num_kept,
            "kept_fraction": self.kept_fraction,
            "unique_ratio": self.unique_ratio,
            "mean_length": self.mean_length,
        }

    def save(self, path: str | Path) -> None:
        """Write the records as JSONL (atomically)."""
        write_jsonl_atomic(path, self.data)

    @classmethod
    def load(cls, path: str | Path) -> Results:
        rows = read_jsonl(path)
        for i, row in enumerate(rows, start=1):
            missing = [k for k in RECORD_FIELDS if k not in row]
            if missing:
                raise ValueError(f"{path}:{i}: record lacks {missing}; "
                                 f"each record needs {list(RECORD_FIELDS)}")
        return cls(rows, num_candidates=len(rows), num_kept=len(rows))
