"""What skills and the test split add to a DataGen-v0 step.

    python -m benchmarks.skills_cost [--episodes 2] [--batch-size 64] [--repeats 5]

Runs DataGen-v0 (the default ``sentiment`` task) for a few episodes and keeps every training
set its target saw. Then, on exactly those training sets, interleaved and repeated, it times the
built-in target as it is now (per-skill metrics and a 200-record test split scored next to the
200-record validation split) against the seed-era target (validation split only, no skills):
same data, same process, so the ratio is the cost of the new metrics. The step-time ratio adds
the measured generation time (unchanged by skills) to both. The five-skill target of
DataGen-Skills-v0 is timed the same way for reference. Writes benchmarks/results/skills_cost.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def collect_training_sets(
    episodes: int, batch_size: int, seed: int = 0
) -> tuple[list[list[dict[str, Any]]], float]:
    """The training sets DataGen-v0's target saw, and the median generation time per step."""
    import gymnasium as gym

    import datagen_gym  # noqa: F401
    from datagen_gym.targets import make_builtin_target

    target, validation = make_builtin_target("sentiment")
    seen: list[list[dict[str, Any]]] = []

    def recording_target(data: list[dict[str, Any]]) -> dict[str, float]:
        seen.append(list(data))
        return target(data)

    env = gym.make(
        "DataGen-v0",
        target_model=recording_target,
        validation_dataset=validation,
        batch_size=batch_size,
        num_iterations=10,
    )
    env.action_space.seed(seed)
    gen = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        done = False
        while not done:
            _, _, _, done, info = env.step(env.action_space.sample())
            gen.append(env.unwrapped.last_step_seconds["time_generation_s"])
    return seen, statistics.median(gen)


def time_targets(
    targets: dict[str, Callable], data: list[list[dict[str, Any]]], repeats: int
) -> dict[str, float]:
    """Median seconds per call of each target over the same training sets, interleaved."""
    times: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(repeats):
        for train in data:
            for name, target in targets.items():
                t0 = time.perf_counter()
                target(train)
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "skills_cost.md")
    args = parser.parse_args(argv)

    from datagen_gym.targets import SklearnClassifierTarget, make_builtin_target
    from datagen_gym.targets.builtin_tasks import make_validation_set

    data, t_gen = collect_training_sets(args.episodes, args.batch_size)
    now, _ = make_builtin_target("sentiment")
    seed_era = SklearnClassifierTarget(
        [
            {k: r[k] for k in ("instruction", "input", "output")}
            for r in make_validation_set("sentiment")
        ]
    )
    five, _ = make_builtin_target("classification")
    t = time_targets({"seed_era": seed_era, "now": now, "five_skills": five}, data, args.repeats)
    step_ratio = (t_gen + t["now"]) / (t_gen + t["seed_era"])
    five_ratio = (t_gen + t["five_skills"]) / (t_gen + t["seed_era"])
    command = (
        f"python -m benchmarks.skills_cost --episodes {args.episodes} "
        f"--batch-size {args.batch_size} --repeats {args.repeats}"
    )
    lines = [
        "# What skills and the test split cost a DataGen-v0 step",
        "",
        f"`{command}` on {platform.machine()}, {len(data)} training sets x {args.repeats} "
        "repeats, interleaved. Medians.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| generation per step (unchanged) | {t_gen:.3f} s |",
        f"| target, seed era (validation only) | {t['seed_era'] * 1000:.1f} ms |",
        f"| target now (per-skill metrics + 200-record test split) | {t['now'] * 1000:.1f} ms |",
        f"| target ratio now / seed era | {t['now'] / t['seed_era']:.2f} |",
        f"| **step ratio now / seed era** (goal <= 1.05) | **{step_ratio:.3f}** |",
        f"| five-skill target (1000 validation + 1000 test records) | "
        f"{t['five_skills'] * 1000:.1f} ms |",
        f"| step ratio five-skill / seed era | {five_ratio:.3f} |",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
