"""The teacher's training corpus: documents in the exact prompt formats the generators send.

Each document is one prompt of :mod:`datagen_gym.generators.prompts` followed by a correct
completion written from the task families' grammars and solvers. A model trained on it answers
the real Self-Instruct and Evol-Instruct prompts; how often it answers *correctly* and how varied
its answers are then depends on the sampling temperature and top_p, which is the trade-off the
agent learns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from datagen_gym.generators import prompts
from datagen_gym.world.tasks import (
    FAMILIES,
    FAMILY_BY_NAME,
    MODIFIERS,
    TaskFamily,
    expected_output,
    families_in,
    identify,
    parse_instruction,
)

EOS = "<|endoftext|>"
# Share of each document kind in the corpus. Instance documents (input-first / output-first)
# carry most of the weight: writing correct outputs is what a small model finds hardest.
DOC_WEIGHTS = {
    "bootstrap": 0.20,
    "classification_check": 0.05,
    "input_first": 0.45,
    "output_first": 0.15,
    "evol_depth": 0.11,
    "evol_breadth": 0.04,
}
# Bootstrap documents: how often the in-context list is dominated by one family (the env's
# focus puts 6-8 tasks of one family in the prompt), and where each continuation task comes
# from: a family of the context (drawn in proportion to its count there), a neighbour (another
# family of the same group as such a family), or any family the header allows.
P_FOCUSED_CONTEXT = 0.45
P_CONTINUE_SAME = 0.9
P_CONTINUE_NEIGHBOUR = 0.07
# Input-first documents: share written for generative families (classification tasks go
# output-first in Self-Instruct; input-first only when the LM's check says "not
# classification").
P_INPUT_FIRST_GENERATIVE = 0.8


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def concretize(family: TaskFamily, instruction: str, rng: np.random.Generator) -> str:
    """Replace one general word of the instruction by the family's specific one."""
    # A word made specific once stays so ("restaurant review" never becomes "restaurant
    # restaurant review", which no grammar knows).
    options = [
        (g, s)
        for g, s in family.concretize.items()
        if re.search(rf"\b{g}\b", instruction) and s not in instruction
    ]
    if not options:
        return instruction
    general, specific = _pick(rng, options)
    return re.sub(rf"\b{general}\b", specific, instruction, count=1)


def random_instruction(
    rng: np.random.Generator,
    family: TaskFamily | None = None,
    p_modified: float = 0.3,
    p_inline: float = 0.5,
) -> tuple[TaskFamily, str]:
    """An instruction of a family, sometimes with its input inline, concretized or carrying
    modifiers."""
    family = family or _pick(rng, FAMILIES)
    if rng.random() < p_inline:
        inst, _ = family.sample_inline(rng, hard=bool(rng.random() < 0.2))
    else:
        inst = family.sample_instruction(rng)
    if rng.random() < 0.15:
        inst = concretize(family, inst, rng)
    if rng.random() < p_modified:
        mods = rng.choice(len(MODIFIERS), size=int(rng.integers(1, 3)), replace=False)
        for i in sorted(mods):
            inst = f"{inst} {MODIFIERS[i].phrase}"
    return family, inst


def evolve(operation: str, instruction: str, rng: np.random.Generator) -> str:
    """The world's correct rewrite of an instruction under one Evol-Instruct operation."""
    family, mods = identify(instruction)
    if family is None:
        return instruction
    if operation == "breadth":
        others = [f for f in families_in(family.group) if f is not family]
        return _pick(rng, others).sample_instruction(rng)
    if operation == "concretize":
        return concretize(family, instruction, rng)
    present = {m.name for m in mods}
    options = [m for m in MODIFIERS if m.operation == operation and m.name not in present]
    if not options:
        return instruction
    return f"{instruction} {_pick(rng, options).phrase}"


def _examples(
    family: TaskFamily, instruction: str, rng: np.random.Generator, labels: list[str] | None = None
) -> list[tuple[str, str]]:
    _, mods, inline = parse_instruction(instruction)
    if inline is not None:  # the task carries its input: one answer, no input
        return [("", expected_output(instruction, ""))]
    hard = any(m.hard_input for m in mods)
    out = []
    for label in labels or [None] * int(rng.integers(1, 4)):
        x, y = family.sample_example(rng, hard=hard, label=label)
        for m in mods:
            y = m.transform(y)
        out.append((x, y))
    return out


def bootstrap_context(rng: np.random.Generator) -> tuple[str | None, list[str]]:
    """A Self-Instruct header group and the in-context instructions of a bootstrap prompt.

    Mixed contexts draw every task from the header's group (all families for the plain
    header), as the unfocused templates do; most hold the generators' 8 tasks, some fewer (a
    small seed pool). Focused ones hold 4-8 tasks (a focus on a skill with few seed tasks
    gives short lists), all or all but one or two of one family, under the plain header, the
    family's group header or (rarely) another.
    """
    groups = tuple(g for g in prompts.SELF_INSTRUCT_HEADERS if g)
    full = prompts.NUM_PROMPT_TASKS
    if rng.random() < P_FOCUSED_CONTEXT:
        family = _pick(rng, FAMILIES)
        u = rng.random()
        group = None if u < 0.5 else family.group if u < 0.9 else _pick(rng, groups)
        n = int(rng.integers(4, full + 1))
        others = int(rng.integers(0, 3 if n >= 6 else 2))
        fams = [family] * (n - others) + [_pick(rng, FAMILIES) for _ in range(others)]
        rng.shuffle(fams)
    else:
        group = _pick(rng, (None,) + groups)
        n = full if rng.random() < 0.8 else int(rng.integers(4, full))
        fams = [_pick(rng, families_in(group)) for _ in range(n)]
    context = [random_instruction(rng, f, p_modified=0.1, p_inline=0.45)[1] for f in fams]
    return group, context


def continuation_family(
    rng: np.random.Generator, context_families: list[TaskFamily], group: str | None
) -> TaskFamily:
    """The family of one new task: mostly one of the context's, sometimes a neighbour of one,
    now and then any family the header allows."""
    u = rng.random()
    if context_families and u < P_CONTINUE_SAME + P_CONTINUE_NEIGHBOUR:
        anchor = _pick(rng, context_families)  # in proportion to its count in the context
        if u < P_CONTINUE_SAME:
            return anchor
        neighbours = [f for f in families_in(anchor.group) if f is not anchor]
        return _pick(rng, neighbours) if neighbours else anchor
    return _pick(rng, families_in(group))


def bootstrap_parts(rng: np.random.Generator) -> tuple[str, str]:
    """A bootstrap prompt and a continuation whose tasks relate to the in-context ones."""
    group, context = bootstrap_context(rng)
    seen = [f for f in (identify(c)[0] for c in context) if f is not None]
    n_new = int(rng.integers(2, prompts.MAX_TASK_NUMBER - len(context)))
    new = [
        random_instruction(
            rng, continuation_family(rng, seen, group), p_modified=0.0, p_inline=0.6
        )[1]
        for _ in range(n_new)
    ]
    prompt = prompts.bootstrap_prompt(prompts.SELF_INSTRUCT_HEADERS[group], context)
    rest = "".join(f"{len(context) + 2 + i}. {inst}\n" for i, inst in enumerate(new[1:]))
    return prompt, f" {new[0]}\n{rest}"


def bootstrap_document(rng: np.random.Generator) -> str:
    return "".join(bootstrap_parts(rng))


def make_parts(kind: str, rng: np.random.Generator) -> tuple[str, str]:
    """One training document of the given kind as (prompt, completion)."""
    if kind == "bootstrap":
        return bootstrap_parts(rng)
    if kind == "classification_check":
        family, inst = random_instruction(rng)
        answer = "Yes" if family.is_classification else "No"
        return prompts.classification_check_prompt(inst), f" {answer}\n"
    if kind == "input_first":
        generative = rng.random() < P_INPUT_FIRST_GENERATIVE
        family, inst = random_instruction(
            rng, _pick(rng, [f for f in FAMILIES if f.is_classification != generative])
        )
        blocks = [
            f"Input: {x}\nOutput: {y}" if x else f"Output: {y}"
            for x, y in _examples(family, inst, rng)
        ]
        text = blocks[0]
        for k, block in enumerate(blocks[1:], start=2):
            text += f"\n\nExample {k}\n{block}"
        return prompts.input_first_prompt(inst), text + "\n"
    if kind == "output_first":
        family, inst = random_instruction(
            rng, _pick(rng, [f for f in FAMILIES if f.is_classification])
        )
        labels = list(family.labels)
        rng.shuffle(labels)
        pairs = _examples(family, inst, rng, labels=labels)
        body = "\nClass label:".join(f" {y}\nInput: {x}" if x else f" {y}" for x, y in pairs)
        return prompts.output_first_prompt(inst), body + "\n"
    if kind in ("evol_depth", "evol_breadth"):
        operation = (
            "breadth"
            if kind == "evol_breadth"
            else _pick(rng, [op for op in prompts.EVOL_OPERATIONS if op != "breadth"])
        )
        _, inst = random_instruction(rng, p_modified=0.25)
        return prompts.evol_prompt(operation, inst), evolve(operation, inst, rng) + "\n"
    raise ValueError(f"unknown document kind {kind!r}")


def make_document(kind: str, rng: np.random.Generator) -> str:
    """One training document (prompt + completion) of the given kind."""
    return "".join(make_parts(kind, rng))


def iter_parts(seed: int) -> Iterator[tuple[str, str]]:
    """An endless stream of (prompt, completion) pairs, each completion ending with the EOS
    token; joined, they are :func:`iter_documents`' stream."""
    rng = np.random.default_rng(seed)
    kinds, weights = list(DOC_WEIGHTS), np.array(list(DOC_WEIGHTS.values()))
    weights = weights / weights.sum()
    while True:
        prompt, completion = make_parts(kinds[int(rng.choice(len(kinds), p=weights))], rng)
        yield prompt, completion + EOS


def iter_documents(seed: int) -> Iterator[str]:
    """An endless stream of documents, each ending with the EOS token."""
    for prompt, completion in iter_parts(seed):
        yield prompt + completion


__all__ = [
    "EOS",
    "FAMILY_BY_NAME",
    "bootstrap_context",
    "bootstrap_document",
    "bootstrap_parts",
    "continuation_family",
    "evolve",
    "iter_documents",
    "iter_parts",
    "make_document",
    "make_parts",
    "random_instruction",
]
