"""The user's task: the seed tasks that drive generation and the label space records must use.

Self-Instruct starts from human seed tasks *of the task at hand*; a target classifier learns only
from records whose label is one of its classes. A :class:`TaskSpec` holds both, built by
:func:`resolve_task` from what the user brings:

- **seed tasks** (``generation.seed_tasks_path``: JSONL of ``instruction`` / ``input`` /
  ``output``, Self-Instruct's 175-seed role) are used as given;
- without them, a few seeds are **split off the labelled data** (:func:`split_seed_records`):
  records picked by a stable hash of their input, at least one per label, and removed from the
  data the target scores on; a seed never shares its input with a validation or test record
  (checked by :func:`check_disjoint`);
- a **built-in target task** (``rl_tuning.task``) seeds from the embedded world's seed tasks of
  that task's skills (4 per skill), less any that shares an input with its validation or test
  split.

The **label space** (:class:`~datagen_gym.labels.LabelSpace`) is the set of the validation
records' outputs when they look like classes (at most ``MAX_LABELS`` distinct values, each used
by two records or more on average).
Generated labels are normalised (case, whitespace, quotes, surrounding punctuation and markdown,
``Label:``-style prefixes, a trailing explanation) and mapped onto it; a record whose label
maps to none is off-label: the generators drop it and count it (``num_off_label``).

``generation.task_mode`` chooses: ``task`` (all of the above), ``world`` (the embedded world's
mixed seed pool and labels as generated: the benchmark world of ``DataGen-v0``), ``auto``
(``task`` for a real teacher or a seed file, ``world`` for the embedded teacher).
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datagen_gym.labels import LabelSpace, TaskError

if TYPE_CHECKING:
    from datagen_gym.config import Config

logger = logging.getLogger(__name__)

DEFAULT_NUM_SEEDS = 8  # seeds split off labelled data: "a few", Self-Instruct's 175 in miniature
MAX_SEED_SHARE = 0.25  # ... but never more than this share of the user's labelled records


@dataclass
class TaskSpec:
    """What generation follows: the human seed tasks and, for classification, the labels."""

    seed_tasks: list[dict[str, Any]]
    label_space: LabelSpace | None
    source: str  # where the seeds came from, for logs and the summary


def _input_key(record: dict[str, Any]) -> str:
    words = str(record.get("input", "")).casefold().split()
    return " ".join(words)


def _text_key(record: dict[str, Any]) -> str:
    return " ".join(f"{record.get('instruction', '')} {record.get('input', '')}".casefold().split())


def _overlapping(seeds: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]) -> list[int]:
    """Indices of the seeds that share their input (or their whole text) with a record."""
    inputs = {_input_key(r) for r in records} - {""}
    texts = {_text_key(r) for r in records}
    return [i for i, s in enumerate(seeds) if _input_key(s) in inputs or _text_key(s) in texts]


def check_disjoint(seeds: Sequence[dict[str, Any]], **splits: Sequence[dict[str, Any]]) -> None:
    """Raise :class:`TaskError` if a seed shares its input (or its whole text) with a record of
    any split (``validation=..., test=...``): seeds are trained on, the splits are scored."""
    for name, records in splits.items():
        shared = _overlapping(seeds, records)
        if shared:
            i = shared[0]
            text = str(seeds[i].get("input") or seeds[i].get("instruction"))[:60]
            raise TaskError(
                f"seed task {i} ({text!r}) "
                f"also appears in the {name} records; seeds must not overlap what is scored"
            )


def split_seed_records(
    records: Sequence[dict[str, Any]], n: int = DEFAULT_NUM_SEEDS
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split labelled records into (seeds, rest): a few seeds for Self-Instruct, the rest to score.

    The split is a pure function of the records: a stable hash (CRC-32) of each input orders
    them, seeds are taken in that order round-robin over the labels (so every label has a seed
    when there are enough), at most ``n`` and at most a quarter of the records. A record whose
    input occurs more than once is never a seed (its twin would be scored), so seeds and rest
    share no input; :func:`check_disjoint` confirms it."""
    records = [dict(r) for r in records]
    n = min(int(n), int(len(records) * MAX_SEED_SHARE))
    if n < 1:
        raise TaskError(
            f"{len(records)} labelled records are too few to split off seed tasks; give "
            "generation.seed_tasks_path (JSONL of instruction/input/output)"
        )
    texts = Counter(_text_key(r) for r in records)
    inputs = Counter(_input_key(r) for r in records)
    unique = [
        i
        for i, r in enumerate(records)
        if texts[_text_key(r)] == 1 and (not _input_key(r) or inputs[_input_key(r)] == 1)
    ]
    order = sorted(unique, key=lambda i: (zlib.crc32(_text_key(records[i]).encode()), i))
    by_label: dict[str, list[int]] = {}
    for i in order:
        by_label.setdefault(str(records[i].get("output", "")).strip(), []).append(i)
    picked: list[int] = []
    while len(picked) < n and any(by_label.values()):
        for label in sorted(by_label):
            if by_label[label] and len(picked) < n:
                picked.append(by_label[label].pop(0))
    chosen = set(picked)
    seeds = [records[i] for i in sorted(chosen)]
    rest = [r for i, r in enumerate(records) if i not in chosen]
    check_disjoint(seeds, scored=rest)
    return seeds, rest


def as_seed_tasks(
    records: Sequence[dict[str, Any]], label_space: LabelSpace | None
) -> list[dict[str, Any]]:
    """Labelled records as human seed tasks (one instance each, as in Self-Instruct)."""
    return [
        {
            "instruction": str(r["instruction"]),
            "input": str(r.get("input") or ""),
            "output": str(r["output"]),
            "is_classification": bool(r.get("is_classification", label_space is not None)),
            "group": r.get("group"),
            "skill": r.get("skill"),
        }
        for r in records
    ]


def builtin_task_seeds(task: str) -> list[dict[str, Any]]:
    """The embedded world's seed tasks of a built-in task's skills, disjoint from its splits."""
    from datagen_gym.targets.builtin_tasks import make_test_set, make_validation_set, task_skills
    from datagen_gym.world.seed_tasks import make_seed_tasks

    skills = set(task_skills(task))
    seeds = [t for t in make_seed_tasks() if t.get("skill") in skills]
    shared = set(_overlapping(seeds, make_validation_set(task) + make_test_set(task)))
    return [s for i, s in enumerate(seeds) if i not in shared]


def uses_task_seeds(config: Config) -> bool:
    """Whether ``generation.task_mode`` resolves to ``task`` for this config."""
    mode = config.generation.task_mode
    if mode != "auto":
        return mode == "task"
    sampling = config.sampling
    real_teacher = sampling.backend != "embedded" or sampling.teacher is not None
    return real_teacher or config.generation.seed_tasks_path is not None


def resolve_task(
    config: Config,
    validation_dataset: Sequence[dict[str, Any]] | None,
    builtin_task: str | None = None,
    seed_tasks: Sequence[dict[str, Any]] | None = None,
) -> TaskSpec | None:
    """The :class:`TaskSpec` generation follows, or ``None`` for the embedded world.

    ``seed_tasks`` (already split off the labelled data by the caller) win over
    ``generation.seed_tasks_path``; a built-in task (``builtin_task``) seeds from its own tasks.
    A user target without seeds cannot be split here (its validation data is already inside
    it): ``task_mode: task`` then raises, ``auto`` falls back to the world with a warning."""
    if not uses_task_seeds(config):
        return None
    from datagen_gym.generators.base import load_seed_tasks

    labels = LabelSpace.of_records(validation_dataset) if validation_dataset else None
    if seed_tasks is not None:
        tasks, source = list(seed_tasks), "seed tasks split off the labelled data"
    elif config.generation.seed_tasks_path is not None:
        path = config.generation.seed_tasks_path
        tasks, source = load_seed_tasks(path), f"seed tasks of {path}"
    elif builtin_task is not None:
        tasks, source = builtin_task_seeds(builtin_task), f"the built-in task {builtin_task!r}"
    elif config.generation.task_mode == "task":
        raise TaskError(
            "generation.task_mode 'task' needs seed tasks: set generation.seed_tasks_path, or "
            "split them off your labelled data with datagen_gym.task.split_seed_records before "
            "building the target (the CLI does this for rl_tuning.validation_data_path)"
        )
    else:
        logger.warning(
            "no seed tasks of your task (generation.seed_tasks_path): generating from the "
            "embedded world's seed tasks; give seed tasks so that the teacher writes your task"
        )
        return None
    if validation_dataset:
        check_disjoint(tasks, validation=validation_dataset)
    return TaskSpec(as_seed_tasks(tasks, labels), labels, source)
