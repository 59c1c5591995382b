"""The human seed pool of the embedded world (Self-Instruct's 175 seed tasks, in miniature).

The generators read it as data, from :data:`SEED_TASKS_FILE` (as Self-Instruct ships its
``seed_tasks.jsonl``), so that they do not import the world that is built on their prompts;
:func:`make_seed_tasks` is its source, and ``python -m datagen_gym.world.seed_tasks`` writes
the file again after a change to the task families (a test checks the two agree).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from datagen_gym.world.tasks import FAMILIES

SEED_POOL_SEED = 1234
SEED_TASKS_FILE = Path(__file__).resolve().parent.parent / "generators" / "seed_tasks.jsonl"


def make_seed_tasks(per_family: int = 4, seed: int = SEED_POOL_SEED) -> list[dict[str, Any]]:
    """A fixed pool of human-written tasks, each with one instance, as Self-Instruct starts from.

    Each task: ``instruction``, ``input``, ``output``, ``is_classification``, ``group`` (the
    family group, which focuses the group-specific Self-Instruct templates) and ``skill`` (the
    family's name, which the env's focus action selects). Half of each
    family's tasks carry their input inside the instruction (``input`` is then empty).
    """
    rng = np.random.default_rng(seed)
    tasks = []
    for family in FAMILIES:
        n_inline = per_family // 2
        picks = rng.choice(len(family.all_instructions), size=per_family - n_inline, replace=False)
        examples = [(family.all_instructions[int(i)],) + family.sample_example(rng) for i in picks]
        for _ in range(n_inline):
            inst, y = family.sample_inline(rng)
            examples.append((inst, "", y))
        for inst, x, y in examples:
            tasks.append(
                {
                    "instruction": inst,
                    "input": x,
                    "output": y,
                    "is_classification": family.is_classification,
                    "group": family.group,
                    "skill": family.name,
                }
            )
    return tasks


def write_seed_tasks_file(path: Path = SEED_TASKS_FILE) -> Path:
    """Write :func:`make_seed_tasks` as JSON lines at ``path``."""
    lines = [json.dumps(task, ensure_ascii=False) for task in make_seed_tasks()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_seed_tasks_file())
