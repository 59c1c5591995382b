"""The embedded teacher follows its prompt: a focused Self-Instruct prompt yields mostly the
focused family (the premise of Self-Instruct, and of the env's focus action)."""

import math

import pytest

from benchmarks.teacher_quality import render
from datagen_gym.generators.generator import Generator
from datagen_gym.sampler import Sampler
from datagen_gym.world import checker


def _focus_share(teacher, family, focus):
    gen = Generator(sampler=Sampler(teacher, temperature=1.0, top_p=0.9), seed=0)
    gen.select_template("self_instruct")
    gen.set_focus(focus)
    data = [r for _ in range(2) for r in gen.generate(32)]
    assert data
    return checker.family_counts(data)[family] / len(data)


@pytest.mark.parametrize("family", ["max_number", "sort_numbers"])
def test_focused_prompt_yields_mostly_the_focused_family(teacher, family):
    focused, unfocused = _focus_share(teacher, family, family), _focus_share(teacher, family, None)
    assert focused > 0.5, focused
    assert focused > unfocused + 0.3, (focused, unfocused)


@pytest.mark.parametrize(
    "family", ["sentiment", "topic", "spam", "parity", "animal", "count_words"]
)
def test_focus_moves_the_mix_on_every_classification_skill(teacher, family):
    """The held-out benchmark's skills (and one generative family): a focus at least doubles
    the skill's share (over more records in benchmarks/results/teacher_quality.md: 31-61%
    against 6-12%)."""
    focused, unfocused = _focus_share(teacher, family, family), _focus_share(teacher, family, None)
    assert focused >= max(2 * unfocused, unfocused + 0.15), (focused, unfocused)


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
