"""Small pieces several benchmarks share: the command line a report quotes, and running jobs in
worker processes."""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
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
