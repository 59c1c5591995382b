"""Parsers for real instruct models (``datagen_gym.generators.parsing``): they read what chat
models write (preambles, their own numbering, markdown, quotes, labels spelled their way, bare
answers, trailing commentary) and, on text in the papers' formats, return exactly what the
papers' parsers (``prompts.parse_*``) return. A completion model (the embedded teacher) is read
by the papers' parsers alone, so its records do not change.

The real-model strings below are SmolLM2-135M-Instruct replies to the generators' prompts (the
first ones observed through ``sampling.teacher: smollm2``) and replies written in the style of
small instruct models; each one is misread by the papers' parsers."""

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from support.recording import Recording

from datagen_gym import Config, Sampler
from datagen_gym.backends.base import Completion, finish_reason
from datagen_gym.generators import chat_prompts, parsing, prompts
from datagen_gym.generators.generator import Generator
from datagen_gym.generators.instruction_filters import keep_instance
from datagen_gym.world.corpus import DOC_WEIGHTS, make_parts

BLACKLIST = Config().generation.blacklist
PARSERS = (
    "parse_bootstrap",
    "parse_classification_check",
    "parse_input_first",
    "parse_output_first",
    "parse_evol",
)
CORPUS_PARSER = {
    "bootstrap": "parse_bootstrap",
    "classification_check": "parse_classification_check",
    "input_first": "parse_input_first",
    "output_first": "parse_output_first",
    "evol_depth": "parse_evol",
    "evol_breadth": "parse_evol",
}


def _parser_for(prompt: str) -> str:
    if prompt.startswith(prompts.CLASSIFICATION_CHECK_HEADER):
        return "parse_classification_check"
    if prompt.startswith(prompts.OUTPUT_FIRST_HEADER):
        return "parse_output_first"
    if prompt.startswith(prompts.INPUT_FIRST_HEADER):
        return "parse_input_first"
    if prompt.startswith("I want you act"):
        return "parse_evol"
    return "parse_bootstrap"


# ---------------------------------------------------------------------------- regression guard


def test_papers_formats_parse_as_before():
    """Every kind of document the embedded teacher is trained on parses as with the papers'
    parsers (quoted labels, "Answer: ..." and step-by-step answers included)."""
    rng = np.random.default_rng(7)
    for kind in DOC_WEIGHTS:
        for _ in range(300):
            _, completion = make_parts(kind, rng)
            name = CORPUS_PARSER[kind]
            assert getattr(parsing, name)(completion) == getattr(prompts, name)(completion), (
                kind,
                completion,
            )


def _teacher_records(teacher, seed):
    """A few fixed-seed generate() calls across Self-Instruct and Evol-Instruct templates."""
    backend = Recording(teacher)
    gen = Generator(sampler=Sampler(backend, temperature=1.0, top_p=0.9), seed=seed)
    out = []
    for step, template in enumerate(
        ("self_instruct", "self_instruct_classification", "evol_deepen", "evol_breadth")
    ):
        gen.select_template(template)
        res = gen.generate(8, step=step)
        out.append((template, res.num_candidates, res.num_kept, res.data))
    return out, backend.seen


@pytest.mark.parametrize("seed", [0, 1])
def test_embedded_teacher_records_are_unchanged(teacher, monkeypatch, seed):
    """The generators' records on the embedded teacher are identical with the papers' parsers
    (the code before the real-model parsers, plus Self-Instruct's rule that a bootstrap reply
    the token budget cut loses its last task) and with the new ones."""
    papers = {name: getattr(prompts, name) for name in PARSERS}
    split = parsing.parse_bootstrap
    papers["parse_bootstrap"] = lambda text: split(text, chat=False)
    after, seen = _teacher_records(teacher, seed)
    with monkeypatch.context() as m:
        for name in PARSERS:
            m.setattr(parsing, name, lambda text, chat=True, old=papers[name]: old(text))
        before, _ = _teacher_records(teacher, seed)
    assert after == before
    assert all(records for _, _, _, records in after)  # the guard compares real records
    # The teacher's texts are in the papers' formats: read as chat replies, they parse the same.
    for prompt, _, text in seen:
        name = _parser_for(prompt)
        assert getattr(parsing, name)(text, chat=True) == papers[name](text), text


def test_only_chat_replies_get_the_real_model_rules(teacher):
    class Chat:
        prompt_format = "chat"

    class ChatEndpoint:
        endpoint = "chat"

    assert not parsing.replies_in_chat(teacher)  # the embedded teacher is a completion model
    assert parsing.replies_in_chat(Chat()) and parsing.replies_in_chat(ChatEndpoint())
    assert Generator(sampler=Sampler(teacher), seed=0).chat_replies is False
    # A completion is read by the papers' parsers alone, malformed text included (the embedded
    # teacher writes "#Rewritten Prompt#:" first now and then at temperature 1.3).
    for name, text in [
        ("parse_bootstrap", "1. Add the two numbers.\n2. Sort the list."),
        ("parse_evol", "#Rewritten Prompt#:\nCount the words of the sentence."),
        ("parse_input_first", "The sentence is positive."),
    ]:
        old = getattr(prompts, name)(text)
        assert getattr(parsing, name)(text, chat=False) == old
        assert getattr(parsing, name)(text) != old


# ---------------------------------------------------------------------------- bootstrap

BOOTSTRAP_CASES = [
    # SmolLM2 restarts the numbered list at "1." (the old parser kept "1." in the first task).
    (
        "1. Determine if the product review is positive or negative.\n"
        "2. What is 4 and 10? Add them.\n3. Someone wrote",
        [
            "Determine if the product review is positive or negative.",
            "What is 4 and 10? Add them.",
            "Someone wrote",
        ],
    ),
    # SmolLM2: a restart at "1." followed by unnumbered rambling lines (the old parser glued
    # them all into one task).
    (
        '1. Determining if a feedback is positive or negative: "The seats tasted poor."\n'
        "The response was positive.\nThe sentence is not spam.\nThe product review is spam.",
        ['Determining if a feedback is positive or negative: "The seats tasted poor."'],
    ),
    # A chatty preamble, markdown titles and emphasis, quotes, blank lines, commentary.
    (
        "Sure! Here are some more tasks:\n\n"
        "1. **Sentiment:** Classify the review as positive or negative.\n\n"
        '2. "Sort the numbers in ascending order."\n\n'
        "3. *Translate* the sentence into French.\n\n"
        "Let me know if you need more!",
        [
            "Classify the review as positive or negative.",
            "Sort the numbers in ascending order.",
            "Translate the sentence into French.",
        ],
    ),
    # Bullets, with a nested sub-bullet that is not a task.
    (
        "- Count the vowels in the word.\n- reverse the list of numbers.\n"
        "  - for example 1, 2, 3\n",
        ["Count the vowels in the word.", "Reverse the list of numbers."],
    ),
    # "**Task k:**" headings continuing the prompt's numbering, and "10)" numbering.
    (
        "**Task 9:** Find the largest number in the list.\n"
        "**Task 10:** Name the capital of the country.",
        ["Find the largest number in the list.", "Name the capital of the country."],
    ),
    (
        "9) Find the largest number in the list.\n10) Name the capital of the country.",
        ["Find the largest number in the list.", "Name the capital of the country."],
    ),
    # A preamble, then one task per line without numbers.
    (
        "Certainly! Here are a few tasks:\nClassify the animal as a mammal or a bird.\n"
        "Count the letters in the word.\n\nThese tasks cover classification and counting.",
        ["Classify the animal as a mammal or a bird.", "Count the letters in the word."],
    ),
    # The paper's stop at task 16 holds in the model's own list too.
    (
        "15. Add the two numbers together.\n16. Never reached here.",
        ["Add the two numbers together."],
    ),
]


@pytest.mark.parametrize("text,expected", BOOTSTRAP_CASES)
def test_bootstrap_reads_chat_replies(text, expected):
    assert parsing.parse_bootstrap(text) == expected
    assert prompts.parse_bootstrap(text) != expected  # the papers' parser misreads it


def test_bootstrap_leaves_instructions_to_the_papers_filters():
    """Parsing strips the list's decoration only: the filters still judge what is left."""
    from datagen_gym.generators.instruction_filters import instruction_rejection

    tasks = parsing.parse_bootstrap(
        "1. Draw a picture of the sea please.\n2. Add numbers.\n"
        "3. Write a program that adds numbers.\n4. Classify the sentiment of the review."
    )
    assert [instruction_rejection(t, BLACKLIST) for t in tasks] == [
        "blacklist",
        "too_short",
        "program",
        None,
    ]


# ---------------------------------------------------------------------------- instances

INPUT_FIRST_CASES = [
    # SmolLM2: a preamble, then the answer without the "Output:" label.
    (
        "Sure, let's go ahead and generate the output:\n\n"
        "The sentence expresses a positive opinion about the food.",
        [("", "The sentence expresses a positive opinion about the food.")],
    ),
    # SmolLM2: a bare answer followed by commentary about it.
    (
        "bridge road window house \nIn this example, the original sentence is rewritten "
        "with its words backwards.",
        [("", "bridge road window house")],
    ),
    # Markdown labels and a closing remark.
    (
        "**Input:** 3 and 4\n**Output:** 7\n\nI hope this helps!",
        [("3 and 4", "7")],
    ),
    # "Input -" / "Output -" labels.
    ("Input - 3 and 4\nOutput - 7", [("3 and 4", "7")]),
    # Headings "Example k:" and upper-case labels.
    (
        "Example 1:\nInput: 1 and 2\nOutput: 3\n\nExample 2:\nINPUT: 4 and 5\nOUTPUT: 9",
        [("1 and 2", "3"), ("4 and 5", "9")],
    ),
    # Several pairs without "Example k" lines between them.
    (
        "Here are some examples:\n\ninput: 1 and 2\noutput: 3\n\ninput: 4 and 5\noutput: 9\n",
        [("1 and 2", "3"), ("4 and 5", "9")],
    ),
    # The prompt's "Task:" line echoed first, then a bold answer.
    (
        "Task: Reverse the words.\nOutput: **words the Reverse**",
        [("", "words the Reverse")],
    ),
]


@pytest.mark.parametrize("text,expected", INPUT_FIRST_CASES)
def test_input_first_reads_chat_replies(text, expected):
    assert parsing.parse_input_first(text) == expected
    assert prompts.parse_input_first(text) != expected


@pytest.mark.parametrize(
    "text",
    [
        # SmolLM2: a list of categories is not one answer.
        "Task: Classify the product.\n\nHere are examples of each of the three categories:\n\n"
        "- Sports: Sports, which is a category of the product.\n- Politics: Politics.",
        # Two paragraphs: which one is the output?
        "The sentence is positive.\n\nThe sentence is negative.",
        # The model labelled the parts its own way: input or output?
        "Sentence: The food was great.\nSentiment positive.",
        # SmolLM2: a lead-in with nothing after it.
        "The sentence is:\nThe sentence in upper case letters is:",
        # An input without an output.
        "Input: 3 and 4",
        "Here is an example of a task that requires manual input:\n\n"
        '**Translate this sentence:** "The new employee was very smart."',
        "",
    ],
)
def test_input_first_takes_a_bare_answer_only_when_unambiguous(text):
    assert parsing.parse_input_first(text) == []


OUTPUT_FIRST_CASES = [
    # A preamble, its own "Class label:" lines in markdown, commentary.
    (
        "Sure! Here are the inputs:\n\n**Class Label:** Positive\n**Input:** I loved it.\n\n"
        "**Class Label:** Negative\n**Input:** It was cold.\n\nLet me know if you need more!",
        [("I loved it.", "Positive"), ("It was cold.", "Negative")],
    ),
    # SmolLM2: a "Label: input" list.
    (
        "Positive: The seat tasted good.\nNegative: The seat tasted bad.",
        [("The seat tasted good.", "Positive"), ("The seat tasted bad.", "Negative")],
    ),
    # The same, numbered.
    (
        '1. Positive: "3.5"\n2. Negative: "2.5"',
        [('"3.5"', "Positive"), ('"2.5"', "Negative")],
    ),
    # "Label -" for "Class label:", a preamble line, a bold bare label.
    (
        "Here is the answer:\nLabel - odd\nInput - 31",
        [("31", "odd")],
    ),
    ("Certainly! Here is the label:\n\n**Positive**", [("", "Positive")]),
]


@pytest.mark.parametrize("text,expected", OUTPUT_FIRST_CASES)
def test_output_first_reads_chat_replies(text, expected):
    assert parsing.parse_output_first(text) == expected
    assert prompts.parse_output_first(text) != expected


@pytest.mark.parametrize(
    "text",
    [
        "Sports: a\nSports: b",  # the same label twice: not one input per label
        "Input: x\nOutput: y\nInput: z",  # field names are not class labels
        "The feedback contains the following labels:\n\npositive, negative.",
    ],
)
def test_output_first_rejects_ambiguous_replies(text):
    assert parsing.parse_output_first(text) == []


# ---------------------------------------------------------------------------- Evol-Instruct

EVOL_CASES = [
    (
        "Sure! Here's the rewritten prompt:\n\n"
        '"Sort the values in ascending order and explain each step."\n\n'
        "This version adds a reasoning step.",
        "Sort the values in ascending order and explain each step.",
    ),
    (
        "#Rewritten Prompt#:\nSort the values in ascending order, then report the median.",
        "Sort the values in ascending order, then report the median.",
    ),
    (
        "**Created Prompt:** Name the rarest bird of the given list.",
        "Name the rarest bird of the given list.",
    ),
    (
        "Here's a rewritten version of the prompt: Sort the values, then report the median.",
        "Sort the values, then report the median.",
    ),
    # SmolLM2: a heading of its own, then the rewrite in quotes.
    (
        'Your Rewrite of the Prompt:\n\n"Reverse the words, then capitalise each of them."',
        "Reverse the words, then capitalise each of them.",
    ),
]


@pytest.mark.parametrize("text,expected", EVOL_CASES)
def test_evol_reads_chat_replies(text, expected):
    assert parsing.parse_evol(text) == expected
    assert prompts.parse_evol(text) != expected


def test_evol_elimination_still_reads_the_rewrite():
    """Dropping the answer's label keeps WizardLM's copied-words elimination on the text."""
    from datagen_gym.generators.evol_instruct import instruction_failure

    evolved = parsing.parse_evol("Rewritten Prompt:\n\nRewrite the given prompt with more words.")
    assert evolved == "Rewrite the given prompt with more words."
    assert instruction_failure("Sort the values.", evolved) == "copied_prompt"


@pytest.mark.parametrize("text", ["**Yes**", '"Yes"', "Answer: Yes"])
def test_classification_check_reads_decorated_answers(text):
    assert parsing.parse_classification_check(text) is True
    assert prompts.parse_classification_check(text) is False


# ---------------------------------------------------------------------------- end to end


# How the instruct-model phrasings (generators/chat_prompts.py) open.
CHAT_CHECK = chat_prompts.classification_check_prompt("x")[:40]
CHAT_INPUT_FIRST = chat_prompts.input_first_prompt("x")[:40]


class _ChatBackend:
    """Answers every prompt kind as a small chat model would."""

    deterministic = True
    prompt_format = "chat"

    def generate(self, prompt_list, *, temperature, top_p, max_new_tokens, seed=None):
        out = []
        for p in prompt_list:
            if p.startswith(prompts.CLASSIFICATION_CHECK_HEADER) or p.startswith(CHAT_CHECK):
                out.append("**No**")
            elif p.startswith("I want you act"):
                given = p.split("Prompt#:\n")[1].split("\n")[0]
                out.append(
                    f'Sure! Here\'s the rewritten prompt:\n\n"{given} Explain each step."\n\n'
                    "This version asks for the reasoning."
                )
            elif p.startswith(prompts.INPUT_FIRST_HEADER) or p.startswith(CHAT_INPUT_FIRST):
                out.append(
                    "Sure! Here is an example:\n\n**Input:** France\n"
                    "**Output:** Seine, Loire, Rhone"
                )
            else:
                out.append(
                    "Sure! Here are some more tasks:\n\n"
                    "1. **Geography:** Name three rivers that flow through the given country.\n"
                    "2. Draw a picture of the given animal.\n"
                    "3. Add numbers.\n\nI hope these help!"
                )
        return out


def test_self_instruct_keeps_chat_tasks_through_the_papers_filters():
    gen = Generator(sampler=Sampler(_ChatBackend()), seed=0)
    assert gen.chat_replies
    res = gen.generate(4)
    assert (
        res.num_candidates == 3 and res.num_kept == 1
    )  # the blacklist and too_short rules drop two
    assert [(r["instruction"], r["input"], r["output"]) for r in res] == [
        ("Name three rivers that flow through the given country.", "France", "Seine, Loire, Rhone")
    ]


def test_evol_instruct_reads_chat_rewrites():
    gen = Generator(sampler=Sampler(_ChatBackend()), seed=0)
    gen.select_template("evol_reasoning")
    res = gen.generate(4)
    assert res.num_candidates == 2 and res.num_kept == 2
    for r in res:
        assert r["instruction"] == r["evolved_from"] + " Explain each step."
        assert (r["input"], r["output"]) == ("France", "Seine, Loire, Rhone")


# ---------------------------------------------------------------------------- recorded replies
# Replies of SmolLM2-135M-Instruct (chat) and Gemma 3 270M base (completion) from the committed
# corpus benchmarks/results/real_replies.jsonl (``python -m benchmarks.record_replies``), one
# per defect fixed in issue 22; test_real_replies.py scores the whole corpus.

REAL_REPLIES = (
    Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "real_replies.jsonl"
)


@functools.lru_cache(maxsize=1)
def _corpus() -> list[dict]:
    return [json.loads(line) for line in REAL_REPLIES.read_text(encoding="utf-8").splitlines()]


def _reply(i: int) -> tuple[Completion, bool]:
    """Corpus reply ``i`` (with its finish reason) and whether it is a chat reply."""
    row = _corpus()[i]
    chat = row["settings"]["prompt_format"] == "chat"
    return Completion(row["reply"], row["finish_reason"]), chat


def test_base_model_output_first_label_before_a_blank_line_or_a_new_task():
    # (b) Gemma continues "Class label:" with a label, then a blank line or a new "Task:"; the
    # papers' regex wanted the next "Class label:" or the end right after it and found none, or
    # glued the next task into the input.
    text, chat = _reply(374)  # " 1. sports, ...\n\nTask: Put the headline ..."
    assert not chat and text.startswith(" 1. sports")
    assert parsing.parse_output_first(text, chat) == [
        ("", "1. sports, 2. politics, 3. science, 4. business")
    ]
    text, chat = _reply(423)  # " Business, Science, Politics, Sports\n\n<h2>Input</h2>..."
    assert prompts.parse_output_first(text) == []
    assert parsing.parse_output_first(text, chat) == [("", "Business, Science, Politics, Sports")]
    text, chat = _reply(373)  # " positive\nTask: Classify the sentiment of ..." (run-on)
    assert prompts.parse_output_first(text) == []
    assert parsing.parse_output_first(text, chat) == [("", "positive")]
    text, chat = _reply(372)  # ' "Business"\nInput: "Business"\nOutput: "Science"\nTask: ...'
    assert parsing.parse_output_first(text, chat) == [('"Business"', '"Business"')]


def test_chat_output_first_label_separated_from_its_input_by_a_blank_line():
    # (a) The SmolLM2 reply shape: a "Task label:" line of the model's own, then the
    # real "Class label:" with its "Input:" after a blank line. (The recorded corpus has no
    # such reply; this is the shape the author measured.)
    text = "Task label: Text classification\nClass label: Positive\n\nInput: I loved this phone."
    assert parsing.parse_output_first(text) == [("I loved this phone.", "Positive")]


def test_instance_filter_drops_run_on_outputs_and_inputs_holding_an_output():
    # (c) What the papers' parsers made of real replies: an output that ran on into a new task
    # (SmolLM2, reply 22) and an input that holds the output of the next format (Gemma, 372).
    text, _ = _reply(22)
    run_on = prompts.parse_input_first(text)[0][1]
    assert "\n\nTask:" in run_on
    assert not keep_instance("Determine if the product review is positive or negative.", "", run_on)
    text, _ = _reply(372)
    x, y = prompts.parse_output_first(text)[0]
    assert "Output:" in x
    assert not keep_instance("Is the headline about business or sports?", x, y)
    assert keep_instance("Classify the review.", "I loved it.", "positive")


def test_classification_check_reads_the_first_yes_or_no_word():
    # (d) Gemma answers " Yes\n\nTask" in its 3 tokens; "Yesterday" is no answer.
    text, chat = _reply(365)
    assert str(text) == " Yes\n\nTask" and not chat
    assert parsing.parse_classification_check(text, chat) is True
    assert parsing.parse_classification_check(" No\n\nTask", False) is False
    assert parsing.parse_classification_check(" Yesterday I", False) is False


def test_base_model_rewrite_ends_at_the_next_slot_name():
    # Gemma writes its rewrite, then starts the prompt's format over ("\n#Rewritten Prompt#:");
    # the first paragraph held the slot name and WizardLM's elimination dropped a real rewrite.
    text, chat = _reply(386)
    evolved = parsing.parse_evol(text, chat)
    assert evolved == (
        'Is the headline "Cellar\'s new wine is a new wine" about business, science, '
        "politics or sports?"
    )
    assert "#Rewritten Prompt#" in prompts.parse_evol(text)


def test_chat_input_first_skips_the_shown_example_and_splits_outputs():
    text, chat = _reply(23)  # the shown France/Paris example, then "Output: False" x 9
    assert set(parsing.parse_input_first(text, chat)) == {("", "False")}  # deduplicated later
    text, chat = _reply(139)  # the shown example in quotes, then the model's output
    assert parsing.parse_input_first(text, chat) == [
        ("", "No, no problem, this task can be answered with either option, so in this case both.")
    ]
    text, chat = _reply(81)  # "Output: positive\nOutput: positive\nOutput: negative"
    assert parsing.parse_input_first(text, chat) == [
        ("", "positive"),
        ("", "positive"),
        ("", "negative"),
    ]
    text, chat = _reply(22)  # "Output: Positive\n\nHere's an example of a task: ..."
    assert parsing.parse_input_first(text, chat) == [("", "Positive")]


def test_chat_output_first_bare_label_cut_by_the_budget_is_none():
    text, chat = _reply(252)  # "In this task, ... (like 3 or 4 or" (cut)
    assert chat and finish_reason(text) == "length"
    assert parsing.parse_output_first(text, chat) == []


def test_chat_bootstrap_heading_before_the_list_is_no_task():
    text, chat = _reply(65)  # "A different set of questions:\n1. ..."
    tasks = parsing.parse_bootstrap(text, chat)
    assert tasks[0].startswith('The headline "Cells rejects new virus"')
    assert all("different set" not in t for t in tasks)
