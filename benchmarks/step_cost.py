"""What a DataGen-v0 step costs: throughput, framework overhead, vectorised envs, memory.

    python -m benchmarks.step_cost [--steps 20] [--overhead-repeats 5] [--vec-steps 24]
        [--rss-steps 200] [--rss-every 20]

(normally called by ``python -m benchmarks.run``). Measures, on the default env (task
``sentiment``, batch 64):

* env steps per second (random actions; :func:`benchmarks.env_step_bench.bench_env`);
* the framework's overhead: ``env.step`` time over the time of the raw work it wraps — the
  teacher's ``generator.generate(n)`` plus one target fit + evaluation on the same data — with
  the same settings and generator seed (both start from ``reset(seed)``; the metrics are checked
  equal so the two did the same work);
* SB3 ``SubprocVecEnv`` with 2 workers (forkserver, 1 teacher thread each) against
  ``DummyVecEnv`` with 1 env (teacher on 1 thread, and on every core, its default), in env
  steps per second;
* resident memory over a long run, sampled from ``/proc/self/status`` (VmRSS) and
  ``resource.getrusage`` (peak) in a fresh process, with its least-squares slope.

Writes ``step_cost.md`` and ``step_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.summary_file import replace_section

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class StepCostParams:
    """Sizes of the step-cost measurements."""

    task: str = "sentiment"
    batch_size: int = 64
    steps: int = 20  # env steps for the throughput figure
    overhead_repeats: int = 5  # paired step / raw measurements
    vec_steps: int = 24  # env steps per vec-env configuration (after one warm-up step)
    rss_steps: int = 200
    rss_every: int = 20
    num_iterations: int = 10
    vec_dummy_threads: tuple[int, ...] = (1, 2)  # teacher threads of the DummyVecEnv rows
    quick: bool = False


# ----------------------------------------------------------------------------- env factory
def make_default_env(
    task: str = "sentiment",
    batch_size: int = 64,
    num_iterations: int = 10,
    teacher_threads: int | None = None,
):
    """Build the default DataGen-v0 env (a top-level function, so it pickles for subprocesses).

    ``teacher_threads`` sets ``sampling.num_threads`` (None: torch's setting, every core).
    """
    import gymnasium as gym

    import datagen_gym  # noqa: F401

    config = {"sampling": {"num_threads": teacher_threads}} if teacher_threads else None
    return gym.make(
        "DataGen-v0", task=task, batch_size=batch_size, num_iterations=num_iterations, config=config
    )


class EnvFactory:
    """A picklable zero-argument env factory for SB3 vectorised envs."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def __call__(self):
        return make_default_env(**self.kwargs)


# ----------------------------------------------------------------------------- measurements
def throughput(p: StepCostParams) -> dict[str, float]:
    """Median step time on the default env (reuses ``env_step_bench.bench_env``)."""
    from benchmarks.env_step_bench import bench_env

    make_default_env(p.task, p.batch_size).close()  # load the teacher outside the timing
    cpu = time.process_time()
    r = bench_env(p.steps, p.batch_size)
    # CPU time barely depends on other load, so it estimates the step's cost on an idle machine
    # (summed over the teacher's threads); it includes one env build and reset.
    cpu_per_step = (time.process_time() - cpu) / p.steps
    return {**r, "steps_per_s": 1.0 / r["step"], "cpu_per_step": cpu_per_step}


def overhead(p: StepCostParams, seed: int = 0) -> dict[str, Any]:
    """Paired timings of ``env.step`` and of the raw generation + target fit it wraps."""
    env = make_default_env(p.task, p.batch_size, p.num_iterations)
    base = env.unwrapped
    keep = np.array([1, 1, base._settings()["template_index"]])
    env.reset(seed=seed)
    env.step(keep)  # warm-up: first calls pay for lazy imports / allocations
    step_t, raw_t, gen_t, tgt_t, same = [], [], [], [], []
    step_c, raw_c = [], []  # CPU times
    for r in range(p.overhead_repeats):
        s = seed + 1 + r
        for order in (0, 1) if r % 2 == 0 else (1, 0):  # alternate which goes first
            env.reset(seed=s)
            if order == 0:
                c0, t0 = time.process_time(), time.perf_counter()
                _, _, _, _, info = env.step(keep)
                step_t.append(time.perf_counter() - t0)
                step_c.append(time.process_time() - c0)
                step_metric = info["metric"]
            else:
                c0, t0 = time.process_time(), time.perf_counter()
                batch = base.generator.generate(base.batch_size, step=0)
                t1 = time.perf_counter()
                result = base.target_model(base.seed_records + batch.data)
                t2 = time.perf_counter()
                raw_c.append(time.process_time() - c0)
                raw_t.append(t2 - t0)
                gen_t.append(t1 - t0)
                tgt_t.append(t2 - t1)
                raw_metric = result[base.reward_metric]
        same.append(abs(step_metric - raw_metric) < 1e-12)
    env.close()
    ratios = [a / b for a, b in zip(step_t, raw_t)]
    return {
        "step": statistics.median(step_t),
        "raw": statistics.median(raw_t),
        "generate": statistics.median(gen_t),
        "target": statistics.median(tgt_t),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "same_work": all(same),
        "cpu_ratio": statistics.median(a / b for a, b in zip(step_c, raw_c)),
        "repeats": p.overhead_repeats,
    }


def _vec_rate(vec_env, n_env_steps: int, seed: int) -> float:
    """Env steps per second of a vec env with random actions, after one warm-up step."""
    n = vec_env.num_envs
    vec_env.seed(seed)
    vec_env.action_space.seed(seed)
    vec_env.reset()
    vec_env.step(np.stack([vec_env.action_space.sample() for _ in range(n)]))
    rounds = max(1, n_env_steps // n)
    t0 = time.perf_counter()
    for _ in range(rounds):
        vec_env.step(np.stack([vec_env.action_space.sample() for _ in range(n)]))
    return rounds * n / (time.perf_counter() - t0)


def vec_envs(p: StepCostParams, seed: int = 0) -> dict[str, float]:
    """``DummyVecEnv`` (1 env, its teacher on each of ``vec_dummy_threads`` threads) vs
    ``SubprocVecEnv`` (2 workers, 1 teacher thread each)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    kw = dict(task=p.task, batch_size=p.batch_size, num_iterations=p.num_iterations)
    out: dict[str, float] = {}
    for threads in p.vec_dummy_threads:
        venv = DummyVecEnv([EnvFactory(**kw, teacher_threads=threads)])
        out[f"dummy_1env_{threads}thr"] = _vec_rate(venv, p.vec_steps, seed)
        venv.close()
    venv = SubprocVecEnv(
        [EnvFactory(**kw, teacher_threads=1) for _ in range(2)], start_method="forkserver"
    )
    out["subproc_2env_1thr"] = _vec_rate(venv, p.vec_steps, seed)
    venv.close()
    return out


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def rss_run(job: tuple[str, int, int, int, int]) -> dict[str, Any]:
    """In a fresh process: ``steps`` random-action steps, RSS sampled every ``every`` steps."""
    task, batch_size, num_iterations, steps, every = job
    env = make_default_env(task, batch_size, num_iterations)
    env.action_space.seed(0)
    env.reset(seed=0)
    series = [
        {
            "step": 0,
            "rss_mb": _rss_mb(),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        }
    ]
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
        if i % every == 0 or i == steps:
            series.append(
                {
                    "step": i,
                    "rss_mb": _rss_mb(),
                    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                }
            )
    env.close()
    return {"series": series, "seconds": time.perf_counter() - t0}


def rss(p: StepCostParams) -> dict[str, Any]:
    """RSS series of a long run and its slope (MB per 100 steps, fitted after the first sample
    past step 0, i.e. once the first episodes have warmed every code path)."""
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        r = pool.submit(
            rss_run, (p.task, p.batch_size, p.num_iterations, p.rss_steps, p.rss_every)
        ).result()
    pts = [s for s in r["series"] if s["step"] > 0]
    fit = pts[1:] if len(pts) >= 3 else pts

    def fit_line(key: str) -> tuple[float, float]:
        """Slope (MB per 100 steps) and residual standard deviation (MB) of ``key``."""
        if len(fit) < 3:
            return float("nan"), float("nan")
        x = np.array([s["step"] for s in fit], dtype=float)
        y = np.array([s[key] for s in fit], dtype=float)
        coef = np.polyfit(x, y, 1)
        return float(coef[0]) * 100, float(np.std(y - np.polyval(coef, x), ddof=2))

    (rss_slope, rss_sd), (peak_slope, peak_sd) = fit_line("rss_mb"), fit_line("peak_mb")
    window = (fit[-1]["step"] - fit[0]["step"]) / 100 if fit else float("nan")
    return {
        **r,
        "slope_mb_per_100_steps": rss_slope,
        "residual_sd_mb": rss_sd,
        "peak_slope_mb_per_100_steps": peak_slope,
        "peak_residual_sd_mb": peak_sd,
        "window_100_steps": window,
        "growth_mb": fit[-1]["rss_mb"] - fit[0]["rss_mb"] if fit else float("nan"),
        "peak_growth_mb": fit[-1]["peak_mb"] - fit[0]["peak_mb"] if fit else float("nan"),
        "fit_from_step": fit[0]["step"] if fit else None,
    }


# ----------------------------------------------------------------------------- report
def run_step_cost(
    p: StepCostParams, out: Path, command: str, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Every measurement, written to ``step_cost.md`` / ``.json``; returns results and md."""
    import torch

    t_start, load_start = time.perf_counter(), os.getloadavg()[0]
    log("  step cost: throughput")
    thr = throughput(p)
    log("  step cost: overhead")
    ovh = overhead(p)
    log("  step cost: vec envs")
    vec = vec_envs(p)
    log(f"  step cost: RSS over {p.rss_steps} steps")
    mem = rss(p)
    run = {
        "command": command,
        "seconds": time.perf_counter() - t_start,
        "cores": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
    }
    return write_report(
        {
            "params": asdict(p),
            "run": run,
            "throughput": thr,
            "overhead": ovh,
            "vec": vec,
            "rss": mem,
        },
        out,
    )


def peak_halves(mem: dict[str, Any]) -> tuple[float, float]:
    """How much the peak RSS rose in the first and in the second half of the fitted window."""
    pts = [
        s
        for s in mem["series"]
        if mem["fit_from_step"] is not None and s["step"] >= mem["fit_from_step"]
    ]
    if len(pts) < 3:
        return float("nan"), float("nan")
    mid = pts[len(pts) // 2]
    return mid["peak_mb"] - pts[0]["peak_mb"], pts[-1]["peak_mb"] - mid["peak_mb"]


def write_report(saved: dict[str, Any], out: Path) -> dict[str, Any]:
    """Render ``step_cost.md`` from the measurements (also for ``--render``); write both files."""
    p = StepCostParams(
        **{**saved["params"], "vec_dummy_threads": tuple(saved["params"]["vec_dummy_threads"])}
    )
    run, thr, ovh, vec, mem = (saved[k] for k in ("run", "throughput", "overhead", "vec", "rss"))
    cores = run["cores"]
    dummy_1 = vec.get("dummy_1env_1thr", max(v for k, v in vec.items() if k.startswith("dummy")))

    def verdict(slope: float, sd: float) -> str:
        if math.isnan(slope):
            return "too few samples to fit a line"
        growth = slope * mem["window_100_steps"]
        text = (
            f"{slope:+.1f} MB / 100 steps: {growth:+.0f} MB over the window, residual sd "
            f"{sd:.0f} MB -> "
        )
        if abs(growth) <= max(1.0, 2 * sd):
            return text + "**flat within noise**"
        return text + ("**shrinking**" if growth < 0 else "**GROWING**")

    first, second = peak_halves(mem)
    peak = (
        "too few samples"
        if math.isnan(first)
        else f"{mem['peak_slope_mb_per_100_steps']:+.1f} MB / 100 steps fitted; {first:+.0f} MB "
        f"in the window's first half, {second:+.0f} MB in its second -> "
        + ("**levelled off**" if second <= 1.0 else "**still rising**")
    )
    busy = max(run["load_start"], run["load_end"]) > (cores or 1) + 0.5
    lines = [
        "# Cost of a DataGen-v0 step" + (" (quick mode)" if p.quick else ""),
        "",
        f"`{run['command']}` — {run['seconds']:.0f} s on {cores} CPU cores "
        f"({run['processor']}), torch {run['torch']} ({run['threads']} threads in the main "
        f"process), task `{p.task}`, batch {p.batch_size}. Timings are medians. Load average "
        f"{run['load_start']:.1f} at the start, {run['load_end']:.1f} at the end"
        + (
            " — **other jobs shared the CPU, so wall-clock rates are pessimistic**; the CPU-time "
            "rows are not affected much"
            if busy
            else ""
        )
        + "."
        + (" **Quick mode: small sample sizes.**" if p.quick else ""),
        "",
        "| measure | value |",
        "|---|---|",
        f"| env step (random actions, {p.steps} steps) | {thr['step']:.3f} s = "
        f"**{thr['steps_per_s']:.2f} steps/s** |",
        f"| CPU time per step (≈ wall time on an idle machine) | {thr['cpu_per_step']:.3f} s = "
        f"{1 / thr['cpu_per_step']:.2f} steps/s |",
        f"| of which generation / target (env's `info`) | {thr['generation']:.3f} s / "
        f"{thr['target']:.3f} s |",
        f"| `env.step` (keep action, {ovh['repeats']} paired repeats) | {ovh['step']:.3f} s |",
        f"| raw `generator.generate({p.batch_size})` + target fit, same seed | {ovh['raw']:.3f} s"
        f" ({ovh['generate']:.3f} + {ovh['target']:.3f}) |",
        f"| **overhead: step / raw** (goal <= 1.05) | **{ovh['ratio']:.3f}** "
        f"({'met' if ovh['ratio'] <= 1.05 else 'NOT met'}; pairs "
        f"{', '.join(f'{x:.3f}' for x in ovh['ratios'])}; same metric: "
        f"{'yes' if ovh['same_work'] else 'NO'}) |",
        f"| overhead in CPU time (robust to other load) | {ovh['cpu_ratio']:.3f} |",
    ]
    for k, v in vec.items():
        label = {"subproc_2env_1thr": "`SubprocVecEnv`, 2 workers x 1 teacher thread"}.get(
            k, f"`DummyVecEnv`, 1 env, {k.split('_')[-1][:-3]} teacher thread(s)"
        )
        lines.append(f"| {label} | {v:.2f} env steps/s |")
    lines += [
        f"| SubprocVecEnv(2) / DummyVecEnv(1), 1 teacher thread each | "
        f"**{vec['subproc_2env_1thr'] / dummy_1:.2f}x** |",
        f"| RSS over {p.rss_steps} steps (fresh process) | "
        f"{mem['series'][1]['rss_mb'] if len(mem['series']) > 1 else float('nan'):.0f} MB -> "
        f"{mem['series'][-1]['rss_mb']:.0f} MB; peak {mem['series'][-1]['peak_mb']:.0f} MB |",
        f"| current RSS (VmRSS) slope, least squares from step {mem['fit_from_step']} | "
        f"{verdict(mem['slope_mb_per_100_steps'], mem['residual_sd_mb'])} |",
        f"| peak RSS (`ru_maxrss`), same window | {peak} |",
        "",
        f"RSS series (MB, every {p.rss_every} steps, sampled right after an episode's reset "
        f"when {p.rss_every} is a multiple of the episode length {p.num_iterations}), "
        "step: current / peak: "
        + ", ".join(f"{s['step']}: {s['rss_mb']:.0f} / {s['peak_mb']:.0f}" for s in mem["series"]),
        "",
        "The current RSS is the leak check: a leak makes it rise steadily. It moves by tens of "
        "MB between samples (each episode's target is refitted on a growing dataset, and the "
        'allocator keeps freed pages). "Flat within noise" means the growth the fitted line '
        "implies over the window is at most twice the residual standard deviation (at least "
        "1 MB). The peak is a running maximum: it moves up, in steps, whenever one step (a long "
        "generation, a large episode dataset) sets a new high-water mark, so a line fitted to it "
        'rises even without a leak; "levelled off" means no new high-water mark in the second '
        "half of the window.",
        "",
        f"Vec envs: {p.vec_steps} env steps each after one warm-up step, random actions. With "
        f"{cores} cores, 2 worker processes are the ceiling; a single env whose teacher uses "
        f"{cores} threads (`sampling.num_threads`, the default outside a vector env's workers) is "
        "the other way to use both cores. The target (scikit-learn) is single-threaded "
        "throughout. Threads that share cores with other processes stall, so the multi-thread "
        "row is very sensitive to other load on the machine.",
        "",
    ]
    md = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "step_cost.md").write_text(md)
    (out / "step_cost.json").write_text(json.dumps(saved, indent=1))
    return {
        "markdown": md,
        "table": "\n".join(lines[4 : lines.index("", 4)]),
        "throughput": thr,
        "overhead": ovh,
        "vec": vec,
        "rss": mem,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Step-cost options (shared with :mod:`benchmarks.run`); defaults None."""
    parser.add_argument("--cost-steps", type=int, help="env steps for the throughput figure")
    parser.add_argument("--overhead-repeats", type=int)
    parser.add_argument("--vec-steps", type=int)
    parser.add_argument("--rss-steps", type=int)
    parser.add_argument("--rss-every", type=int)
    parser.add_argument("--cost-batch-size", type=int)


def params_from_args(args: argparse.Namespace, base: StepCostParams) -> StepCostParams:
    """``base`` with the options given on the command line replaced."""
    d = asdict(base)
    for arg, key in (
        ("cost_steps", "steps"),
        ("overhead_repeats", "overhead_repeats"),
        ("vec_steps", "vec_steps"),
        ("rss_steps", "rss_steps"),
        ("rss_every", "rss_every"),
        ("cost_batch_size", "batch_size"),
    ):
        v = getattr(args, arg, None)
        if v is not None:
            d[key] = v
    return StepCostParams(**d)


def main(argv: list[str] | None = None) -> None:
    """Standalone entry point (full-mode sizes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="only re-render the report of a saved step_cost.json",
    )
    args = parser.parse_args(argv)
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        r = write_report(saved, args.render.parent)
        command = saved["run"]["command"]
        out = args.render.parent
    else:
        p = params_from_args(args, StepCostParams())
        given = sys.argv[1:] if argv is None else argv
        command = " ".join(["python -m benchmarks.step_cost", *given])
        r = run_step_cost(p, args.out, command)
        out = args.out
    replace_section(
        out / "summary.md",
        "Cost of a step",
        [r["table"], "", f"Details: `step_cost.md` (`{command}`)."],
    )
    print(r["markdown"])


if __name__ == "__main__":
    main()
