"""Generators: parsing, filtering and elimination against a scripted backend (to isolate the
logic), and end to end on the embedded teacher."""

import re

import pytest

from datagen_gym import Config, Sampler
from datagen_gym.generators import prompts
from datagen_gym.generators.evol_instruct import instruction_failure, response_failure
from datagen_gym.generators.generator import Generator
from datagen_gym.generators.instruction_filters import instruction_rejection, keep_instance
from datagen_gym.generators.self_instruct import SelfInstructGenerator
from datagen_gym.world import checker
from datagen_gym.world.seed_tasks import make_seed_tasks

BLACKLIST = Config().generation.blacklist


class ScriptedBackend:
    """Answers each prompt kind with a fixed continuation, and records the prompts."""

    deterministic = True

    def __init__(self, bootstrap="", evolved=None, response="Input: 1 and 2\nOutput: 3\n"):
        self.bootstrap, self.evolved, self.response = bootstrap, evolved, response
        self.prompts = []

    def generate(self, prompt_list, *, temperature, top_p, max_new_tokens, seed=None):
        self.prompts.extend(prompt_list)
        out = []
        for p in prompt_list:
            if p.startswith(prompts.CLASSIFICATION_CHECK_HEADER):
                out.append(" Yes" if "spam" in p.split("Task: ")[-1] else " No")
            elif p.startswith(prompts.OUTPUT_FIRST_HEADER):
                out.append(" spam\nInput: free cash\nClass label: not spam\nInput: lunch at noon\n")
            elif p.startswith(prompts.INPUT_FIRST_HEADER):
                out.append(self.response)
            elif p.startswith("I want you act"):
                given = re.search(r"#:\n(.*)\n#(Rewritten|Created) Prompt#", p, re.S).group(1)
                out.append(self.evolved(given) if self.evolved else given + " Check twice.")
            else:
                out.append(self.bootstrap)
        return out


def test_parsers():
    assert prompts.parse_bootstrap(
        " Add the two numbers.\n10. Is this email spam or not spam?"
        "\n11 . sort the numbers.\n\n12. ignored"
    ) == ["Add the two numbers.", "Is this email spam or not spam?", "Sort the numbers."]
    assert prompts.parse_bootstrap(" A b c d.\n16. stop here") == ["A b c d."]
    assert prompts.parse_input_first(
        "Input: 1 and 2\nOutput: 3\n\nExample 2\nInput: 4 and 5\nOutput: 9\n"
    ) == [("1 and 2", "3"), ("4 and 5", "9")]
    assert prompts.parse_input_first("Output: 7\n") == [("", "7")]
    assert prompts.parse_output_first(
        " spam\nInput: free cash\nClass label: not spam\nInput: see you\n"
    ) == [("free cash", "spam"), ("see you", "not spam")]
    assert prompts.parse_classification_check(" Yes\n") is True
    assert prompts.parse_classification_check(" No") is False


def test_instruction_rules():
    ok = "Classify the sentiment of the review."
    assert instruction_rejection(ok, BLACKLIST) is None
    assert instruction_rejection("Add numbers.", BLACKLIST) == "too_short"
    assert instruction_rejection(" ".join(["word"] * 151), BLACKLIST) == "too_long"
    assert instruction_rejection("Draw a picture of the sea please.", BLACKLIST) == "blacklist"
    assert instruction_rejection("Plot the data in this table.", BLACKLIST) == "blacklist"
    assert instruction_rejection("Tell me how to go to the station.", BLACKLIST) == "blacklist"
    assert instruction_rejection("Write a program that adds numbers.", BLACKLIST) == "program"
    assert instruction_rejection("- Reverse the words here.", BLACKLIST) == "punctuation"
    assert instruction_rejection("Écris une phrase en français.", BLACKLIST) == "non_ascii"
    assert instruction_rejection("Find the mapping between names here.", BLACKLIST) is None
    assert keep_instance("Add.", "1 and 2", "3")
    assert not keep_instance("Add.", "1 and 2", " ")
    assert not keep_instance("Add.", "same", "same")
    assert not keep_instance("Add.", "1 and 2", "3\nInput: 4")


def test_self_instruct_prompt_uses_six_human_and_two_machine_tasks():
    backend = ScriptedBackend(
        bootstrap=" Would a careful reader call this note spam or not spam?\n"
        "10. Multiply each pair of integers and report it.\n"
    )
    gen = SelfInstructGenerator(sampler=Sampler(backend), seed=0)
    human = {t["instruction"] for t in gen.pool.human}
    first = gen.bootstrap_prompts(1)[0]
    listed = re.findall(r"^\d+\. (.*)$", first, re.M)
    assert len(listed) == 8 and set(listed) <= human
    gen.pool.add_machine(
        [
            {"instruction": f"Machine task number {i} here.", "is_classification": False}
            for i in range(3)
        ]
    )
    listed = re.findall(r"^\d+\. (.*)$", gen.bootstrap_prompts(1)[0], re.M)
    assert sum(i.startswith("Machine task") for i in listed) == 2
    assert sum(i in human for i in listed) == 6
    assert first.startswith("Come up with a series of tasks:") and first.endswith("\n9.")


def test_self_instruct_filters_and_instance_order():
    backend = ScriptedBackend(
        bootstrap=(
            " Would a careful reader call this note spam or not spam?\n"
            # duplicate: ROUGE-L rejects
            "10. Would a careful reader call this note spam or not spam?\n"
            "11. Draw a map of the city streets.\n"  # blacklist
            "12. Multiply each pair of integers and report it.\n"
        )
    )
    gen = SelfInstructGenerator(sampler=Sampler(backend), seed=0)
    res = gen.generate_from_seed(4)
    kinds = [r["instruction"] for r in res]
    assert set(kinds) == {
        "Would a careful reader call this note spam or not spam?",
        "Multiply each pair of integers and report it.",
    }
    assert res.num_candidates >= 4 and res.kept_fraction < 1.0
    spam = [r for r in res if "spam" in r["instruction"]]
    assert {r["output"] for r in spam} == {"spam", "not spam"}  # output-first for classification
    assert all(r["is_classification"] for r in spam)
    add = [r for r in res if "Multiply" in r["instruction"]][0]
    assert (add["input"], add["output"]) == ("1 and 2", "3")
    for r in res:
        assert r["method"] == "self_instruct" and r["template"] == "self_instruct"
        assert {"temperature", "top_p", "step"} <= set(r)
    assert {t["instruction"] for t in gen.pool.machine} == set(kinds)
    # The pool now holds them: the same continuation again yields nothing new.
    again = gen.generate_from_seed(4)
    assert len(again) == 0 and again.num_kept == 0 and again.num_candidates > 0


def test_evol_elimination_rules():
    assert instruction_failure("Add the numbers.", " add the  numbers. ") == "no_change"
    assert instruction_failure("Add.", "") == "empty"
    assert instruction_failure("Add.", "Rewrite the #Rewritten Prompt# now") == "copied_prompt"
    assert instruction_failure("Add.", "As the given prompt says, add.") == "copied_prompt"
    assert instruction_failure("Add.", "Add the two numbers twice.") is None
    assert response_failure("Sorry, I cannot do that.") == "refusal"
    assert response_failure("Sorry " + "word " * 100) is None
    assert response_failure("the, of and; it.") == "stop_words_only"
    assert response_failure("42") is None


def test_evol_generate_eliminates_failures():
    def evolved(given):
        if "spam" in given:
            return given  # no change
        if "sentiment" in given or "review" in given:
            return "Rewrite the given prompt."  # copied prompt words
        return given + " Check your answer twice."

    backend = ScriptedBackend(evolved=evolved)
    gen = Generator(sampler=Sampler(backend), seed=1)
    gen.select_template("evol_deepen")
    res = gen.generate(20)
    assert res.num_candidates == 10 and 0 < res.num_kept < 10
    for r in res:
        assert r["instruction"].endswith("Check your answer twice.")
        assert r["method"] == "evol_instruct" and r["template"] == "evol_deepen"
        assert r["operation"] == "deepen" and r["evolved_from"] in r["instruction"]
    assert len(gen.pool.machine) == res.num_kept
    backend.response = "Output: Sorry, I cannot answer that.\n"
    assert len(gen.generate(10)) == 0


def test_generator_switches_method_with_template():
    gen = Generator(sampler=Sampler(ScriptedBackend()), seed=0)
    assert gen.active is gen.self_instruct
    gen.select_template("evol_breadth")
    assert gen.active is gen.evol_instruct and gen.evol_instruct.template.operation == "breadth"
    gen.set_method("self_instruct")
    assert gen.template.method == "self_instruct"
    gen.set_sampling_params(temperature=0.4, top_p=0.6)
    assert gen.get_sampling_params() == {"temperature": 0.4, "top_p": 0.6}
    with pytest.raises(ValueError, match="unknown template"):
        gen.select_template("nope")
    with pytest.raises(ValueError, match=r"template index must be in \[0, 9\]"):
        gen.select_template(10)


def test_end_to_end_on_teacher(teacher):
    sampler = Sampler(teacher, temperature=0.8, top_p=0.95)
    gen = Generator(sampler=sampler, seed=0)
    gen.select_template("self_instruct_classification")
    res = gen.generate(24, step=3)
    assert 0 < len(res) <= 24 and res.num_kept > 0
    assert all(r["step"] == 3 and r["temperature"] == 0.8 for r in res)
    assert checker.correctness(res) > 0.0
    gen.select_template("evol_add_constraints")
    evo = gen.generate(16)
    assert evo.num_candidates > 0
    assert all(r["method"] == "evol_instruct" for r in evo)


def test_correctness_falls_with_temperature(teacher):
    """The trade-off the agent must learn: hotter sampling writes more wrong answers."""

    def correctness_at(temperature, top_p):
        gen = Generator(sampler=Sampler(teacher, temperature=temperature, top_p=top_p), seed=1)
        gen.select_template("self_instruct_classification")
        records = [r for _ in range(2) for r in gen.generate(48)]
        return checker.correctness(records)

    assert correctness_at(0.5, 0.9) > correctness_at(1.8, 1.0)


def test_custom_seed_tasks(tmp_path):
    import json

    path = tmp_path / "seeds.jsonl"
    with open(path, "w") as fh:
        for t in make_seed_tasks()[:5]:
            fh.write(
                json.dumps(
                    {"instruction": t["instruction"], "input": t["input"], "output": t["output"]}
                )
                + "\n"
            )
    cfg = Config.from_dict({"generation": {"seed_tasks_path": str(path)}})
    gen = Generator(cfg, sampler=Sampler(ScriptedBackend()))
    assert len(gen.pool.human) == 5
