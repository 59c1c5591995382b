"""Do the agents learn on DataGen-v0? Episode return and template choice over training.

    python -m benchmarks.learning_curves [--algos uniform random_search reinforce ppo]
        [--timesteps 600] [--batch-size 32] [--num-iterations 5] [--seeds 0 1] [--workers 2]
        [--replay CACHE]

Every agent trains on the same default env (built-in sentiment target, the agents' tuning task)
with the same budget of env steps (= target evaluations). ``uniform`` is the no-learning
reference: actions drawn uniformly at random. Each step's template and reward are recorded by a
wrapper; TensorBoard runs go to ``<out>/tb/`` (``benchmarks/results/tb/``).

``--replay CACHE`` runs every agent on the replay tier (:mod:`datagen_gym.replay`; misses are
generated live and stored, the report counts them) and writes ``learning_curves_replay.*``
instead, so that the live report stays.

What is reported (``benchmarks/results/learning_curves.md`` / ``.png`` / ``.json``):

* the episode return (final accuracy - baseline, since rewards telescope): mean over the first
  and the last fifth of each run's episodes;
* which templates the agent picks: the *mean step reward of the chosen templates*, where each
  template is scored by its mean step reward under the uniform policy in this same benchmark
  (steps after the first of an episode). A learner moves this from the uniform average towards
  the best template's value; it is far less noisy than the return, which carries the teacher's
  sampling noise of five batches.

The agents' hyper-parameters are :data:`benchmarks.methods.AGENT_HYPERPARAMS`, chosen on this env
with short exploratory runs (400 steps); the sample-efficiency benchmark scores them on other
tasks.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import gymnasium as gym

from benchmarks.common import map_jobs, read_result_json, write_result_json
from benchmarks.methods import AGENT_HYPERPARAMS as HYPERPARAMS

RESULTS = Path(__file__).resolve().parent / "results"


class StepRecorder(gym.Wrapper):
    """Records every step (position in the episode, template, reward) and each episode's end."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps: list[dict[str, Any]] = []
        self.episodes: list[dict[str, Any]] = []
        self._ret, self._k = 0.0, 0

    def reset(self, **kwargs):
        self._ret, self._k = 0.0, 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._ret += float(reward)
        self.steps.append(
            {
                "k": self._k,
                "template": info["template"],
                "reward": float(reward),
                "temperature": info["temperature"],
                "top_p": info["top_p"],
            }
        )
        self._k += 1
        if terminated or truncated:
            self.episodes.append(
                {
                    "return": self._ret,
                    "metric": info["metric"],
                    "test_metric": info["test_metric"],
                    "step": len(self.steps),
                }
            )
        return obs, reward, terminated, truncated, info


def train_one(job: tuple) -> dict[str, Any]:
    """One agent, one seed: train for ``timesteps`` env steps and return what was recorded."""
    algo, seed, timesteps, batch_size, num_iterations, out, replay = job
    import torch

    torch.set_num_threads(1)
    import datagen_gym  # noqa: F401
    from agents import make_agent

    env = StepRecorder(
        gym.make(
            "DataGen-v0",
            batch_size=batch_size,
            num_iterations=num_iterations,
            **({"replay_cache": replay} if replay else {}),
        )
    )
    start = time.perf_counter()
    if algo == "uniform":
        env.action_space.seed(seed)
        env.reset(seed=seed)
        for _ in range(timesteps):
            if env.step(env.action_space.sample())[3]:
                env.reset()
    else:
        agent = make_agent(
            algo, env, seed=seed, tensorboard_log=str(Path(out) / "tb"), **HYPERPARAMS.get(algo, {})
        )
        agent.learn(timesteps, tb_log_name=f"{algo}_seed{seed}")
    return {
        "algo": algo,
        "seed": seed,
        "hyperparams": HYPERPARAMS.get(algo, {}),
        "steps": env.steps,
        "episodes": env.episodes,
        "seconds": time.perf_counter() - start,
        "misses": getattr(env.unwrapped.generator, "misses", None),
    }


def template_values(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Each template's mean step reward under the uniform policy (first steps excluded: their
    reward is the jump from the seed-only baseline, large whatever the template)."""
    rewards: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        if r["algo"] == "uniform":
            for s in r["steps"]:
                if s["k"] > 0:
                    rewards[s["template"]].append(s["reward"])
    return {t: statistics.mean(v) for t, v in rewards.items()}


def _fifths(xs: list[float]) -> tuple[float, float]:
    k = max(1, len(xs) // 5)
    return statistics.mean(xs[:k]), statistics.mean(xs[-k:])


def _tenth_of_run(episodes: list[dict[str, Any]], timesteps: int) -> float:
    """Mean return of the episodes ending in the last fifth of the run's first tenth: where a
    run one tenth as long would report its "last fifth"."""
    xs = [e["return"] for e in episodes if 0.08 * timesteps < e.get("step", 0) <= 0.1 * timesteps]
    return statistics.mean(xs) if xs else float("nan")


def report(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    values = template_values(runs)
    replay = getattr(args, "replay", None)  # absent from reports re-rendered from old JSON
    cmd = (
        f"python -m benchmarks.learning_curves --algos {' '.join(args.algos)} "
        f"--timesteps {args.timesteps} --batch-size {args.batch_size} --num-iterations "
        f"{args.num_iterations} --seeds {' '.join(map(str, args.seeds))}"
        + (f" --replay {replay}" if replay else "")
    )
    tier = " on the replay tier" if replay else ""
    lines = [
        f"# Learning curves on DataGen-v0 (task `sentiment`){tier}",
        "",
        f"`{cmd}`",
        "",
        *([args.note, ""] if args.note else []),
        f"Budget per run: {args.timesteps} env steps (target evaluations), episodes of "
        f"{args.num_iterations} steps, batch {args.batch_size}. Episode return = final "
        "accuracy - baseline. *Template value* = mean step reward of the chosen templates, "
        "each template scored by its mean step reward under the uniform policy "
        "(steps 2+ of an episode).",
        "",
    ]
    if values:
        lines += [
            "Template values (uniform policy): "
            + ", ".join(f"`{t}` {v:+.3f}" for t, v in sorted(values.items(), key=lambda x: -x[1])),
            "",
        ]
    if replay:
        lines += [
            "*Return at 1/10*: the episodes ending in steps "
            f"{int(0.08 * args.timesteps)}-{int(0.1 * args.timesteps)}, what a run one tenth "
            "as long reports as its last fifth. *Misses*: steps the cache could not answer "
            "(generated live and stored).",
            "",
        ]
    lines += [
        "| agent | seed | hyper-parameters | episodes | return, first fifth | "
        + ("return at 1/10 | " if replay else "")
        + "return, last fifth | test metric, last fifth | template value, first fifth | "
        "template value, last fifth | minutes" + (" | misses |" if replay else " |"),
        "|---" * (10 + 2 * bool(replay)) + "|",
    ]
    for r in runs:
        rf, rl = _fifths([e["return"] for e in r["episodes"]])
        tests = [e["test_metric"] for e in r["episodes"] if "test_metric" in e]
        test_last = f"{_fifths(tests)[1]:.3f}" if tests else "not recorded"
        tv = [values.get(s["template"], float("nan")) for s in r["steps"]]
        vf, vl = _fifths(tv) if values else (float("nan"), float("nan"))
        hp = ", ".join(f"{k}={v}" for k, v in r["hyperparams"].items()) or "defaults"
        tenth = f" {_tenth_of_run(r['episodes'], args.timesteps):+.3f} |" if replay else ""
        misses = f" {r.get('misses')} |" if replay else ""
        lines.append(
            f"| {r['algo']} | {r['seed']} | {hp} | {len(r['episodes'])} | {rf:+.3f} |{tenth} "
            f"{rl:+.3f} | {test_last} | {vf:+.3f} | {vl:+.3f} | {r['seconds'] / 60:.1f} |" + misses
        )
    lines += ["", f"![learning curves]({_stem(args)}.png)", ""]
    return "\n".join(lines)


def _stem(args: argparse.Namespace) -> str:
    """The outputs' file name: the replay tier's report does not replace the live one."""
    return "learning_curves_replay" if getattr(args, "replay", None) else "learning_curves"


def plot(runs: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> None:
    """Two panels, each a thin line per run and a bold mean over an agent's seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = template_values(runs)
    w_ep, w_step = 10, 50

    def smooth(xs: list[float], w: int) -> np.ndarray:
        return np.convolve(np.asarray(xs, dtype=float), np.ones(w) / w, mode="valid")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    algos = list(dict.fromkeys(r["algo"] for r in runs))
    for i, algo in enumerate(algos):
        mine = [r for r in runs if r["algo"] == algo]
        panels = [
            (ax1, [[e["return"] for e in r["episodes"]] for r in mine], w_ep, args.num_iterations)
        ]
        if values:
            panels.append(
                (
                    ax2,
                    [[values.get(s["template"], np.nan) for s in r["steps"]] for r in mine],
                    w_step,
                    1,
                )
            )
        for ax, series, w, per in panels:
            curves = [smooth(x, w) for x in series if len(x) >= w]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            x = (np.arange(n) + w) * per
            for c in curves:
                ax.plot(x, c[:n], color=f"C{i}", alpha=0.3, linewidth=0.8)
            ax.plot(
                x,
                np.mean([c[:n] for c in curves], axis=0),
                color=f"C{i}",
                linewidth=2,
                label=f"{algo} (mean of {len(curves)})",
            )
    ax1.set_xlabel("env steps (target evaluations)")
    ax1.set_ylabel(f"episode return (moving mean of {w_ep} episodes)")
    ax1.set_title("Episode return = final accuracy - baseline")
    ax2.set_xlabel("env steps (target evaluations)")
    ax2.set_ylabel(f"template value (moving mean of {w_step} steps)")
    ax2.set_title("Mean step reward of the chosen templates")
    for ax in (ax1, ax2):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:  # runs shorter than the smoothing window
            ax.text(
                0.5,
                0.5,
                "too few points to smooth",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        ax.grid(alpha=0.3)
    tier = ", replay tier" if getattr(args, "replay", None) else ""
    fig.suptitle(
        f"DataGen-v0 (sentiment{tier}): {args.timesteps} steps per run, seeds "
        f"{', '.join(map(str, args.seeds))}; thin: one run, bold: mean over seeds"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--algos", nargs="+", default=["uniform", "random_search", "reinforce", "ppo"]
    )
    parser.add_argument("--timesteps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-iterations", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="replace only these --algos' runs in <out>/learning_curves.json.gz",
    )
    parser.add_argument("--note", help="a line for the report (e.g. what was re-run)")
    parser.add_argument(
        "--replay",
        default=None,
        metavar="CACHE",
        help="train on the replay tier with this cache (see datagen_gym.replay)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="re-render the report and plot from <out>/learning_curves.json.gz",
    )
    args = parser.parse_args(argv)
    saved = args.out / f"{_stem(args)}.json.gz"
    if args.report_only:
        write_outputs(read_result_json(saved), args)
        return

    jobs = [
        (a, s, args.timesteps, args.batch_size, args.num_iterations, str(args.out), args.replay)
        for a in args.algos
        for s in args.seeds
    ]
    runs = map_jobs(train_one, jobs, args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.merge:  # the new runs take the place of the saved ones with the same agent
        new = {(r["algo"], r["seed"]): r for r in runs}
        old = [
            r
            for r in read_result_json(saved)
            if r["algo"] not in args.algos or (r["algo"], r["seed"]) in new
        ]
        runs = [new.pop((r["algo"], r["seed"]), r) for r in old] + list(new.values())
        args.algos = list(dict.fromkeys(r["algo"] for r in runs))
    write_result_json(saved, runs)
    print(write_outputs(runs, args))


def write_outputs(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """Write ``learning_curves[_replay].md`` and ``.png`` under ``args.out``; returns the
    Markdown."""
    text = report(runs, args)
    (args.out / f"{_stem(args)}.md").write_text(text)
    plot(runs, args, args.out / f"{_stem(args)}.png")
    return text


if __name__ == "__main__":
    main()
