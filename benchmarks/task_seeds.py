"""Seeds of the user's task against the embedded world's mixed pool (datagen_gym.task).

    OMP_NUM_THREADS=1 python -m benchmarks.task_seeds --out benchmarks/results/task_seeds.md

A user's sentiment task: ``--labelled`` records of the built-in sentiment task (its validation
draw) are split into seeds (``split_seed_records``) and the scored validation set; the test
split is the task's own. The same env, teacher, settings and actions run with
``generation.task_mode`` ``task`` (the user's seeds, the label space) and ``world`` (the embedded
world's 44 mixed seed tasks, labels as generated), over ``--seeds``. Reported per mode: records
per step, the share of records whose output is a label of the task, off-label instances
dropped, and the target's final validation and test accuracy against its seed-only baseline.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from benchmarks.common import command_line

ACTIONS = ([1, 1, 0], [1, 1, 1], [1, 1, 4])  # self_instruct, ..._classification, evol_add_c.


def run(mode: str, seed: int, labelled: int, batch: int) -> dict[str, float]:
    import datagen_gym  # noqa: F401  (registers the envs)
    from datagen_gym import Config
    from datagen_gym.targets import SklearnClassifierTarget, make_test_set, make_validation_set
    from datagen_gym.task import split_seed_records

    seeds, validation = split_seed_records(make_validation_set("sentiment", n=labelled))
    test = make_test_set("sentiment", n=100)
    env = gym.make(
        "DataGen-v0",
        target_model=SklearnClassifierTarget(validation, test_dataset=test),
        validation_dataset=validation,
        config=Config().replace(generation={"task_mode": mode}),
        seed_tasks=seeds if mode == "task" else None,
        batch_size=batch,
        num_iterations=len(ACTIONS),
    ).unwrapped
    _, info = env.reset(seed=seed)
    off_label = 0
    for action in ACTIONS:
        _, _, _, _, info = env.step(np.array(action))
        off_label += info["num_off_label"]
    records = env.dataset
    on_task = sum(r["output"] in ("positive", "negative") for r in records)
    return {
        "records": len(records) / len(ACTIONS),
        "on_task": on_task / max(1, len(records)),
        "off_label": off_label,
        "validation": info["metric"],
        "test": info["test_metric"],
        "baseline": info["baseline_metric"],
        "baseline_test": env._baseline["test"].get("accuracy", float("nan")),
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--labelled", type=int, default=60, help="labelled records (both labels)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default=None, help="write the Markdown report here")
    args = p.parse_args(argv)
    rows = []
    for mode in ("task", "world"):
        runs = [run(mode, s, args.labelled, args.batch_size) for s in args.seeds]
        mean = {k: statistics.fmean(r[k] for r in runs) for k in runs[0]}
        sd = {k: statistics.pstdev(r[k] for r in runs) for k in ("validation", "test")}
        rows.append(
            f"| {mode} | {mean['records']:.1f} | {mean['on_task']:.2f} | {mean['off_label']:.1f} "
            f"| {mean['baseline']:.3f} | {mean['validation']:.3f} +- {sd['validation']:.3f} "
            f"| {mean['baseline_test']:.3f} | {mean['test']:.3f} +- {sd['test']:.3f} |"
        )
    lines = [
        "# Seeds of the user's task vs the embedded world's pool",
        "",
        f"`OMP_NUM_THREADS=1 {command_line('benchmarks.task_seeds', argv)}` on 2 CPU cores, "
        "the embedded teacher.",
        "",
        f"The user's task: sentiment, {args.labelled} labelled records, seeds split off them; "
        f"{len(ACTIONS)} steps of {args.batch_size} records (self_instruct, "
        f"self_instruct_classification, evol_add_constraints), seeds {args.seeds}; mean "
        "(+- population sd) over seeds. *on task*: share of records labelled positive/negative.",
        "",
        "| task_mode | records / step | on task | off-label dropped | baseline val | final val "
        "| baseline test | final test |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
