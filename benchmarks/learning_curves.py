"""Do the agents learn on DataGen-v0? Episode return over training for several agents.

    python -m benchmarks.learning_curves [--algos random_search reinforce ppo]
        [--timesteps 300] [--batch-size 32] [--num-iterations 10] [--seeds 0] [--workers 2]

Every agent trains on the same default env (built-in sentiment target) with the same budget of
env steps (= target evaluations), writing TensorBoard runs to benchmarks/results/tb/. The
episode returns (final accuracy minus baseline, since rewards telescope) are collected by a
wrapper, plotted to benchmarks/results/learning_curves.png and summarised in
benchmarks/results/learning_curves.md (mean return of the first and the last fifth of episodes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import gymnasium as gym

RESULTS = Path(__file__).resolve().parent / "results"


class EpisodeReturns(gym.Wrapper):
    """Collects each finished episode's return and final metric."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.episodes: list[dict] = []
        self._ret = 0.0

    def reset(self, **kwargs):
        self._ret = 0.0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._ret += float(reward)
        if terminated or truncated:
            self.episodes.append({"return": self._ret, "metric": info["metric"],
                                  "temperature": info["temperature"], "top_p": info["top_p"],
                                  "template": info["template"]})
        return obs, reward, terminated, truncated, info


def train_one(job: tuple) -> dict:
    algo, seed, timesteps, batch_size, num_iterations = job
    import torch

    torch.set_num_threads(1)
    import datagen_gym  # noqa: F401
    from agents import make_agent

    env = EpisodeReturns(gym.make("DataGen-v0", batch_size=batch_size,
                                  num_iterations=num_iterations))
    agent = make_agent(algo, env, seed=seed, tensorboard_log=str(RESULTS / "tb"))
    start = time.perf_counter()
    agent.learn(timesteps, tb_log_name=f"{algo}_seed{seed}")
    return {"algo": algo, "seed": seed, "episodes": env.episodes,
            "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["random_search", "reinforce", "ppo"])
    parser.add_argument("--timesteps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-iterations", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    jobs = [(a, s, args.timesteps, args.batch_size, args.num_iterations)
            for a in args.algos for s in args.seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(train_one, jobs))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "learning_curves.json").write_text(json.dumps(runs, indent=1))

    cmd = (f"python -m benchmarks.learning_curves --algos {' '.join(args.algos)} "
           f"--timesteps {args.timesteps} --batch-size {args.batch_size} --num-iterations "
           f"{args.num_iterations} --seeds {' '.join(map(str, args.seeds))}")
    lines = ["# Learning curves on DataGen-v0 (task `sentiment`)", "", f"`{cmd}`", "",
             f"Budget per run: {args.timesteps} env steps (target evaluations), episodes of "
             f"{args.num_iterations} steps, batch {args.batch_size}. Episode return = final "
             "accuracy - baseline.", "",
             "| agent | seed | episodes | mean return, first fifth | mean return, last fifth | "
             "best final accuracy | minutes |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        rets = [e["return"] for e in r["episodes"]]
        k = max(1, len(rets) // 5)
        lines.append(f"| {r['algo']} | {r['seed']} | {len(rets)} | "
                     f"{statistics.mean(rets[:k]):+.3f} | {statistics.mean(rets[-k:]):+.3f} | "
                     f"{max(e['metric'] for e in r['episodes']):.3f} | "
                     f"{r['seconds'] / 60:.1f} |")
    lines += ["", "![learning curves](learning_curves.png)", ""]
    (RESULTS / "learning_curves.md").write_text("\n".join(lines))
    print("\n".join(lines))
    plot(runs, args)


def plot(runs: list[dict], args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in runs:
        rets = np.array([e["return"] for e in r["episodes"]])
        x = (np.arange(len(rets)) + 1) * args.num_iterations
        w = min(5, len(rets))
        smooth = np.convolve(rets, np.ones(w) / w, mode="valid")
        line, = ax.plot(x[w - 1:], smooth, label=f"{r['algo']} (seed {r['seed']})")
        ax.scatter(x, rets, s=6, alpha=0.3, color=line.get_color())
    ax.set_xlabel("env steps (target evaluations)")
    ax.set_ylabel("episode return (final accuracy - baseline)")
    ax.set_title("DataGen-v0: episode return over training (moving mean of 5)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "learning_curves.png", dpi=110)


if __name__ == "__main__":
    main()
