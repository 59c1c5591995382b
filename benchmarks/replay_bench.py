"""The replay tier against live steps: speed and fidelity (issue 11).

    python -m benchmarks.replay_bench                 # ~15 min on 2 busy cores
    python -m benchmarks.replay_bench --seeds 0 --settings 1.0,0.9,self_instruct   # a smoke run

For each fixed setting (temperature, top_p, template; the "keep" action every step) and seed it
runs one live DataGen-v0 episode and one replay episode, interleaved so that both see the same
machine load, on the default task with 64-record batches and 10 steps. Before that it fills a
replay cache (``--cache``, under /tmp by default; never a repository file) with ``--replicas``
batches per setting through :mod:`datagen_gym.replay.build`, so the replay episodes are all hits.

Reported (``benchmarks/results/replay.{md,json}``):

* speed: the median wall time of an ``env.step`` live and on replay, and its generation part;
* fidelity: the final metric after the episode, live vs replay, per setting (mean and standard
  deviation over seeds: the seed noise), their difference, and the Spearman rank correlation of
  the two landscapes (the settings ordered by mean final metric);
* what replay leaves out: records per step at the first and the last step, live vs replay (live,
  the ROUGE filter against the episode's growing pool keeps fewer Self-Instruct records later).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SETTINGS = (
    "1.0,0.9,self_instruct",
    "1.0,0.6,evol_breadth",
    "0.7,0.9,self_instruct_classification",
    "1.3,0.6,evol_add_constraints",
    "1.0,0.9,evol_deepen",
    "0.7,0.6,self_instruct_text",
)


def _setting(spec: str) -> tuple[float, float, str]:
    t, p, template = spec.split(",")
    return float(t), float(p), template


def run_episode(env, seed: int, setting: tuple[float, float, str]) -> dict[str, Any]:
    """One episode of the keep action from ``setting``; per-step times, records and metrics."""
    from datagen_gym.generators.prompts import TEMPLATE_NAMES

    t, p, template = setting
    env.reset(seed=seed, options={"temperature": t, "top_p": p, "template": template})
    keep = np.array([1, 1, TEMPLATE_NAMES.index(template)])
    steps = []
    while True:
        t0 = time.perf_counter()
        _, _, _, truncated, info = env.step(keep)
        seconds = env.unwrapped.last_step_seconds
        steps.append(
            {
                "wall_s": time.perf_counter() - t0,
                "generation_s": float(seconds["time_generation_s"]),
                "target_s": float(seconds["time_target_s"]),
                "records": info["num_records"],
                "metric": info["metric"],
            }
        )
        if truncated:
            return {
                "final_metric": info["metric"],
                "baseline": info["baseline_metric"],
                "test_metric": info["test_metric"],
                "steps": steps,
            }


def fill_cache(
    cache: str, settings: list[tuple[float, float, str]], replicas: int, batch_size: int
) -> float:
    """``replicas`` batches per setting (resumes); returns the seconds it took."""
    from datagen_gym.replay import build

    t0 = time.perf_counter()
    for t, p, template in settings:
        build.main(
            [
                "--cache",
                cache,
                "--templates",
                template,
                "--temperatures",
                str(t),
                "--top-ps",
                str(p),
                "--replicas",
                str(replicas),
                "--batch-size",
                str(batch_size),
            ]
        )
    return time.perf_counter() - t0


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0


# replay: the env's replay_cache (cached batches as they are); replay_filter: the same with
# ReplayGenerator(episode_filter=True).
REPLAY_MODES = ("replay", "replay_filter")


def summarise(
    rows: list[dict[str, Any]], settings: list[tuple[float, float, str]]
) -> dict[str, Any]:
    from scipy.stats import spearmanr

    modes = [m for m in ("live", *REPLAY_MODES) if any(r["mode"] == m for r in rows)]
    speed: dict[str, Any] = {}
    for mode in modes:
        ss = [s for r in rows if r["mode"] == mode for s in r["steps"]]
        speed[mode] = {
            "step_median_s": statistics.median(s["wall_s"] for s in ss),
            "generation_median_s": statistics.median(s["generation_s"] for s in ss),
            "target_median_s": statistics.median(s["target_s"] for s in ss),
            "steps": len(ss),
        }
    speed["speedup"] = speed["live"]["step_median_s"] / speed["replay"]["step_median_s"]
    per_setting = []
    for setting in settings:
        entry: dict[str, Any] = {
            "temperature": setting[0],
            "top_p": setting[1],
            "template": setting[2],
        }
        for mode in modes:
            eps = [r for r in rows if r["mode"] == mode and tuple(r["setting"]) == setting]
            entry[mode] = _mean_std([e["final_metric"] for e in eps])
            entry[f"{mode}_test"] = _mean_std([e["test_metric"] for e in eps])
            entry[f"{mode}_records_first"] = float(np.mean([e["steps"][0]["records"] for e in eps]))
            entry[f"{mode}_records_last"] = float(np.mean([e["steps"][-1]["records"] for e in eps]))
        per_setting.append(entry)
    fidelity = {}
    for mode in modes[1:]:
        diffs = [e[mode][0] - e["live"][0] for e in per_setting]
        rho = (
            float(
                spearmanr(
                    [e["live"][0] for e in per_setting], [e[mode][0] for e in per_setting]
                ).statistic
            )
            if len(settings) > 2
            else float("nan")
        )
        fidelity[mode] = {
            "differences": diffs,
            "spearman": rho,
            "mean_abs_difference": float(np.mean(np.abs(diffs))),
        }
    noise = {m: float(np.mean([e[m][1] for e in per_setting])) for m in modes}
    return {
        "speed": speed,
        "settings": per_setting,
        "fidelity": fidelity,
        "seed_noise": noise,
        "baseline": rows[0]["baseline"],
    }


def to_markdown(summary: dict[str, Any], params: dict[str, Any]) -> str:
    sp, fid = summary["speed"], summary["fidelity"]
    replay_modes = list(fid)
    lines = [
        "# Replay tier vs live steps",
        "",
        f"`{params['command']}` ({params['minutes']:.1f} min on a shared 2-core machine, "
        f"cache fill {params['fill_minutes']:.1f} min of it). Task `{params['task']}`, "
        f"{params['steps']}-step episodes of {params['batch_size']} records, the keep action "
        f"from each setting, seeds {params['seeds']}; {params['replicas']} cached replicas "
        f"per setting, so every replay step is a hit and each replay episode draws "
        f"{params['steps']} of them. `replay`: the cached batches as they are (the default); "
        f"`replay_filter`: with `ReplayGenerator(episode_filter=True)`, which applies the "
        f"ROUGE-L filter against the instructions replayed earlier in the episode.",
        "",
        "## Speed (median over every step of the run)",
        "",
        "| | step | generation (or cache lookup) | target fit + evaluation | steps |",
        "|---|---|---|---|---|",
    ]
    for mode in [m for m in ("live", *replay_modes) if m in sp]:
        s = sp[mode]
        lines.append(
            f"| {mode} | {1000 * s['step_median_s']:.1f} ms | "
            f"{1000 * s['generation_median_s']:.1f} ms | "
            f"{1000 * s['target_median_s']:.1f} ms | {s['steps']} |"
        )
    lines += [
        "",
        f"Replay is **{sp['speedup']:.0f}x** faster per step (goal: <= 40 ms and >= 15x).",
        "",
        "## Fidelity: final validation accuracy after the episode",
        "",
        f"Baseline (seed tasks only): {summary['baseline']:.3f}. Mean ± standard "
        "deviation over seeds (and the difference to live); records per step at the "
        "first → the last step.",
        "",
        "| temperature | top_p | template | live | "
        + " | ".join(replay_modes)
        + " | records: live | "
        + " | ".join(replay_modes)
        + " |",
        "|---|---|---|---|" + "---|" * (2 * len(replay_modes) + 1),
    ]
    for i, e in enumerate(summary["settings"]):
        cells = [
            f"{e['temperature']}",
            f"{e['top_p']}",
            e["template"],
            f"{e['live'][0]:.3f} ± {e['live'][1]:.3f}",
        ]
        cells += [
            f"{e[m][0]:.3f} ± {e[m][1]:.3f} ({fid[m]['differences'][i]:+.3f})" for m in replay_modes
        ]
        cells += [
            f"{e[m + '_records_first']:.0f} → {e[m + '_records_last']:.0f}"
            for m in ("live", *replay_modes)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    noise = summary["seed_noise"]
    lines += [""]
    for m in replay_modes:
        lines.append(
            f"- `{m}`: Spearman rank correlation with the live landscape (settings "
            f"ordered by mean final accuracy) **{fid[m]['spearman']:.2f}**; mean "
            f"|{m} - live| **{fid[m]['mean_abs_difference']:.3f}**"
        )
    lines += [
        "- seed noise (mean standard deviation over settings): "
        + ", ".join(f"{m} {noise[m]:.3f}" for m in noise),
        "",
        "Notes:",
        "",
        f"- Replay's seed noise is an underestimate: every seed draws {params['steps']} of "
        f"the same {params['replicas']} replicas per setting, so their data overlap.",
        "- Live episodes differ from replay by the episode's task pool (see the README, "
        '"Replay tier"): every replayed batch was generated from the human seed pool. '
        "The records-per-step columns show the ROUGE filter against earlier steps' "
        "instructions thinning live Self-Instruct batches; `replay_filter` thins replayed "
        "ones the same way.",
        f"- Timings are of a machine shared with other jobs (load average at the end of "
        f"the run: {params.get('load_average', 'not recorded')}); all tiers ran "
        "interleaved, so their ratio is fair, their absolute values are inflated.",
        "",
    ]
    if params.get("note"):
        lines += [f"- {params['note']}", ""]
    return "\n".join(lines)


class _TimedSteps:
    """Times every ``env.step`` and notes whether it was served from the cache."""

    def __init__(self, env) -> None:
        import gymnasium as gym

        outer = self

        class Wrapper(gym.Wrapper):
            def step(self, action):
                misses = self.env.unwrapped.generator.misses
                t0 = time.perf_counter()
                out = self.env.step(action)
                outer.steps.append(
                    (time.perf_counter() - t0, self.env.unwrapped.generator.misses == misses)
                )
                return out

        self.steps: list[tuple[float, bool]] = []
        self.env = Wrapper(env)


def run_ppo(
    cache: str, steps: int, task: str, batch_size: int, num_iterations: int
) -> dict[str, Any]:
    """SB3 PPO on a replay env for ``steps`` steps; misses fill the cache as they occur.

    A cache that holds every key PPO visits does not exist here (see the README), so the run
    separates the steps served from the cache from the live misses, and measures PPO's own
    overhead per step (learn() wall time minus the env's step time). A full cache would cost
    one hit step plus that overhead per step."""
    from stable_baselines3 import PPO

    from datagen_gym.envs import DataGenEnv

    timed = _TimedSteps(
        DataGenEnv(
            task=task, batch_size=batch_size, num_iterations=num_iterations, replay_cache=cache
        )
    )
    model = PPO(
        "MlpPolicy",
        timed.env,
        n_steps=64,
        batch_size=64,
        n_epochs=4,
        seed=0,
        device="cpu",
        verbose=0,
    )
    t0 = time.perf_counter()
    model.learn(steps)
    wall = time.perf_counter() - t0
    hit = [t for t, h in timed.steps if h]
    env_s = sum(t for t, _ in timed.steps)
    overhead = (wall - env_s) / len(timed.steps)
    hit_median = statistics.median(hit) if hit else float("nan")
    per_step = hit_median + overhead
    return {
        "steps": len(timed.steps),
        "wall_s": wall,
        "hits": len(hit),
        "hit_rate": len(hit) / len(timed.steps),
        "hit_step_median_s": hit_median,
        "miss_step_median_s": statistics.median(
            [t for t, h in timed.steps if not h] or [float("nan")]
        ),
        "ppo_overhead_per_step_s": overhead,
        "full_cache_steps_per_s": 1.0 / per_step,
        "projected_20k_steps_min": 20000 * per_step / 60,
    }


def ppo_markdown(ppo: dict[str, Any], command: str) -> str:
    return "\n".join(
        [
            "## PPO on replay",
            "",
            f"`{command}`: SB3 PPO (n_steps 64, 4 epochs) for {ppo['steps']} steps on a replay env "
            f"whose cache starts with the fidelity settings only, so misses fill it as PPO "
            f"explores: {100 * ppo['hit_rate']:.0f}% of the steps were hits "
            f"({ppo['wall_s'] / 60:.1f} min in all).",
            "",
            "| | per step |",
            "|---|---|",
            f"| hit step (env) | {1000 * ppo['hit_step_median_s']:.1f} ms (median) |",
            f"| miss step (env, live + store) | {1000 * ppo['miss_step_median_s']:.0f} ms "
            "(median) |",
            "| PPO's own overhead (rollout + updates) | "
            f"{1000 * ppo['ppo_overhead_per_step_s']:.1f} ms (mean) |",
            f"| **a cache holding every visited key** | **{ppo['full_cache_steps_per_s']:.1f} "
            f"steps/s: 20,000 steps in {ppo['projected_20k_steps_min']:.1f} min** (hit step + "
            f"overhead) |",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings",
        nargs="+",
        default=list(DEFAULT_SETTINGS),
        help="temperature,top_p,template per setting",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--cache", default="/tmp/datagen_replay_bench/bench.replay.sqlite")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch and BLAS threads (default 1: the machine is shared)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--ppo-steps",
        type=int,
        default=0,
        help="also run SB3 PPO for this many steps on replay (0: skip)",
    )
    parser.add_argument(
        "--ppo-only",
        action="store_true",
        help="only the PPO run; add it to the existing replay.{md,json}",
    )
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m benchmarks.replay_bench", *given])
    if args.ppo_only:
        from datagen_gym.envs.vector import limit_threads

        limit_threads(args.threads)
        data = json.loads((args.out / "replay.json").read_text())
        data["ppo"] = run_ppo(args.cache, args.ppo_steps, args.task, args.batch_size, args.steps)
        data["ppo"]["command"] = command
        (args.out / "replay.json").write_text(json.dumps(data, indent=1))
        md = (
            to_markdown(data["summary"], data["params"]) + "\n" + ppo_markdown(data["ppo"], command)
        )
        (args.out / "replay.md").write_text(md)
        print(md)
        return data["summary"]

    from datagen_gym.envs.vector import limit_threads

    limit_threads(args.threads)
    from datagen_gym.envs import DataGenEnv

    settings = [_setting(s) for s in args.settings]
    start = time.perf_counter()
    fill_s = fill_cache(args.cache, settings, args.replicas, args.batch_size)
    kw = dict(task=args.task, batch_size=args.batch_size, num_iterations=args.steps)
    from datagen_gym.replay import ReplayGenerator

    filtered = DataGenEnv(**kw)
    filtered.generator = ReplayGenerator(filtered.generator, args.cache, episode_filter=True)
    envs = {
        "live": DataGenEnv(**kw),
        "replay": DataGenEnv(replay_cache=args.cache, **kw),
        "replay_filter": filtered,
    }
    rows = []
    for setting in settings:
        for seed in args.seeds:
            for mode, env in envs.items():
                ep = run_episode(env, seed, setting)
                rows.append({"mode": mode, "setting": list(setting), "seed": seed, **ep})
                print(
                    f"{mode:6s} {setting} seed {seed}: {ep['final_metric']:.3f} "
                    f"({statistics.median(s['wall_s'] for s in ep['steps']) * 1000:.0f} "
                    f"ms/step)",
                    flush=True,
                )
    misses = envs["replay"].generator.misses + envs["replay_filter"].generator.misses
    summary = summarise(rows, settings)
    params = {
        "command": command,
        "minutes": (time.perf_counter() - start) / 60,
        "fill_minutes": fill_s / 60,
        "task": args.task,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seeds": args.seeds,
        "replicas": args.replicas,
        "replay_misses": misses,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"params": params, "summary": summary, "episodes": rows}
    md = to_markdown(summary, params)
    if args.ppo_steps:
        data["ppo"] = {
            **run_ppo(args.cache, args.ppo_steps, args.task, args.batch_size, args.steps),
            "command": command,
        }
        md += "\n" + ppo_markdown(data["ppo"], command)
    (args.out / "replay.json").write_text(json.dumps(data, indent=1))
    (args.out / "replay.md").write_text(md)
    print(md)
    return summary


if __name__ == "__main__":
    main()
