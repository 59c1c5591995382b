"""The benchmarks in one command: sample efficiency, cost of a step, filter speed.

    python -m benchmarks.run --quick     # < 10 minutes on 2 cores; indicative numbers
    python -m benchmarks.run             # the full benchmark

Writes Markdown tables and PNG plots under ``benchmarks/results/`` (quick mode: under
``benchmarks/results/quick/``, so a quick run never overwrites full results):
``sample_efficiency.{md,png,json}``, ``step_cost.{md,json}``, ``rouge_filter_run.md`` and
``summary.md`` (the headline tables), and prints the headline tables. Every size can be
overridden on the command line (see ``--help``); ``envs_tests/test_benchmarks.py`` runs this
same code path on a tiny budget.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import sample_efficiency as se
from benchmarks import step_cost as sc

RESULTS = Path(__file__).resolve().parent / "results"

FULL_SE = se.SEParams()  # topic, spam, animal x 3 seeds, budget 30, 90-configuration grid
QUICK_SE = se.SEParams(
    tasks=["topic", "spam"],
    seeds=[0],
    budget=20,
    num_iterations=5,
    batch_size=32,
    grid_temperatures=[0.7, 1.0],
    grid_top_ps=[0.5, 1.0],
    grid_templates=["self_instruct", "self_instruct_classification", "evol_breadth"],
    quick=True,
)
FULL_COST = sc.StepCostParams()
QUICK_COST = sc.StepCostParams(
    steps=8,
    overhead_repeats=3,
    vec_steps=8,
    rss_steps=40,
    rss_every=10,
    vec_dummy_threads=(1,),
    quick=True,
)
# rouge_filter_bench: the reference (rouge_score) is quadratic, so it runs on a prefix.
FULL_ROUGE = [
    "--n",
    "5000",
    "20000",
    "--repeats",
    "3",
    "--reference-repeats",
    "1",
    "--reference-limit",
    "2000",
]
QUICK_ROUGE = ["--n", "1000", "--repeats", "1"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: ``--quick``, what to skip, and every size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small budget, 1 seed, coarse oracle grid (< 10 min on 2 cores)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default benchmarks/results[/quick])"
    )
    parser.add_argument(
        "--skip", nargs="+", default=[], choices=["sample_efficiency", "step_cost", "rouge"]
    )
    parser.add_argument(
        "--rouge-args",
        nargs=argparse.REMAINDER,
        help="arguments for benchmarks.rouge_filter_bench (must come last)",
    )
    se.add_arguments(parser)
    sc.add_arguments(parser)
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the selected benchmarks; returns each part's result and the summary Markdown."""
    args = parse_args(argv)
    out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv)
    command = command.strip()
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {msg}", flush=True)

    results: dict[str, Any] = {}
    summary = [
        "# DataGen-v0 benchmarks" + (" (QUICK MODE)" if args.quick else ""),
        "",
        f"`{command}`",
        "",
    ]
    if args.quick:
        summary += [
            "Quick mode: fewer tasks and seeds, a smaller budget, a coarse oracle grid, "
            "small timing samples. Indicative only; the full run is "
            "`python -m benchmarks.run`.",
            "",
        ]

    if "sample_efficiency" not in args.skip:
        p = se.params_from_args(args, QUICK_SE if args.quick else FULL_SE)
        log(
            f"sample efficiency: tasks {p.tasks}, seeds {p.seeds}, budget {p.budget}, "
            f"{len(p.grid())}-configuration oracle grid, {p.workers} workers"
        )
        r = se.run_sample_efficiency(p, out, command, log=log)
        results["sample_efficiency"] = r
        summary += [
            "## Sample efficiency",
            "",
            r["headline"],
            "",
            "Details and per-task tables: `sample_efficiency.md`.",
            "",
        ]

    if "step_cost" not in args.skip:
        cp = sc.params_from_args(args, QUICK_COST if args.quick else FULL_COST)
        log(f"step cost: {cp}")
        r = sc.run_step_cost(cp, out, command, log=log)
        results["step_cost"] = r
        summary += ["## Cost of a step", "", r["table"], "", "Details: `step_cost.md`.", ""]

    if "rouge" not in args.skip:
        from benchmarks import rouge_filter_bench

        rargs = args.rouge_args or (QUICK_ROUGE if args.quick else FULL_ROUGE)
        path = out / "rouge_filter_run.md"
        log(f"ROUGE-L filter: {' '.join(rargs)}")
        rc = rouge_filter_bench.main([*rargs, "--out", str(path)])
        text = path.read_text()
        results["rouge"] = {"rc": rc, "markdown": text}
        table = [ln for ln in text.splitlines() if ln.startswith("|")]
        summary += [
            "## ROUGE-L filter speed",
            "",
            *table,
            "",
            "Details: `rouge_filter_run.md`."
            + ("" if rc == 0 else " **Decisions differed from rouge_score!**"),
            "",
        ]

    summary.append(
        f"Total wall time {(time.perf_counter() - start) / 60:.1f} min on {os.cpu_count()} cores."
    )
    md = "\n".join(summary) + "\n"
    (out / "summary.md").write_text(md)
    results["summary"] = md
    results["out"] = out
    return results


def main(argv: list[str] | None = None) -> None:
    """Entry point: run and print the headline tables."""
    r = run(argv)
    print("\n" + "=" * 80 + "\n" + r["summary"])


if __name__ == "__main__":
    main()
