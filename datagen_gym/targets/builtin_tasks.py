"""Built-in target tasks: validation sets drawn from the world's held-out seeds."""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen_gym.targets.sklearn_target import SklearnClassifierTarget
from datagen_gym.world.tasks import CLASSIFICATION_TASKS, FAMILY_BY_NAME

VALIDATION_SEED = 987_654  # never used to write the corpus, the seed pool or the episodes


def make_validation_set(task: str, n: int = 200, seed: int = VALIDATION_SEED
                        ) -> list[dict[str, Any]]:
    """``n`` records of a classification family with their gold labels, balanced over labels."""
    if task not in CLASSIFICATION_TASKS:
        raise ValueError(f"unknown built-in task {task!r}; choose one of {list(CLASSIFICATION_TASKS)}")
    family = FAMILY_BY_NAME[task]
    rng = np.random.default_rng([seed, CLASSIFICATION_TASKS.index(task)])
    rows = []
    for i in range(n):
        label = family.labels[i % len(family.labels)]
        x, y = family.sample_example(rng, hard=bool(rng.random() < 0.3), label=label)
        rows.append({"instruction": family.sample_instruction(rng), "input": x, "output": y})
    return rows


def make_builtin_target(task: str, n_validation: int = 200) -> tuple[SklearnClassifierTarget,
                                                                     list[dict[str, Any]]]:
    """The scikit-learn target and its validation set for a built-in task."""
    validation = make_validation_set(task, n_validation)
    return SklearnClassifierTarget(validation), validation
