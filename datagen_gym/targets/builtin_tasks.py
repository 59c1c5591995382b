"""Built-in target tasks: validation and test sets drawn from the world's held-out seeds.

A built-in task names one classification family (``sentiment``, ``topic``, ``spam``,
``parity``, ``animal``) or several joined by ``+`` (``"sentiment+topic+spam"``), each family
being one *skill* of the task; ``"classification"`` names all five. Every record carries its
``skill``.

Splits. The validation set (the reward's) and the test set (reported, never rewarded) are
disjoint by construction: each family's inputs are partitioned by a stable hash of the
normalised input text (``"The mouse"`` and ``"mouse"`` fall on the same side), validation draws
from one half and test from the other. So a test input never appeared in validation, and a
policy that overfits the validation set is caught by the test split.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from datagen_gym.targets.sklearn_target import SklearnClassifierTarget
from datagen_gym.world.tasks import CLASSIFICATION_TASKS, FAMILY_BY_NAME

VALIDATION_SEED = 987_654  # never used to write the corpus, the seed pool or the episodes
TEST_SEED = 456_789  # the test split's draws; the input hash keeps it disjoint from validation
ALL_CLASSIFICATION = "classification"
SPLITS = ("validation", "test")


def task_skills(
    task: str, families: tuple[str, ...] = CLASSIFICATION_TASKS, all_name: str = ALL_CLASSIFICATION
) -> tuple[str, ...]:
    """The skills (families) of a task name: one of ``families``, several joined by ``+``, or
    ``all_name`` for all of them; in the order given."""
    if not isinstance(task, str) or not task.strip():
        raise ValueError(f"task must be a non-empty string, got {task!r}")
    if task.strip() == all_name:
        return families
    names = tuple(s.strip() for s in task.split("+"))
    for name in names:
        if name not in families:
            raise ValueError(
                f"unknown built-in task {name!r} in task={task!r}; choose one of "
                f"{list(families)}, '{all_name}' or several joined by '+'"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"task={task!r} names a skill twice")
    return names


def split_of(input_text: str) -> str:
    """The split an input belongs to: a stable hash of its normalised text."""
    words = input_text.lower().split()
    if words[:1] == ["the"]:
        words = words[1:]
    return SPLITS[zlib.crc32(" ".join(words).encode()) % 2]


def _draw(skill: str, n: int, split: str, seed: int) -> list[dict[str, Any]]:
    family = FAMILY_BY_NAME[skill]
    rng = np.random.default_rng([seed, CLASSIFICATION_TASKS.index(skill)])
    rows: list[dict[str, Any]] = []
    while len(rows) < n:
        label = family.labels[len(rows) % len(family.labels)]
        x, y = family.sample_example(rng, hard=bool(rng.random() < 0.3), label=label)
        if split_of(x) == split:
            rows.append(
                {
                    "instruction": family.sample_instruction(rng),
                    "input": x,
                    "output": y,
                    "skill": skill,
                }
            )
    return rows


def make_validation_set(
    task: str, n: int = 200, seed: int = VALIDATION_SEED, split: str = "validation"
) -> list[dict[str, Any]]:
    """``n`` records per skill of ``task`` with their gold labels, balanced over labels.

    ``split="test"`` draws from the other half of the input space (see the module docstring);
    :func:`make_test_set` does that with the test seed.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [row for skill in task_skills(task) for row in _draw(skill, n, split, seed)]


def make_test_set(task: str, n: int = 200, seed: int = TEST_SEED) -> list[dict[str, Any]]:
    """The test split of ``task``: ``n`` records per skill, no input shared with validation."""
    return make_validation_set(task, n, seed=seed, split="test")


def make_builtin_target(
    task: str, n_validation: int = 200, n_test: int = 200
) -> tuple[SklearnClassifierTarget, list[dict[str, Any]]]:
    """The scikit-learn target (scoring validation, and test unless ``n_test=0``) and its
    validation set."""
    validation = make_validation_set(task, n_validation)
    test = make_test_set(task, n_test) if n_test else None
    return SklearnClassifierTarget(validation, test_dataset=test), validation
