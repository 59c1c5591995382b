"""Sample efficiency: does learned generation beat static generation, and how many target
evaluations does it need?

    python -m benchmarks.sample_efficiency [--tasks ...] [--seeds 0 1 2] [--budget 30] ...

(normally called by ``python -m benchmarks.run``). Every method of :mod:`benchmarks.methods`
gets the same budget of target evaluations on the same env, tasks and seeds. The oracle is the
best fixed configuration of an exhaustive grid over temperature x top_p x template, chosen on
separate grid seeds (its search cost is not charged) and then scored like a static method.
Writes ``sample_efficiency.md``, ``sample_efficiency.png`` and ``sample_efficiency.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.methods import (
    AGENT_HYPERPARAMS,
    ALL_METHODS,
    ALPACA,
    SELF_INSTRUCT,
    RunSpec,
    Settings,
    default_settings,
    run_grid_cell,
    run_method,
    tpe_startup_trials,
)
from benchmarks.summary_file import replace_section

RESULTS = Path(__file__).resolve().parent / "results"
TUNING_TASK = "sentiment"  # the agents' hyper-parameters (AGENT_HYPERPARAMS) were chosen on it
GRID_SEED_OFFSET = 10_000  # oracle grid seeds never coincide with scoring seeds
# A task whose oracle gains less than this over the baseline has no gain to share: a ratio to it
# is a ratio of noise (animal's oracle gains ~0.01, which turned +0.02 into "177%").
MIN_ORACLE_GAIN = 0.02
LABELS = {
    "static_self_instruct": "static Self-Instruct (T=0.7, top_p=0.5)",
    "static_alpaca": "static Alpaca (T=1.0, top_p=1.0)",
    "static_default": "static default config",
    "oracle": "oracle (best grid config)",
    "tpe": "Optuna TPE",
    "random_search": "random search",
    "reinforce": "REINFORCE",
    "ppo": "PPO",
}


@dataclass
class SEParams:
    """Everything one sample-efficiency run depends on."""

    # The headline tasks; add the tuning task "sentiment" with --tasks to see it too.
    tasks: list[str] = field(default_factory=lambda: ["topic", "spam", "animal"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budget: int = 30
    num_iterations: int = 5
    batch_size: int = 32
    grid_temperatures: list[float] = field(default_factory=lambda: [0.7, 1.0, 1.3])
    grid_top_ps: list[float] = field(default_factory=lambda: [0.5, 0.9, 1.0])
    grid_templates: list[str] | None = None  # None: every template
    grid_seeds: list[int] = field(default_factory=lambda: [GRID_SEED_OFFSET])
    methods: list[str] = field(default_factory=lambda: list(ALL_METHODS))
    workers: int = 2
    quick: bool = False

    def templates(self) -> list[str]:
        from datagen_gym.generators.prompts import TEMPLATE_NAMES

        return list(self.grid_templates or TEMPLATE_NAMES)

    def grid(self) -> list[Settings]:
        return list(itertools.product(self.grid_temperatures, self.grid_top_ps, self.templates()))

    def tpe_space(self) -> dict[str, Any]:
        return {
            "temperature": (min(self.grid_temperatures), max(self.grid_temperatures)),
            "top_p": (min(self.grid_top_ps), max(self.grid_top_ps)),
            "templates": self.templates(),
        }


# ----------------------------------------------------------------------------- execution
class _Serial:
    """A stand-in for a process pool that runs jobs in this process (``workers <= 1``)."""

    def submit(self, fn: Callable, *args: Any) -> Future:
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def _pool(workers: int):
    if workers <= 1:
        return _Serial()
    # forkserver: workers start from a clean interpreter (no inherited torch thread pools).
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))


def execute(p: SEParams, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the grid and every method; returns the raw runs, grid cells and oracle choices."""
    grid = p.grid()
    grid_jobs = [
        (t, s, gs, p.batch_size, p.num_iterations)
        for t in p.tasks
        for s in grid
        for gs in p.grid_seeds
    ]
    scored = [m for m in p.methods if m != "oracle"]
    specs = [
        RunSpec(
            m,
            t,
            s,
            p.budget,
            p.num_iterations,
            p.batch_size,
            tpe_space=p.tpe_space() if m == "tpe" else None,
        )
        for t in p.tasks
        for s in p.seeds
        for m in scored
    ]
    need_oracle = "oracle" in p.methods
    total = (
        (len(grid_jobs) if need_oracle else 0)
        + len(specs)
        + (len(p.tasks) * len(p.seeds) if need_oracle else 0)
    )
    start, load_start = time.perf_counter(), os.getloadavg()
    cells: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    oracle: dict[str, dict[str, Any]] = {}
    left = {t: len(grid) * len(p.grid_seeds) for t in p.tasks}
    with _pool(p.workers) as pool:
        pending: dict[Future, str] = {}
        if need_oracle:  # the grid first, so each task's oracle runs can start early
            for job in grid_jobs:
                pending[pool.submit(run_grid_cell, job)] = "grid"
        for spec in specs:
            pending[pool.submit(run_method, spec)] = "run"
        done_n = 0
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                kind = pending.pop(fut)
                res = fut.result()
                done_n += 1
                if kind == "grid":
                    cells.append(res)
                    left[res["task"]] -= 1
                    if left[res["task"]] == 0:
                        oracle[res["task"]] = choose_oracle(cells, res["task"])
                        for s in p.seeds:
                            spec = RunSpec(
                                "oracle",
                                res["task"],
                                s,
                                p.budget,
                                p.num_iterations,
                                p.batch_size,
                                settings=oracle[res["task"]]["settings"],
                            )
                            pending[pool.submit(run_method, spec)] = "run"
                else:
                    runs.append(res)
                if done_n % 10 == 0 or not pending:
                    log(
                        f"  sample efficiency: {done_n}/{total} jobs, "
                        f"{time.perf_counter() - start:.0f} s"
                    )
    return {
        "params": asdict(p),
        "runs": runs,
        "grid": cells,
        "oracle": oracle,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": sum(x.get("cpu_seconds", 0.0) for x in runs + cells),
        "load": [load_start[0], os.getloadavg()[0]],
    }


def choose_oracle(cells: Sequence[dict[str, Any]], task: str) -> dict[str, Any]:
    """The grid configuration with the best mean final metric over the grid seeds."""
    by: dict[tuple, list[float]] = {}
    for c in cells:
        if c["task"] == task:
            by.setdefault(tuple(c["settings"]), []).append(c["metric"])
    ranked = sorted(by.items(), key=lambda kv: (-statistics.mean(kv[1]), kv[0]))
    best, vals = ranked[0]
    return {
        "settings": tuple(best),
        "grid_metric": statistics.mean(vals),
        "grid_worst": statistics.mean(ranked[-1][1]),
        "cells": len(ranked),
    }


# ----------------------------------------------------------------------------- analysis
def first_reach(curve: Sequence[float], threshold: float) -> int | None:
    """Evaluations used when ``curve`` first reaches ``threshold`` (None: never)."""
    return next((k for k, v in enumerate(curve) if v >= threshold - 1e-12), None)


def _median_reach(values: Sequence[int | None]) -> str:
    """Median evaluations to reach a level over runs; runs that never reach count as infinite."""
    if not values:
        return "–"
    xs = sorted(math.inf if v is None else v for v in values)
    med = statistics.median(xs)
    reached = sum(v is not None for v in values)
    label = "not reached" if math.isinf(med) else f"{med:g}"
    return f"{label} ({reached}/{len(values)})"


def analyse(raw: dict[str, Any]) -> dict[str, Any]:
    """Per-run scores and per-method summaries (per task, and over the non-tuning tasks)."""
    p = SEParams(**raw["params"])
    by_task_oracle: dict[str, float] = {}
    for t in p.tasks:
        finals = [r["curve"][-1] for r in raw["runs"] if r["task"] == t and r["method"] == "oracle"]
        if finals:
            by_task_oracle[t] = statistics.mean(finals)
    scored = []
    for r in raw["runs"]:
        curve, base = r["curve"], r["baseline"]
        o = by_task_oracle.get(r["task"])
        has_gain = o is not None and o - base >= MIN_ORACLE_GAIN
        gain_thr = base + 0.95 * (o - base) if has_gain else None
        scored.append(
            {
                "method": r["method"],
                "task": r["task"],
                "seed": r["seed"],
                "baseline": base,
                "final": curve[-1],
                "gain": curve[-1] - base,
                "mean_episode": statistics.mean(e["metric"] for e in r["episodes"])
                if r["episodes"]
                else None,
                "auc": statistics.mean(curve[1:]),
                "oracle": o,
                "share_of_oracle_gain": (curve[-1] - base) / (o - base) if has_gain else None,
                "to95": None if o is None else first_reach(curve, 0.95 * o),
                "to95_gain": None if gain_thr is None else first_reach(curve, gain_thr),
                "seconds": r["seconds"],
            }
        )

    def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
        finals = [r["final"] for r in rows]
        tasks = sorted({r["task"] for r in rows})
        # Spread: the seed-to-seed sd within a task, pooled over tasks (task difficulty is not
        # noise, so it is kept out of the spread).
        variances = [
            statistics.variance([r["final"] for r in rows if r["task"] == t])
            for t in tasks
            if sum(r["task"] == t for r in rows) > 1
        ]
        shares = [r["share_of_oracle_gain"] for r in rows if r["share_of_oracle_gain"] is not None]
        return {
            "n": len(rows),
            "final": statistics.mean(finals),
            "sd": math.sqrt(statistics.mean(variances)) if variances else None,
            "gain": statistics.mean(r["gain"] for r in rows),
            "mean_episode": statistics.mean(
                r["mean_episode"] for r in rows if r["mean_episode"] is not None
            ),
            "share": statistics.mean(shares) if shares else None,
            "to95": _median_reach([r["to95"] for r in rows if r["oracle"] is not None]),
            "to95_gain": _median_reach(
                [r["to95_gain"] for r in rows if r["share_of_oracle_gain"] is not None]
            ),
            "auc": statistics.mean(r["auc"] for r in rows),
            "seconds": statistics.mean(r["seconds"] for r in rows),
        }

    methods = [m for m in ALL_METHODS if any(r["method"] == m for r in scored)]
    per_task = {
        t: {
            m: summarise([r for r in scored if r["task"] == t and r["method"] == m])
            for m in methods
            if any(r["task"] == t and r["method"] == m for r in scored)
        }
        for t in p.tasks
    }
    headline_tasks = [t for t in p.tasks if t != TUNING_TASK]
    headline = {
        m: summarise([r for r in scored if r["task"] in headline_tasks and r["method"] == m])
        for m in methods
        if any(r["task"] in headline_tasks and r["method"] == m for r in scored)
    }
    return {
        "runs": scored,
        "per_task": per_task,
        "headline": headline,
        "headline_tasks": headline_tasks,
        "oracle_metric": by_task_oracle,
        "methods": methods,
    }


# ----------------------------------------------------------------------------- reporting
def _ppo_n_steps() -> int:
    """PPO's rollout length in the benchmarks (it updates once per rollout)."""
    from agents.sb3.sb3_agent import ALGORITHMS

    return int(
        AGENT_HYPERPARAMS["ppo"].get("n_steps", ALGORITHMS["ppo"].defaults.get("n_steps", 2048))
    )


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def summary_table(summary: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown rows: one per method."""
    lines = [
        "| method | final accuracy | ± sd (seeds) | gain over baseline | share of oracle's "
        "gain | evals to 95% of oracle accuracy | evals to 95% of oracle gain | AUC "
        "(best-so-far, / budget) | mean episode | runs | s / run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m, s in summary.items():
        lines.append(
            f"| {LABELS.get(m, m)} | {s['final']:.3f} | {_fmt(s['sd'])} | "
            f"{s['gain']:+.3f} | {_fmt(s['share'], '.0%')} | {s['to95']} | "
            f"{s['to95_gain']} | {s['auc']:.3f} | {s['mean_episode']:.3f} | {s['n']} | "
            f"{s['seconds']:.0f} |"
        )
    return lines


def headline_markdown(raw: dict[str, Any], res: dict[str, Any]) -> list[str]:
    """The headline table (non-tuning tasks) with a one-line caption."""
    p = SEParams(**raw["params"])
    if not res["headline"]:
        return [f"(no headline: every task run is the tuning task `{TUNING_TASK}`)"]
    return [
        f"Sample efficiency on {', '.join(f'`{t}`' for t in res['headline_tasks'])} "
        f"(tuning task `{TUNING_TASK}` excluded), budget {p.budget} target evaluations, "
        f"{len(p.seeds)} seed(s), episodes of {p.num_iterations} steps x batch "
        f"{p.batch_size}" + (" — QUICK MODE" if p.quick else "") + ":",
        "",
        *summary_table(res["headline"]),
    ]


def write_report(raw: dict[str, Any], res: dict[str, Any], out: Path, command: str) -> str:
    """Write ``sample_efficiency.md`` / ``.json`` / ``.png`` under ``out``; returns the md."""
    p = SEParams(**raw["params"])
    grid = p.grid()
    n_trials = p.budget // p.num_iterations
    dflt = default_settings()
    lines = [
        "# Sample efficiency on DataGen-v0" + (" (quick mode)" if p.quick else ""),
        "",
        f"`{command}` — {raw['seconds'] / 60:.1f} min on {os.cpu_count()} CPU cores, "
        f"{p.workers} worker process(es); the jobs used {raw['cpu_seconds'] / 60:.1f} CPU-min "
        f"(about {raw['cpu_seconds'] / 60 / max(1, min(p.workers, os.cpu_count() or 1)):.1f} "
        f"min of wall time on an otherwise idle machine). Load average "
        f"{raw['load'][0]:.1f} at the start, {raw['load'][1]:.1f} at the end"
        + (
            " (other jobs shared the CPU: wall times are inflated, metrics are not — the env is "
            "deterministic per machine)"
            if max(raw["load"]) > (os.cpu_count() or 1) + 0.5
            else ""
        )
        + ".",
        "",
    ]
    if p.quick:
        lines += [
            f"**Quick mode**: {len(p.seeds)} seed(s), budget {p.budget}, a "
            f"{len(p.grid_temperatures)}x{len(p.grid_top_ps)}x{len(p.templates())} oracle "
            "grid. Numbers are indicative only; run `python -m benchmarks.run` for the full "
            "benchmark.",
            "",
        ]
    lines += [
        "## Protocol",
        "",
        f"- Tasks: {', '.join(f'`{t}`' for t in p.tasks)}; seeds {p.seeds}. Every method runs "
        f"through the same env (`DataGen-v0`, built-in scikit-learn target, batch "
        f"{p.batch_size}, episodes of {p.num_iterations} steps, data mode `episode`) with the "
        f"same budget of **{p.budget} target evaluations** (= env steps; the baseline "
        "measurement at reset is not counted) and resets with the run's seed once, so episode "
        "k of every method starts from the same generator seed.",
        "- A run's score after k evaluations is the best *episode-final* accuracy among the "
        "episodes it finished within k evaluations (the baseline — seed tasks only — before its "
        f"first episode ends). **Final accuracy** = that score at the budget "
        f"({n_trials} episodes).",
        f"- **Honesty**: `{TUNING_TASK}` is the tuning task — the agents' hyper-parameters "
        "were chosen on it (400-step runs of `benchmarks.learning_curves`) and nothing is tuned "
        "on the other tasks — so the headline averages the other tasks only "
        f"({', '.join(f'`{t}`' for t in res['headline_tasks'])}); `{TUNING_TASK}` is reported "
        "separately below. Agents run as `make_agent(name, env, seed=seed, **hyper-parameters)`"
        " with "
        + "; ".join(
            f"{k}: " + (", ".join(f"`{a}={b}`" for a, b in v.items()) or "defaults")
            for k, v in AGENT_HYPERPARAMS.items()
        )
        + ".",
        f"- Static methods keep their starting settings every step (action `[1, 1, template]`): "
        f"Self-Instruct T={SELF_INSTRUCT[0]}, top_p={SELF_INSTRUCT[1]}; Alpaca T={ALPACA[0]}, "
        f"top_p={ALPACA[1]}; the default config T={dflt[0]}, top_p={dflt[1]}; all with "
        "template `self_instruct`.",
        f"- **Oracle**: the best fixed configuration of a grid of {len(grid)} configurations "
        f"(temperature {p.grid_temperatures} x top_p {p.grid_top_ps} x "
        + (
            f"{len(p.templates())} templates {p.templates()}"
            if p.grid_templates
            else "all 10 templates"
        )
        + f"), one {p.num_iterations}-step episode per configuration and grid seed "
        f"{p.grid_seeds} (seeds disjoint from the scoring seeds, so it is not chosen on the noise "
        "it is scored on); the search cost is not charged. It is then scored exactly like a "
        "static method. Evaluations to 95% are measured against the oracle's mean final "
        "accuracy on that task.",
        "- **Optuna TPE** (`TPESampler(seed=seed, "
        f"n_startup_trials={tpe_startup_trials(n_trials)})`"
        f"; Optuna's default of 10 random start-up trials would be every one of the "
        f"{n_trials} trials): temperature in [{min(p.grid_temperatures)}, "
        f"{max(p.grid_temperatures)}], top_p in [{min(p.grid_top_ps)}, {max(p.grid_top_ps)}] "
        "(continuous; the grid's box), the grid's templates; one fixed-settings episode per "
        "trial, objective = its final accuracy.",
        "- Random search, REINFORCE and PPO: `make_agent(...).learn(budget)`. They start each "
        f"episode from the default config and move temperature / top_p by at most ±0.05 per "
        f"step, so within {p.num_iterations} steps they reach only settings near the default "
        "(the template they can switch freely)."
        + (
            f" PPO's `n_steps={_ppo_n_steps()}` exceeds the budget: it never updates "
            "and is stopped at the budget mid-rollout, i.e. its row is its initial, near-uniform "
            "policy."
            if p.budget < _ppo_n_steps()
            else ""
        ),
        "- Columns: final accuracy (mean over runs); ± sd = seed-to-seed standard deviation "
        "within a task, pooled over tasks; gain = final - baseline; share of oracle's gain = "
        "(final - baseline) / (oracle - baseline), averaged over runs, and like the gain-based "
        f"evals column only over tasks whose oracle gains at least {MIN_ORACLE_GAIN} (else it "
        "is a ratio of noise); evals to 95% = median "
        "evaluations until the score reaches 95% of the oracle's accuracy (or baseline + 95% of "
        "the oracle's gain), runs that never do count as infinite, (reached/runs) in brackets; "
        "0 means the baseline already qualifies; AUC = mean score over evaluations 1..budget; "
        "mean episode = the mean (not the best) final accuracy of the run's episodes, i.e. the "
        "quality of the data it generated on average rather than its luckiest episode; s / run "
        "= wall time of one run (shared CPU, indicative).",
        "",
        "## Headline (non-tuning tasks)",
        "",
        *headline_markdown(raw, res)[2:],
        "",
        "![sample efficiency](sample_efficiency.png)",
        "",
        "## Per task",
        "",
    ]
    for t in p.tasks:
        base = next((r["baseline"] for r in raw["runs"] if r["task"] == t), float("nan"))
        o = raw["oracle"].get(t)
        tag = " (tuning task)" if t == TUNING_TASK else ""
        lines += [
            f"### `{t}`{tag}",
            "",
            f"Baseline accuracy {base:.3f}."
            + (
                f" Oracle configuration T={o['settings'][0]}, top_p={o['settings'][1]}, "
                f"`{o['settings'][2]}` (grid {o['grid_metric']:.3f}; the worst grid "
                f"configuration {o['grid_worst']:.3f}); oracle final accuracy "
                f"{res['oracle_metric'].get(t, float('nan')):.3f}."
                if o
                else ""
            ),
            "",
            *summary_table(res["per_task"][t]),
            "",
        ]
    lines += [
        "## Best settings each method found (per task, over seeds)",
        "",
        "| task | method | best episode: accuracy, T, top_p, template |",
        "|---|---|---|",
    ]
    for t in p.tasks:
        for m in res["methods"]:
            eps = [
                e for r in raw["runs"] if r["task"] == t and r["method"] == m for e in r["episodes"]
            ]
            if eps:
                e = max(eps, key=lambda e: e["metric"])
                lines.append(
                    f"| {t} | {LABELS.get(m, m)} | {e['metric']:.3f}, "
                    f"{e['temperature']:.2f}, {e['top_p']:.2f}, `{e['template']}` |"
                )
    md = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sample_efficiency.md").write_text(md)
    (out / "sample_efficiency.json").write_text(
        json.dumps({"raw": raw, "analysis": res}, indent=1, default=str)
    )
    plot(raw, res, out / "sample_efficiency.png")
    return md


def plot(raw: dict[str, Any], res: dict[str, Any], path: Path) -> None:
    """Best-so-far accuracy against evaluations, one panel per task, mean over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    p = SEParams(**raw["params"])
    n = len(p.tasks)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    # One extra point past the budget so that a jump at the last evaluation shows as a step.
    x = np.append(np.arange(p.budget + 1), p.budget + 0.6)
    styles = {
        "oracle": dict(color="k", lw=2.2),
        "static_self_instruct": dict(ls="--"),
        "static_alpaca": dict(ls="--"),
        "static_default": dict(ls="--"),
    }
    for ax, t in zip(axes.flat, p.tasks):
        for m in res["methods"]:
            curves = np.array(
                [
                    r["curve"] + r["curve"][-1:]
                    for r in raw["runs"]
                    if r["task"] == t and r["method"] == m
                ]
            )
            if not len(curves):
                continue
            mean = curves.mean(axis=0)
            (line,) = ax.plot(
                x, mean, label=LABELS.get(m, m), drawstyle="steps-post", **styles.get(m, {})
            )
            if len(curves) > 1:
                ax.fill_between(
                    x,
                    curves.min(axis=0),
                    curves.max(axis=0),
                    alpha=0.08,
                    step="post",
                    color=line.get_color(),
                )
        o = res["oracle_metric"].get(t)
        if o is not None:
            ax.axhline(0.95 * o, color="k", lw=0.8, ls=":", label="95% of oracle")
        ax.set_xlim(0, p.budget + 0.6)
        ax.set_title(f"{t}" + (" (tuning task)" if t == TUNING_TASK else ""), fontsize=9)
        ax.set_xlabel("target evaluations (env steps)", fontsize=8)
        ax.set_ylabel("best episode-final accuracy", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=7)
    fig.suptitle(
        f"DataGen-v0 sample efficiency (mean over {len(p.seeds)} seed(s); band = "
        f"min-max){' — quick mode' if p.quick else ''}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.1 if rows == 1 else 0.06, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_sample_efficiency(
    p: SEParams, out: Path, command: str, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Execute, analyse and report; returns raw results, analysis, Markdown and headline."""
    raw = execute(p, log=log)
    res = analyse(raw)
    md = write_report(raw, res, out, command)
    return {
        "raw": raw,
        "analysis": res,
        "markdown": md,
        "headline": "\n".join(headline_markdown(raw, res)),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sample-efficiency options (shared with :mod:`benchmarks.run`); defaults None."""
    parser.add_argument("--tasks", nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--budget", type=int, help="target evaluations per run")
    parser.add_argument("--num-iterations", type=int, help="episode length")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--grid-temperatures", type=float, nargs="+")
    parser.add_argument("--grid-top-ps", type=float, nargs="+")
    parser.add_argument("--grid-templates", nargs="+")
    parser.add_argument("--grid-seeds", type=int, nargs="+")
    parser.add_argument("--methods", nargs="+", choices=list(ALL_METHODS))
    parser.add_argument("--workers", type=int)


def params_from_args(args: argparse.Namespace, base: SEParams) -> SEParams:
    """``base`` with every option given on the command line replaced."""
    d = asdict(base)
    for k in d:
        v = getattr(args, k, None)
        if v is not None and k != "quick":
            d[k] = v
    p = SEParams(**d)
    if p.budget < p.num_iterations:
        raise SystemExit(
            f"--budget ({p.budget}) must pay for at least one episode of "
            f"--num-iterations ({p.num_iterations}) steps"
        )
    return p


def rerun_methods(
    saved: Path, methods: list[str], workers: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Re-run ``methods`` with the saved run's tasks, seeds and sizes and replace their runs in
    ``saved`` (a ``sample_efficiency.json``); the grid, the oracle and every other method's
    runs are kept. Rewrites the report next to it, and the sample-efficiency section of the
    ``summary.md`` there. For when an agent changes and the other 90% of the run has not."""
    if "oracle" in methods:
        raise SystemExit("the oracle depends on the grid: re-run everything instead")
    old = json.loads(saved.read_text())["raw"]
    params = SEParams(**{**old["params"], "methods": methods, "workers": workers})
    log(f"re-running {methods} on {params.tasks}, seeds {params.seeds}, budget {params.budget}")
    new = execute(params, log=log)
    raw = {
        **old,
        "runs": [r for r in old["runs"] if r["method"] not in methods] + new["runs"],
        "seconds": old["seconds"] + new["seconds"],
        "cpu_seconds": old["cpu_seconds"] + new["cpu_seconds"],
        "rerun": old.get("rerun", []) + [{"methods": methods, "seconds": new["seconds"]}],
    }
    return _write_saved(saved, raw, lambda cmd: f"{', '.join(methods)} re-run with `{cmd}`.")


def _command(saved: Path, raw: dict[str, Any]) -> str:
    """The command that made a saved run, followed by the re-runs recorded in it."""
    first = next(
        (
            ln
            for ln in (saved.parent / "sample_efficiency.md").read_text().splitlines()
            if ln.startswith("`python -m")
        ),
        "`python -m benchmarks.run`",
    )
    cmd = first[1 : first.index("`", 1)]
    for r in raw.get("rerun", []):
        cmd += (
            f"`, then `python -m benchmarks.sample_efficiency --rerun {saved.name} "
            f"--methods {' '.join(r['methods'])}"
        )
    return cmd


def update_summary(path: Path, raw: dict[str, Any], res: dict[str, Any], note: str) -> None:
    """Replace the sample-efficiency section of a ``benchmarks.run`` summary, if there is one."""
    replace_section(
        path,
        "Sample efficiency",
        [
            *headline_markdown(raw, res),
            "",
            f"Details and per-task tables: `sample_efficiency.md`. {note}",
        ],
    )


def render(saved: Path) -> dict[str, Any]:
    """Re-analyse a saved ``sample_efficiency.json`` and rewrite the reports next to it (after a
    change to the analysis or the report; nothing is run)."""
    raw = json.loads(saved.read_text())["raw"]
    return _write_saved(
        saved, raw, lambda cmd: f"Runs: `{cmd}`; report re-rendered from the saved runs."
    )


def _write_saved(saved: Path, raw: dict[str, Any], note: Callable[[str], str]) -> dict[str, Any]:
    """Analyse ``raw`` and rewrite the reports next to ``saved`` (the JSON included) and the
    summary's section; ``note(command)`` is the summary's line about how the runs were made."""
    res = analyse(raw)
    cmd = _command(saved, raw)
    write_report(raw, res, saved.parent, cmd)
    update_summary(saved.parent / "summary.md", raw, res, note(cmd))
    return {"raw": raw, "analysis": res}


def main(argv: list[str] | None = None) -> None:
    """Standalone entry point (full-mode defaults)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--rerun",
        type=Path,
        metavar="JSON",
        help="re-run --methods inside a saved sample_efficiency.json",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="only re-render the reports of a saved sample_efficiency.json",
    )
    args = parser.parse_args(argv)
    if args.render is not None:
        r = render(args.render)
        print("\n".join(headline_markdown(r["raw"], r["analysis"])))
        return
    if args.rerun is not None:
        if not args.methods:
            raise SystemExit("--rerun needs --methods")
        r = rerun_methods(args.rerun, args.methods, args.workers or 2)
        print("\n".join(headline_markdown(r["raw"], r["analysis"])))
        return
    p = params_from_args(args, SEParams())
    cmd = "python -m benchmarks.sample_efficiency " + " ".join(argv or [])
    result = run_sample_efficiency(p, args.out, cmd.strip())
    print(result["headline"])


if __name__ == "__main__":
    main()
