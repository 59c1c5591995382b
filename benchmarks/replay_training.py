"""PPO trained on the replay tier vs on live steps in the same wall time, both judged on live
steps (issue 11: the 20,000-step run and the transfer).

    python -m benchmarks.replay_training --cache CACHE [--steps 20000] [--n-envs 2]
        [--seeds 0] [--eval-episodes 20] [--workers 2]

The env is the learning-curve benchmark's: ``DataGen-v0`` (built-in sentiment target), batch 32,
5-step episodes, the default action space. For each seed:

1. **replay**: the ``ppo`` agent (SB3 PPO with :data:`benchmarks.methods.AGENT_HYPERPARAMS`)
   trains ``--steps`` env steps on ``--n-envs`` ``SubprocVecEnv`` workers (one core each) with
   ``replay_cache=CACHE``. A miss generates live and stores the batch, so the cache grows; the
   report counts the misses (rows the run added) and times the whole run.
2. **live**: the same agent, same hyper-parameters and seed, on live envs (same workers), stopped
   when it has used the replay run's wall time.
3. **on live steps**: both policies (deterministic) and two references run the same live episodes
   (episode seeds 10000, 10001, ...): ``start`` keeps the env's start settings (T 1.0, top_p 0.9,
   ``self_instruct``) and ``uniform`` draws actions uniformly. Reported: the final *test* metric of
   each episode (``info["test_metric"]``; the reward's validation split is reported next to it),
   mean and 95% t interval, and paired differences on the same episodes.

Fill the cache ahead (the benchmark never builds one), e.g. the region a 5-step episode mostly
visits::

    python -m datagen_gym.replay.build --cache CACHE --task sentiment --templates all \\
        --focus any --temperatures 0.85:1.15 --top-ps 0.75:1.0 --replicas 2 --batch-size 32

Writes ``benchmarks/results/replay_training.{md,json,png}`` (the PNG: episode return against wall
time and against steps, both tiers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import command_line, map_jobs, t_ci
from benchmarks.methods import AGENT_HYPERPARAMS

RESULTS = Path(__file__).resolve().parent / "results"
ENV_KWARGS: dict[str, Any] = {"batch_size": 32, "num_iterations": 5}
EVAL_SEED = 10_000


def cache_replicas(cache: str, misses_since: float | None = None) -> int:
    """Replicas in the cache file, or (``misses_since``: a ``time.time()``) the live misses
    stored since then: a builder writing the same file does not count."""
    query, params = "SELECT COUNT(*) FROM replicas", ()
    if misses_since is not None:
        query += " WHERE origin = 'miss' AND created_at >= ?"
        params = (misses_since,)
    conn = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    try:
        return int(conn.execute(query, params).fetchone()[0])
    finally:
        conn.close()


def train(
    env_kwargs: dict[str, Any],
    tier: str,
    seed: int,
    cache: str,
    steps: int,
    n_envs: int,
    vec_cls: str,
    wall_budget_s: float | None,
    out: Path,
    tb: str | None,
) -> dict[str, Any]:
    """Train the ``ppo`` agent on ``tier`` (``replay`` or ``live``) for ``steps`` steps or until
    ``wall_budget_s`` has passed; returns timings, the episode curve and the saved policy."""
    from agents import make_agent
    from datagen_gym.envs.vector import make_vec_env

    if tier == "replay":
        env_kwargs = dict(env_kwargs, replay_cache=cache)
    venv = make_vec_env(n_envs, vec_cls=vec_cls, env_kwargs=env_kwargs, seed=seed)
    agent = make_agent(
        "ppo", venv, seed=seed, tensorboard_log=tb, **AGENT_HYPERPARAMS.get("ppo", {})
    )
    started = time.time()
    curve: list[tuple[int, float, float]] = []  # (steps so far, seconds, episode return)
    t0 = time.perf_counter()

    def on_step(locals_: dict[str, Any], _globals: dict[str, Any]) -> bool:
        now = time.perf_counter() - t0
        for info in locals_["infos"]:
            if "episode" in info:
                curve.append((int(locals_["self"].num_timesteps), now, float(info["episode"]["r"])))
        return wall_budget_s is None or now < wall_budget_s

    agent.learn(steps, callback=on_step, tb_log_name=f"{tier}_seed{seed}")
    wall = time.perf_counter() - t0
    done = int(agent.num_timesteps)
    venv.close()
    path = out / f"ppo_{tier}_s{seed}"
    agent.save(path)
    result: dict[str, Any] = {
        "tier": tier,
        "seed": seed,
        "steps": done,
        "wall_s": wall,
        "steps_per_s": done / wall,
        "curve": curve,
        "policy": str(path),
    }
    if tier == "replay":
        result["misses"] = cache_replicas(cache, misses_since=started)
    return result


def evaluate(job: dict[str, Any]) -> dict[str, Any]:
    """One policy (or reference) on ``episodes`` live episodes; final test/validation metric."""
    import gymnasium as gym
    import torch

    torch.set_num_threads(1)
    import datagen_gym  # noqa: F401
    from datagen_gym.generators.prompts import TEMPLATE_NAMES

    env = gym.make("DataGen-v0", **job["env_kwargs"])
    agent = None
    if job["policy"]:
        from agents import load_agent

        agent = load_agent(job["policy"], env)
    env.action_space.seed(job["seed"])
    rows = []
    for i in range(job["episodes"]):
        obs, info = env.reset(seed=EVAL_SEED + i)
        keep = np.array([1, 1, TEMPLATE_NAMES.index(info["template"])])
        templates, done = [], False
        while not done:
            if agent is not None:
                action, _ = agent.predict(obs, deterministic=True)
            elif job["name"] == "uniform":
                action = env.action_space.sample()
            else:
                action = keep
            obs, _, terminated, truncated, info = env.step(action)
            templates.append(info["template"])
            done = terminated or truncated
        rows.append(
            {
                "episode": i,
                "test": float(info["test_metric"]),
                "validation": float(info["metric"]),
                "return": float(info["metric"] - info["baseline_metric"]),
                "templates": templates,
                "temperature": float(info["temperature"]),
                "top_p": float(info["top_p"]),
            }
        )
    return {"name": job["name"], "train_seed": job.get("train_seed"), "episodes": rows}


def summary(evals: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and interval of the final test and validation metric per method (seeds pooled)."""
    by: dict[str, dict[str, list[float]]] = {}
    for e in evals:
        slot = by.setdefault(e["name"], {"test": [], "validation": []})
        for r in e["episodes"]:
            slot["test"].append(r["test"])
            slot["validation"].append(r["validation"])
    return {
        name: {
            "test": statistics.mean(v["test"]),
            "test_ci": t_ci(v["test"]),
            "validation": statistics.mean(v["validation"]),
            "n": len(v["test"]),
        }
        for name, v in by.items()
    }


def paired(evals: list[dict[str, Any]], a: str, b: str) -> tuple[float, float, int]:
    """Mean and interval of ``a - b`` (final test metric) over the same (train seed, episode)."""
    ref: dict[tuple, float] = {}
    for e in evals:
        if e["name"] == b:
            for r in e["episodes"]:
                ref[(e["train_seed"], r["episode"])] = r["test"]
    diffs = []
    for e in evals:
        if e["name"] == a:
            for r in e["episodes"]:
                other = ref.get((e["train_seed"], r["episode"]), ref.get((None, r["episode"])))
                if other is not None:
                    diffs.append(r["test"] - other)
    return statistics.mean(diffs), t_ci(diffs), len(diffs)


def template_share(evals: list[dict[str, Any]], name: str) -> str:
    """The templates a method chose on the live episodes, most used first."""
    counts: dict[str, int] = {}
    for e in evals:
        if e["name"] == name:
            for r in e["episodes"]:
                for t in r["templates"]:
                    counts[t] = counts.get(t, 0) + 1
    total = sum(counts.values()) or 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"`{t}` {100 * c / total:.0f}%" for t, c in top)


def smoothed(curve: list[list[float]], window: int = 20) -> list[tuple[int, float, float]]:
    """(steps, seconds, moving mean of the last ``window`` episode returns) per episode end."""
    rets = [c[2] for c in curve]
    return [
        (int(c[0]), float(c[1]), statistics.mean(rets[max(0, i + 1 - window) : i + 1]))
        for i, c in enumerate(curve)
        if i + 1 >= min(window, len(curve))
    ]


def time_to_level(runs: list[dict[str, Any]], window: int = 20) -> tuple[float, dict]:
    """The level both tiers reach (the lower of the runs' final moving means) and, per run,
    the steps and minutes at which its moving mean first reaches it."""
    curves = {(r["tier"], r["seed"]): smoothed(r["curve"], window) for r in runs if r["curve"]}
    if not curves:
        return float("nan"), {}
    level = min(c[-1][2] for c in curves.values())
    first = {}
    for key, c in curves.items():
        hit = next((p for p in c if p[2] >= level), None)
        first[key] = None if hit is None else {"steps": hit[0], "minutes": hit[1] / 60}
    return level, first


def write_report(result: dict[str, Any], out: Path) -> str:
    runs, evals = result["runs"], result["evals"]
    table = summary(evals)
    level, first = time_to_level(runs)
    lines = [
        "# PPO on the replay tier vs on live steps, judged on live steps",
        "",
        f"`{result['command']}` on {result['machine']}; {result['wall_minutes']:.0f} minutes "
        f"in all. Env: `DataGen-v0` (sentiment), batch {result['env_kwargs']['batch_size']}, "
        f"{result['env_kwargs']['num_iterations']}-step episodes. Agent: `ppo` "
        f"({', '.join(f'{k}={v}' for k, v in AGENT_HYPERPARAMS['ppo'].items())}), "
        f"{result['n_envs']} "
        + (
            "`DummyVecEnv` envs."
            if result.get("vec_cls") == "dummy"
            else "`SubprocVecEnv` workers."
        ),
        "",
        *([result["note"], ""] if result.get("note") else []),
        f"Cache: {result['cache_replicas_before']} replicas before the runs, "
        f"{result['cache_replicas_after']} after (misses are generated live and stored).",
        "",
        "## Training",
        "",
        "| tier | seed | steps | wall time | steps/s | misses (live generations) |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        misses = (
            f"{r['misses']} ({100 * r['misses'] / max(1, r['steps']):.1f}% of steps)"
            if "misses" in r
            else "every step"
        )
        lines.append(
            f"| {r['tier']} | {r['seed']} | {r['steps']:,} | {r['wall_s'] / 60:.1f} min | "
            f"{r['steps_per_s']:.1f} | {misses} |"
        )
    lines += [
        "",
        f"Time to the level both reach (episode return {level:.3f}, the lower of the two runs' "
        "final moving means over 20 episodes): "
        + "; ".join(
            f"{tier} seed {seed} after {v['steps']:,} steps, {v['minutes']:.1f} min"
            for (tier, seed), v in first.items()
            if v is not None
        )
        + ".",
        "",
        "## On live steps",
        "",
        f"{result['eval_episodes']} live episodes per policy and training seed (episode seeds "
        f"{EVAL_SEED}...), the references on the same episodes. Final metric of the episode; "
        "mean ± 95% t interval over episodes (and training seeds).",
        "",
        "| method | test metric | per training seed | validation metric | episodes | "
        "templates chosen |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("ppo_replay", "ppo_live", "start", "uniform"):
        if name in table:
            s = table[name]
            per_seed = ", ".join(
                f"{statistics.mean(r['test'] for r in e['episodes']):.3f}"
                for e in evals
                if e["name"] == name and e["train_seed"] is not None
            )
            lines.append(
                f"| {name} | {s['test']:.3f} ± {s['test_ci']:.3f} | {per_seed or '-'} | "
                f"{s['validation']:.3f} | {s['n']} | {template_share(evals, name)} |"
            )
    lines += ["", "Paired differences in the final test metric (same episodes):", ""]
    for a, b in (
        ("ppo_replay", "ppo_live"),
        ("ppo_replay", "start"),
        ("ppo_replay", "uniform"),
        ("ppo_live", "start"),
        ("ppo_live", "uniform"),
    ):
        if a in table and b in table:
            d, ci, n = paired(evals, a, b)
            lines.append(f"- {a} - {b}: {d:+.3f} ± {ci:.3f} ({n} pairs)")
    lines += ["", "![training curves](replay_training.png)", ""]
    text = "\n".join(lines)
    (out / "replay_training.md").write_text(text)
    return text


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"replay": "tab:blue", "live": "tab:orange"}
    for r in result["runs"]:
        if not r["curve"]:
            continue
        steps, secs, rets = (np.array(x, dtype=float) for x in zip(*r["curve"]))
        k = max(1, min(50, len(rets) // 10))
        smooth = np.convolve(rets, np.ones(k) / k, mode="valid")
        label = f"{r['tier']} (seed {r['seed']}, {r['steps']:,} steps)"
        axes[0].plot(secs[k - 1 :] / 60, smooth, color=colours[r["tier"]], label=label)
        axes[1].plot(steps[k - 1 :], smooth, color=colours[r["tier"]], label=label)
    axes[0].set_xlabel("wall time (min)")
    axes[1].set_xlabel("env steps")
    axes[1].set_xscale("log")
    for ax in axes:
        ax.set_ylabel("episode return (moving mean)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("PPO on DataGen-v0: replay tier vs live steps, same wall time")
    fig.tight_layout()
    fig.savefig(out / "replay_training.png", dpi=110)
    plt.close(fig)


def merge_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result of several runs of this benchmark with different training seeds: their
    training runs and policy evaluations; the references (same live episodes in every run)
    from the first; the commands and times of all."""
    if len(results) == 1:
        return results[0]
    merged = dict(results[0])
    merged["runs"] = [r for res in results for r in res["runs"]]
    refs = [e for e in results[0]["evals"] if e["train_seed"] is None]
    merged["evals"] = [e for res in results for e in res["evals"] if e["train_seed"] is not None]
    merged["evals"] += refs
    merged["command"] = "; ".join(res["command"] for res in results)
    merged["wall_minutes"] = sum(res["wall_minutes"] for res in results)
    merged["cache_replicas_after"] = results[-1]["cache_replicas_after"]
    notes = [res["note"] for res in results if res.get("note")]
    merged["note"] = " ".join(notes) if notes else None
    return merged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", help="a replay cache file (filled ahead; required to run)")
    parser.add_argument("--steps", type=int, default=20000, help="replay training steps")
    parser.add_argument("--n-envs", type=int, default=2, help="SubprocVecEnv workers")
    parser.add_argument(
        "--vec-cls",
        choices=["subproc", "dummy"],
        default="subproc",
        help="subproc: one worker process per env (default); dummy: all in this process",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument(
        "--batch-size", type=int, default=ENV_KWARGS["batch_size"], help="records per step"
    )
    parser.add_argument(
        "--num-iterations",
        type=int,
        default=ENV_KWARGS["num_iterations"],
        help="steps per episode",
    )
    parser.add_argument("--workers", type=int, default=2, help="processes for the evaluation")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=Path("/tmp/datagen_replay_training"))
    parser.add_argument("--tensorboard-log", default=None, help="TensorBoard directory")
    parser.add_argument("--note", help="a line for the report (e.g. what else ran)")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        default=None,
        help="re-render finished runs' JSON (several: one report of all their training seeds, "
        "written with its JSON to --out); runs nothing",
    )
    args = parser.parse_args(argv)
    if args.from_json is not None:
        result = merge_results([json.loads(p.read_text()) for p in args.from_json])
        if args.note:
            result["note"] = args.note
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "replay_training.json").write_text(json.dumps(result))
        plot(result, args.out)
        print(write_report(result, args.out))
        return
    if args.cache is None or not Path(args.cache).is_file():
        parser.error(f"--cache {args.cache}: no such file; build one first (see --help)")
    env_kwargs = dict(ENV_KWARGS, batch_size=args.batch_size, num_iterations=args.num_iterations)
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    before = cache_replicas(args.cache)
    runs = []
    for seed in args.seeds:
        common = (seed, args.cache, args.steps, args.n_envs, args.vec_cls)
        replay = train(env_kwargs, "replay", *common, None, args.work, args.tensorboard_log)
        print(f"replay seed {seed}: {replay['steps']} steps, {replay['wall_s'] / 60:.1f} min")
        live = train(env_kwargs, "live", *common, replay["wall_s"], args.work, args.tensorboard_log)
        print(f"live seed {seed}: {live['steps']} steps, {live['wall_s'] / 60:.1f} min")
        runs += [replay, live]
    jobs = [
        {
            "name": f"ppo_{r['tier']}",
            "policy": r["policy"],
            "train_seed": r["seed"],
            "seed": r["seed"],
            "episodes": args.eval_episodes,
            "env_kwargs": env_kwargs,
        }
        for r in runs
    ] + [
        {
            "name": n,
            "policy": None,
            "train_seed": None,
            "seed": 0,
            "episodes": args.eval_episodes,
            "env_kwargs": env_kwargs,
        }
        for n in ("start", "uniform")
    ]
    evals = map_jobs(evaluate, jobs, args.workers)
    result = {
        "command": command_line("benchmarks.replay_training", argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "n_envs": args.n_envs,
        "vec_cls": args.vec_cls,
        "env_kwargs": env_kwargs,
        "eval_episodes": args.eval_episodes,
        "cache_replicas_before": before,
        "cache_replicas_after": cache_replicas(args.cache),
        "runs": runs,
        "evals": evals,
        "wall_minutes": (time.perf_counter() - t0) / 60,
        "note": args.note,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "replay_training.json").write_text(json.dumps(result))
    plot(result, args.out)
    print(write_report(result, args.out))


if __name__ == "__main__":
    main()
