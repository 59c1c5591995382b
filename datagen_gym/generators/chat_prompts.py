"""The generators' prompts phrased for an instruct model answering in a chat turn.

The papers' prompts (:mod:`datagen_gym.generators.prompts`) are completion prompts: a numbered
list that ends in "9." for the model to continue, a few-shot "Is it classification?" with a
3-token answer budget, instance prompts that end in "Example 1" or "Class label:". A chat model
reads each prompt as a user turn and answers from the top: given those, SmolLM2-135M-Instruct
mostly copied the in-context tasks, answered the classification check with "To answer this"
and wrote instances without their field labels. Here the same requests are asked for
explicitly, with the same content:

* **bootstrap**: the same in-context tasks and the template's header; new tasks different from
  the examples are asked for as a numbered list that continues the numbering.
* **classification check**: the same question and the same four examples, answered "Yes" or
  "No", in :data:`CLASSIFICATION_CHECK_TOKENS` tokens (an instruct model's "The answer is
  Yes." fits); read by ``parsing.parse_classification_check``.
* **input-first**: an ``Input:`` line and an ``Output:`` line, shown on one example of another
  task (a small model follows a shown format far more often than a described one).
* **output-first**: a ``Class label:`` line and an ``Input:`` line per label.
* **Evol-Instruct**: WizardLM's prompts are already instructions to a chat model; they are
  kept (:func:`evol_prompt` is :func:`prompts.evol_prompt`).

The functions have the names and signatures of their :mod:`prompts` counterparts, so a
generator picks one module or the other (``BaseGenerator.prompt_set``). By default
(``generation.prompt_style: auto``) only chat-format teachers get these prompts; the embedded
teacher, a completion model trained on the papers' formats, keeps those, byte for byte.
``papers`` / ``instruct`` pick one set whatever the teacher (``BaseGenerator.instruct_prompts``).
The papers' filters are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

from datagen_gym.generators import prompts

#: New tokens for the classification check: room for "The answer is Yes." or "No, because".
CLASSIFICATION_CHECK_TOKENS = 12

evol_prompt = prompts.evol_prompt


def bootstrap_prompt(header: str, instructions: list[str]) -> str:
    """Self-Instruct's instruction-generation request: the template's header, the in-context
    tasks as a numbered list, and a request for new, different tasks that continue it."""
    lines = [header.rstrip(":") + ". Example tasks:"]
    lines += [f"{i + 1}. {inst}" for i, inst in enumerate(instructions)]
    n = len(instructions)
    lines += [
        "",
        "Write new tasks that are different from the examples (not copies or rewordings), "
        f"one instruction per line, continuing the numbering from {n + 1}:",
        f"{n + 1}.",
    ]
    return "\n".join(lines)


def classification_check_prompt(instruction: str) -> str:
    """Is this a classification task? Asked for a Yes or No answer, with the paper's four
    examples."""
    examples = "\n".join(
        f"Task: {inst}\nAnswer: {answer}" for inst, answer in prompts.CLASSIFICATION_CHECK_EXAMPLES
    )
    return (
        "Is the task below a classification task, that is, is its answer one of a few fixed "
        "labels (such as positive/negative or even/odd)? Answer with Yes or No.\n\n"
        f"Examples:\n{examples}\n\nTask: {instruction}\nAnswer:"
    )


INPUT_FIRST_EXAMPLE = "Task: Give the capital city of the country.\nInput: France\nOutput: Paris"


def input_first_prompt(instruction: str) -> str:
    """Self-Instruct's input-first instance request: an input and the correct output, in
    ``Input:`` / ``Output:`` lines shown on an example task."""
    return (
        "Write an example of a task: an input for it and the correct output. Use exactly this "
        f"format:\n\n{INPUT_FIRST_EXAMPLE}\n\n"
        "Now write an example for this task, in the same format (an Input: line, then an "
        "Output: line). If the task needs no input, leave the Input: line empty.\n\n"
        f"Task: {instruction}"
    )


def output_first_prompt(instruction: str, labels: Sequence[str] | None = None) -> str:
    """Self-Instruct's output-first instance request: for each class label, a ``Class label:``
    line and an ``Input:`` line with an input of that label; ``labels``: the task's classes,
    which the reply must use."""
    text = (
        "Here is a classification task. Write one example for each of its class labels. Write "
        'each example as two lines: "Class label:" followed by the label, then "Input:" '
        "followed by an input that has that label.\n\n"
        f"Task: {instruction}"
    )
    if labels:
        text += f"\nClass labels (use exactly these): {', '.join(labels)}"
    return text
