"""One episode of DataGen-v0 on the embedded default with random actions.

python -m datagen_gym.demo [--steps 10] [--batch-size 64] [--task sentiment] [--seed 0]
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import datagen_gym  # noqa: F401  (registers DataGen-v0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    env = gym.make(
        "DataGen-v0", num_iterations=args.steps, batch_size=args.batch_size, task=args.task
    )
    env.action_space.seed(args.seed)
    _, info = env.reset(seed=args.seed)
    print(f"baseline {info['reward_metric']} = {info['metric']:.3f}")
    print(
        f"{'step':>4} {'temp':>5} {'top_p':>5} {'template':<29} {'kept':>5} {'correct':>7} "
        f"{'metric':>7} {'reward':>7} {'gen s':>6} {'target s':>8}"
    )
    truncated, t = False, 0
    while not truncated:
        _, reward, _, truncated, info = env.step(env.action_space.sample())
        t += 1
        seconds = env.unwrapped.last_step_seconds
        print(
            f"{t:>4} {info['temperature']:>5.2f} {info['top_p']:>5.2f} {info['template']:<29} "
            f"{info['kept_fraction']:>5.2f} {info['correctness']:>7.2f} {info['metric']:>7.3f} "
            f"{reward:>+7.3f} {seconds['time_generation_s']:>6.2f} "
            f"{seconds['time_target_s']:>8.2f}"
        )
    example = info["examples"][0] if info["examples"] else None
    print(
        f"final {info['reward_metric']} = {info['metric']:.3f} "
        f"(baseline {info['baseline_metric']:.3f}); {info['dataset_size']} records generated"
    )
    if example:
        print("example record:", example)


if __name__ == "__main__":
    main()
