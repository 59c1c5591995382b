"""The prompt formats that the generators send, and the parsers of what comes back.

They follow the papers' released prompts: Self-Instruct's numbered task list, classification
check and input-first / output-first instance prompts (Wang et al., 2023,
``bootstrap_instructions.py`` and ``prompt_templates.py``), and WizardLM's in-depth and
in-breadth Evol-Instruct prompts (Xu et al., 2023, ``depth.py`` and ``breadth.py``). The
embedded teacher is trained on text in exactly these formats (``datagen_gym/world/corpus.py``),
so the real generators drive it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# ---------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class Template:
    """One choice of the env's template action.

    ``method`` is ``"self_instruct"`` or ``"evol_instruct"``; for Self-Instruct ``group`` focuses
    the in-context tasks and the list header on one group of task families, for Evol-Instruct
    ``operation`` names the evolution (one of :data:`EVOL_OPERATIONS`).
    """

    name: str
    method: str
    header: str = ""
    group: str | None = None
    operation: str | None = None


TEMPLATES: tuple[Template, ...] = (
    Template("self_instruct", "self_instruct", "Come up with a series of tasks:"),
    Template(
        "self_instruct_classification",
        "self_instruct",
        "Come up with a series of classification tasks:",
        group="classification",
    ),
    Template(
        "self_instruct_text",
        "self_instruct",
        "Come up with a series of text editing tasks:",
        group="text",
    ),
    Template(
        "self_instruct_math", "self_instruct", "Come up with a series of math tasks:", group="math"
    ),
    Template("evol_add_constraints", "evol_instruct", operation="add_constraints"),
    Template("evol_deepen", "evol_instruct", operation="deepen"),
    Template("evol_concretize", "evol_instruct", operation="concretize"),
    Template("evol_reasoning", "evol_instruct", operation="reasoning"),
    Template("evol_complicate_input", "evol_instruct", operation="complicate_input"),
    Template("evol_breadth", "evol_instruct", operation="breadth"),
)
TEMPLATE_NAMES = tuple(t.name for t in TEMPLATES)
SELF_INSTRUCT_HEADERS = {t.group: t.header for t in TEMPLATES if t.method == "self_instruct"}


def get_template(name_or_index: str | int) -> Template:
    """Look a template up by name or index, with a clear error for an unknown one."""
    if isinstance(name_or_index, (int,)) and not isinstance(name_or_index, bool):
        if not 0 <= name_or_index < len(TEMPLATES):
            raise ValueError(
                f"template index must be in [0, {len(TEMPLATES) - 1}], got {name_or_index}"
            )
        return TEMPLATES[name_or_index]
    for t in TEMPLATES:
        if t.name == name_or_index:
            return t
    raise ValueError(f"unknown template {name_or_index!r}; expected one of {list(TEMPLATE_NAMES)}")


# ---------------------------------------------------------------------------- Self-Instruct
NUM_PROMPT_TASKS = 8  # in-context tasks per bootstrap prompt (6 human + 2 machine)
MAX_TASK_NUMBER = 16  # the paper stops generation at task 16


def bootstrap_prompt(header: str, instructions: list[str]) -> str:
    """Self-Instruct's instruction-generation prompt: a numbered list to be continued."""
    lines = [header]
    lines += [f"{i + 1}. {inst}" for i, inst in enumerate(instructions)]
    lines.append(f"{len(instructions) + 1}.")
    return "\n".join(lines)


def parse_bootstrap(continuation: str) -> list[str]:
    """Split the LM's continuation of :func:`bootstrap_prompt` into task instructions."""
    text = continuation.split("\n\n")[0]
    stop = re.search(rf"\n{MAX_TASK_NUMBER}\s?\.", text)
    if stop:
        text = text[: stop.start()]
    raw = re.split(r"\n\d+\s?\.", "\n0." + text if not text.startswith("\n") else text)
    out = []
    for inst in raw:
        inst = re.sub(r"\s+", " ", inst).strip()
        if inst:
            out.append(inst[0].upper() + inst[1:])
    return out


CLASSIFICATION_CHECK_HEADER = (
    "Can the following task be regarded as a classification task with finite output labels?"
)
CLASSIFICATION_CHECK_EXAMPLES = (
    ("Tell whether the number is even or odd.", "Yes"),
    ("Add the two numbers.", "No"),
    ("Classify the topic of the headline as sports, politics, science or business.", "Yes"),
    ("Reverse the order of the words in the sentence.", "No"),
)


def classification_check_prompt(instruction: str) -> str:
    """Self-Instruct's few-shot question: is this a classification task?"""
    parts = [CLASSIFICATION_CHECK_HEADER, ""]
    for inst, answer in CLASSIFICATION_CHECK_EXAMPLES:
        parts += [f"Task: {inst}", f"Is it classification? {answer}", ""]
    parts += [f"Task: {instruction}", "Is it classification?"]
    return "\n".join(parts)


def parse_classification_check(continuation: str) -> bool:
    return continuation.strip().lower().startswith("yes")


INPUT_FIRST_HEADER = (
    "Come up with examples for the following tasks. Try to generate multiple examples when "
    "possible. If the task doesn't require additional input, you can generate the output "
    "directly."
)
OUTPUT_FIRST_HEADER = (
    "Given the classification task definition and the class labels, generate an input that "
    "corresponds to each of the class labels. If the task doesn't require input, just generate "
    "the correct class label."
)


def input_first_prompt(instruction: str) -> str:
    return f"{INPUT_FIRST_HEADER}\n\nTask: {instruction}\nExample 1\n"


def output_first_prompt(instruction: str, labels: Sequence[str] | None = None) -> str:
    """The output-first prompt; ``labels``: the task's classes, listed after the task (the
    paper's tasks name their labels in the instruction; a user's task may not)."""
    listed = f"\nClass labels: {', '.join(labels)}" if labels else ""
    return f"{OUTPUT_FIRST_HEADER}\n\nTask: {instruction}{listed}\nClass label:"


def parse_input_first(continuation: str) -> list[tuple[str, str]]:
    """Parse ``Input: ...\\nOutput: ...`` blocks separated by ``Example k`` lines."""
    blocks = re.split(r"\n?Example \d+\n", "\n" + continuation.strip("\n") + "\n")
    pairs = []
    for block in blocks:
        m = re.match(r"\s*(?:Input:(.*?)\n)?Output:(.*)", block.strip("\n") + "\n", re.S)
        if not m:
            continue
        x = (m.group(1) or "").strip()
        y = m.group(2).strip()
        if y:
            pairs.append((x, y))
    return pairs


def parse_output_first(continuation: str) -> list[tuple[str, str]]:
    """Parse ``Class label: ...\\nInput: ...`` pairs; the prompt ends with ``Class label:``.

    A task without input gets just its label (``Class label: ...``), parsed with input "".
    """
    text = "Class label:" + continuation
    pairs = []
    for m in re.finditer(r"Class label:([^\n]*)(?:\nInput:(.*?))?(?=\nClass label:|$)", text, re.S):
        label, x = m.group(1).strip(), (m.group(2) or "").strip()
        if label:
            pairs.append((x, label))
    return pairs


# ---------------------------------------------------------------------------- Evol-Instruct
EVOL_OPERATIONS = (
    "add_constraints",
    "deepen",
    "concretize",
    "reasoning",
    "complicate_input",
    "breadth",
)
DEPTH_METHODS = {
    "add_constraints": "Please add one more constraints/requirements into #The Given Prompt#'",
    "deepen": (
        "If #The Given Prompt# contains inquiries about certain issues, the depth and "
        "breadth of the inquiry can be increased."
    ),
    "concretize": "Please replace general concepts with more specific concepts.",
    "reasoning": (
        "If #The Given Prompt# can be solved with just a few simple thinking "
        "processes, you can rewrite it to explicitly request multiple-step reasoning."
    ),
    "complicate_input": (
        "Please add more complex data to the input of #The Given Prompt#, so "
        "that it takes more work to answer."
    ),
}
DEPTH_HEADER = (
    "I want you act as a Prompt Rewriter.\n"
    "Your objective is to rewrite a given prompt into a more complex version to make those "
    "famous AI systems (e.g., chatgpt and GPT4) a bit harder to handle.\n"
    "But the rewritten prompt must be reasonable and must be understood and responded by "
    "humans.\n"
    "Your rewriting cannot omit the non-text parts such as the table and code in #The Given "
    "Prompt#:. Also, please do not omit the input in #The Given Prompt#.\n"
    "You SHOULD complicate the given prompt using the following method:\n"
    "{method}\n"
    "You should try your best not to make the #Rewritten Prompt# become verbose, #Rewritten "
    "Prompt# can only add 10 to 20 words into #The Given Prompt#.\n"
    "'#The Given Prompt#', '#Rewritten Prompt#', 'given prompt' and 'rewritten prompt' are not "
    "allowed to appear in #Rewritten Prompt#\n"
    "#The Given Prompt#:\n{instruction}\n#Rewritten Prompt#:\n"
)
BREADTH_HEADER = (
    "I want you act as a Prompt Creator.\n"
    "Your goal is to draw inspiration from the #Given Prompt# to create a brand new prompt.\n"
    "This new prompt should belong to the same domain as the #Given Prompt# but be even more "
    "rare.\n"
    "The LENGTH and complexity of the #Created Prompt# should be similar to that of the #Given "
    "Prompt#.\n"
    "The #Created Prompt# must be reasonable and must be understood and responded by humans.\n"
    "'#Given Prompt#', '#Created Prompt#', 'given prompt' and 'created prompt' are not allowed "
    "to appear in #Created Prompt#\n"
    "#Given Prompt#:\n{instruction}\n#Created Prompt#:\n"
)


def evol_prompt(operation: str, instruction: str) -> str:
    """WizardLM's rewriting prompt for one in-depth operation, or the in-breadth prompt."""
    if operation == "breadth":
        return BREADTH_HEADER.format(instruction=instruction)
    if operation not in DEPTH_METHODS:
        raise ValueError(
            f"unknown Evol-Instruct operation {operation!r}; "
            f"expected one of {list(EVOL_OPERATIONS)}"
        )
    return DEPTH_HEADER.format(method=DEPTH_METHODS[operation], instruction=instruction)


def parse_evol(continuation: str) -> str:
    return re.sub(r"[ \t]+", " ", continuation.strip().split("\n\n")[0]).strip()
