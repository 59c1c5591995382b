"""The human seed pool of the embedded world (Self-Instruct's 175 seed tasks, in miniature)."""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen_gym.world.tasks import FAMILIES

SEED_POOL_SEED = 1234


def make_seed_tasks(per_family: int = 3, seed: int = SEED_POOL_SEED) -> list[dict[str, Any]]:
    """A fixed pool of human-written tasks, each with one instance, as Self-Instruct starts from.

    Each task: ``instruction``, ``input``, ``output``, ``is_classification`` and ``group`` (the
    family group, which focuses the group-specific Self-Instruct templates).
    """
    rng = np.random.default_rng(seed)
    tasks = []
    for family in FAMILIES:
        picks = rng.choice(len(family.all_instructions), size=per_family, replace=False)
        for i in picks:
            x, y = family.sample_example(rng)
            tasks.append({"instruction": family.all_instructions[int(i)], "input": x, "output": y,
                          "is_classification": family.is_classification,
                          "group": family.group})
    return tasks
