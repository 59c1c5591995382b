"""The embedded teacher follows its prompt: a focused Self-Instruct prompt yields mostly the
focused family (the premise of Self-Instruct, and of the env's focus action)."""

import math

from benchmarks.teacher_quality import render
from datagen_gym.generators.generator import Generator
from datagen_gym.sampler import Sampler
from datagen_gym.targets.builtin_tasks import ALL_CLASSIFICATION, task_skills
from datagen_gym.world import checker
from datagen_gym.world.tasks import FAMILIES


def _family_counts(teacher, focus, rounds):
    gen = Generator(sampler=Sampler(teacher, temperature=1.0, top_p=0.9), seed=0)
    gen.select_template("self_instruct")
    gen.set_focus(focus)
    data = [r for _ in range(rounds) for r in gen.generate(32)]
    assert data
    return checker.family_counts(data), len(data)


def test_a_focus_makes_most_records_of_the_focused_family(teacher):
    """Over every family, most records of a focused batch are of the focused family (the
    issue's bar: 60%; benchmarks/results/teacher_quality.md measures it on more records), and
    each of the held-out benchmark's classification skills at least doubles its share."""
    unfocused, n_unfocused = _family_counts(teacher, None, rounds=2)
    focused = records = 0
    for family in FAMILIES:
        counts, n = _family_counts(teacher, family.name, rounds=1)
        focused, records = focused + counts[family.name], records + n
        if family.name in task_skills(ALL_CLASSIFICATION):
            share, before = counts[family.name] / n, unfocused[family.name] / n_unfocused
            assert share >= max(2 * before, before + 0.15), (family.name, share, before)
    assert focused / records >= 0.6, (focused, records)


def test_report_renders():
    fam = {"focused": 3, "records": 4, "share": 0.75, "unknown": 0, "share_without_focus": 0.1}
    corr = {"correct": 1, "records": 2, "accuracy": 0.5}
    total = dict(corr, unique_instructions=1.0, distinct_records=2)
    teacher = {
        "parameters": 1e6,
        "vocab": 10,
        "seconds": 1.0,
        "focus": {"a": fam, "all": fam},
        "correctness": {"1.0": {"a": corr, "unknown": dict(corr, accuracy=math.nan), "all": total}},
        "instances": {"1.0": {"a": 0.5, "all": 0.5}},
    }
    text = render(
        {
            "command": "python -m benchmarks.teacher_quality",
            "machine": "m",
            "seeds": [0],
            "records": 4,
            "top_p": 0.9,
            "temperatures": [1.0],
            "families": ["a"],
            "teachers": {"old": teacher, "new": teacher},
        }
    )
    assert "| a | 3 / 4 | 75% | 3 / 4 | 75% | 10% |" in text
    assert "| a | 1/2 (50%) | 1/2 (50%) |" in text
