import numpy as np
import pytest

from datagen_gym.generators import prompts
from datagen_gym.world import checker
from datagen_gym.world.corpus import EOS, bootstrap_parts, evolve, iter_documents, make_document
from datagen_gym.world.seed_tasks import make_seed_tasks
from datagen_gym.world.tasks import (
    CLASSIFICATION_TASKS,
    FAMILIES,
    MODIFIERS,
    expected_output,
    identify,
)


def test_enough_families_of_each_kind():
    assert len(FAMILIES) >= 8
    assert sum(f.is_classification for f in FAMILIES) >= 4
    assert sum(not f.is_classification for f in FAMILIES) >= 4


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_family_examples_are_solvable(family):
    rng = np.random.default_rng(0)
    for _ in range(50):
        inst = family.sample_instruction(rng)
        assert identify(inst)[0] is family
        x, y = family.sample_example(rng, hard=bool(rng.random() < 0.5))
        assert expected_output(inst, x) == y
        if family.is_classification:
            assert y in family.labels
    for label in family.labels:
        assert family.sample_example(rng, label=label)[1] == label
    for _ in range(20):
        inst, y = family.sample_inline(rng)
        assert identify(inst)[0] is family
        assert expected_output(inst, "") == y
        assert expected_output(inst, "unexpected input") is None


def test_solvers_on_known_answers():
    assert expected_output("Add the two numbers.", "12 and 7") == "19"
    assert expected_output("Reverse the order of the words in the sentence.", "a b c") == "c b a"
    assert expected_output("Tell whether the number is even or odd.", "37") == "odd"
    assert (
        expected_output("Add the two numbers. Write the answer in capital letters.", "1 and 2")
        == "3"
    )
    assert (
        expected_output(
            "Is the following review positive or negative? Write the answer in capital letters.",
            "The food was delicious.",
        )
        == "POSITIVE"
    )
    assert (
        expected_output(
            "Sort the numbers in ascending order. Think step by step before "
            "giving the final answer.",
            "3, 1, 2",
        )
        == "Let us think step by step. The answer is 1, 2, 3."
    )
    assert expected_output("Write a poem about the sea.", "") is None
    assert expected_output("Add the two numbers.", "twelve and seven") is None
    assert (
        expected_output('Is the review "The food was awful." positive or negative?', "")
        == "negative"
    )
    assert (
        expected_output('Make "red sky" all caps. Put the answer in double quotes.', "")
        == '"RED SKY"'
    )


def test_checker():
    good = {
        "instruction": "Classify the message as spam or not spam.",
        "input": "Free cash prize now",
        "output": "spam",
    }
    bad = dict(good, output="not spam")
    unknown = dict(good, instruction="Write a poem about the sea.")
    assert checker.is_correct(good) and not checker.is_correct(bad)
    assert not checker.is_correct(unknown)
    assert checker.correctness([good, bad, unknown, good]) == 0.5
    assert np.isnan(checker.correctness([]))
    assert checker.family_counts([good, unknown]) == {"spam": 1, "unknown": 1}


def test_evolve_operations_change_instruction_in_known_ways():
    rng = np.random.default_rng(0)
    inst = "Add the two numbers."
    for op in ("add_constraints", "deepen", "reasoning", "complicate_input"):
        out = evolve(op, inst, rng)
        family, mods = identify(out)
        assert family.name == "addition" and mods and mods[0].operation == op
    assert evolve("concretize", inst, rng) != inst
    assert identify(evolve("concretize", inst, rng))[0].name == "addition"
    breadth = evolve("breadth", inst, rng)
    assert identify(breadth)[0].group == "math" and identify(breadth)[0].name != "addition"


def _split(doc, marker):
    i = doc.index(marker) + len(marker)
    return doc[:i], doc[i:]


def test_corpus_documents_parse_back_with_the_generators_parsers():
    """The teacher learns exactly the formats the generators parse."""
    rng = np.random.default_rng(1)
    for _ in range(30):
        prompt, continuation = bootstrap_parts(rng)
        assert prompt.startswith(tuple(prompts.SELF_INSTRUCT_HEADERS.values()))
        assert prompt.endswith(f"\n{prompt.count(chr(10))}.")  # the next number to write
        new = prompts.parse_bootstrap(continuation)
        assert new and all(identify(i)[0] is not None for i in new)

        doc = make_document("input_first", rng)
        head, cont = _split(doc, "Example 1\n")
        inst = head.split("Task: ")[1].split("\n")[0]
        assert head == prompts.input_first_prompt(inst)
        pairs = prompts.parse_input_first(cont)
        assert pairs and all(expected_output(inst, x) == y for x, y in pairs)

        doc = make_document("output_first", rng)
        head, cont = _split(doc, "Class label:")
        inst = head.split("Task: ")[1].split("\n")[0]
        pairs = prompts.parse_output_first(cont)
        assert pairs and all(expected_output(inst, x) == y for x, y in pairs)

        doc = make_document("classification_check", rng)
        inst, answer = doc.split("\n\nTask: ")[-1].split("\nIs it classification?")
        assert prompts.parse_classification_check(answer) == identify(inst)[0].is_classification

        doc = make_document("evol_depth", rng)
        head, cont = _split(doc, "#Rewritten Prompt#:\n")
        assert identify(prompts.parse_evol(cont))[0] is not None


def test_corpus_stream_is_reproducible():
    a, b = iter_documents(7), iter_documents(7)
    docs = [next(a) for _ in range(20)]
    assert docs == [next(b) for _ in range(20)]
    assert all(d.endswith(EOS) for d in docs)


def test_seed_tasks():
    tasks = make_seed_tasks()
    assert len(tasks) == 4 * len(FAMILIES)
    assert sum(t["input"] == "" for t in tasks) == 2 * len(FAMILIES)  # inline tasks
    assert all(checker.is_correct(t) for t in tasks)
    assert {t["group"] for t in tasks} == {"classification", "text", "math"}
    assert make_seed_tasks() == tasks


def test_modifier_phrases_are_distinct():
    assert len({m.phrase for m in MODIFIERS}) == len(MODIFIERS)
    assert set(CLASSIFICATION_TASKS) >= {"sentiment", "topic", "spam"}


def test_the_shipped_seed_task_file_is_the_world_pool():
    """The generators read the embedded pool from a data file (they do not import the world);
    ``python -m datagen_gym.world.seed_tasks`` writes it from make_seed_tasks."""
    from datagen_gym.generators.base import load_seed_tasks

    shipped = load_seed_tasks(None)
    assert shipped == make_seed_tasks()
    assert [list(t) for t in shipped] == [list(t) for t in make_seed_tasks()]  # key order too
