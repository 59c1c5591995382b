"""Small pieces several benchmarks share: the command line a report quotes, and running jobs in
worker processes."""

from __future__ import annotations

import gzip
import json
import math
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def command_line(module: str, argv: Sequence[str] | None, prefix: str = "") -> str:
    """``python -m <module> <args>`` as it was run (``argv``, or this process's arguments)."""
    args = sys.argv[1:] if argv is None else list(argv)
    return f"{prefix}python -m {module} {' '.join(args)}".strip()


def map_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int) -> list[Any]:
    """``fn`` over ``jobs`` in order: in this process for ``workers <= 1``, else in a pool."""
    if workers <= 1:
        return [fn(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, jobs))


def t_ci(values: Sequence[float]) -> float:
    """Half-width of the 95% t confidence interval of the mean (NaN for fewer than 2 values)."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return math.nan
    return float(stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n))


def write_result_json(path: Path, data: Any) -> Path:
    """``data`` as compact JSON, gzip-compressed, at ``path`` (named ``*.json.gz``), so that the
    committed results stay small (a held-out run's JSON is 1.6 MB, gzipped 70 kB). Written
    to a temporary file and renamed: an interrupted write leaves the old file whole. A plain
    ``*.json`` of the same name is removed (it would be stale)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"), default=str)
    os.replace(tmp, path)
    path.with_name(path.name.removesuffix(".gz")).unlink(missing_ok=True)
    return path


def read_result_json(path: Path) -> Any:
    """A result written by :func:`write_result_json`, or a plain JSON file (``path`` itself,
    or for ``x.json.gz`` an older ``x.json`` beside it)."""
    path = Path(path)
    if not path.exists() and path.suffix == ".gz":
        path = path.with_suffix("")
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    return json.loads(path.read_text(encoding="utf-8"))
