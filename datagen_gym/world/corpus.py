"""The teacher's training corpus: documents in the exact prompt formats the generators send.

Each document is one prompt of :mod:`datagen_gym.generators.prompts` followed by a correct
completion written from the task families' grammars and solvers. A model trained on it answers
the real Self-Instruct and Evol-Instruct prompts; how often it answers *correctly* and how varied
its answers are then depends on the sampling temperature and top_p, which is the trade-off the
agent learns.
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from datagen_gym.generators import prompts
from datagen_gym.world.tasks import (
    FAMILIES,
    FAMILY_BY_NAME,
    MODIFIERS,
    TaskFamily,
    families_in,
    expected_output,
    identify,
    parse_instruction,
)

EOS = "<|endoftext|>"
# Share of each document kind in the corpus.
DOC_WEIGHTS = {
    "bootstrap": 0.34,
    "classification_check": 0.08,
    "input_first": 0.26,
    "output_first": 0.14,
    "evol_depth": 0.14,
    "evol_breadth": 0.04,
}


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def concretize(family: TaskFamily, instruction: str, rng: np.random.Generator) -> str:
    """Replace one general word of the instruction by the family's specific one."""
    options = [(g, s) for g, s in family.concretize.items() if re.search(rf"\b{g}\b", instruction)]
    if not options:
        return instruction
    general, specific = _pick(rng, options)
    return re.sub(rf"\b{general}\b", specific, instruction, count=1)


def random_instruction(rng: np.random.Generator, family: TaskFamily | None = None,
                       p_modified: float = 0.3, p_inline: float = 0.5) -> tuple[TaskFamily, str]:
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


def _examples(family: TaskFamily, instruction: str, rng: np.random.Generator,
              labels: list[str] | None = None) -> list[tuple[str, str]]:
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


def make_document(kind: str, rng: np.random.Generator) -> str:
    """One training document (prompt + completion) of the given kind."""
    if kind == "bootstrap":
        group = _pick(rng, (None,) + tuple(g for g in prompts.SELF_INSTRUCT_HEADERS if g))
        fams = families_in(group)
        context = [
            random_instruction(rng, _pick(rng, fams), p_modified=0.1, p_inline=0.4)[1]
            for _ in range(prompts.NUM_PROMPT_TASKS)
        ]
        # Continuations favour families already in the list, as a real LM follows its context.
        seen = [f for f in fams if any(identify(c)[0] is f for c in context)]
        n_new = int(rng.integers(1, prompts.MAX_TASK_NUMBER - prompts.NUM_PROMPT_TASKS))
        new = [
            random_instruction(rng, _pick(rng, seen if seen and rng.random() < 0.5 else fams),
                               p_modified=0.0, p_inline=0.6)[1]
            for _ in range(n_new)
        ]
        prompt = prompts.bootstrap_prompt(prompts.SELF_INSTRUCT_HEADERS[group], context)
        rest = "".join(f"{prompts.NUM_PROMPT_TASKS + 2 + i}. {inst}\n"
                       for i, inst in enumerate(new[1:]))
        return f"{prompt} {new[0]}\n{rest}"
    if kind == "classification_check":
        family, inst = random_instruction(rng)
        answer = "Yes" if family.is_classification else "No"
        return prompts.classification_check_prompt(inst) + f" {answer}\n"
    if kind == "input_first":
        family, inst = random_instruction(rng)
        blocks = [f"Input: {x}\nOutput: {y}" if x else f"Output: {y}"
                  for x, y in _examples(family, inst, rng)]
        text = prompts.input_first_prompt(inst) + blocks[0]
        for k, block in enumerate(blocks[1:], start=2):
            text += f"\n\nExample {k}\n{block}"
        return text + "\n"
    if kind == "output_first":
        family, inst = random_instruction(rng, _pick(rng, [f for f in FAMILIES
                                                          if f.is_classification]))
        labels = list(family.labels)
        rng.shuffle(labels)
        pairs = _examples(family, inst, rng, labels=labels)
        body = "\nClass label:".join(f" {y}\nInput: {x}" if x else f" {y}" for x, y in pairs)
        return prompts.output_first_prompt(inst) + body + "\n"
    if kind in ("evol_depth", "evol_breadth"):
        operation = "breadth" if kind == "evol_breadth" else _pick(
            rng, [op for op in prompts.EVOL_OPERATIONS if op != "breadth"])
        _, inst = random_instruction(rng, p_modified=0.25)
        return prompts.evol_prompt(operation, inst) + evolve(operation, inst, rng) + "\n"
    raise ValueError(f"unknown document kind {kind!r}")


def iter_documents(seed: int) -> Iterator[str]:
    """An endless stream of documents, each ending with the EOS token."""
    rng = np.random.default_rng(seed)
    kinds, weights = list(DOC_WEIGHTS), np.array(list(DOC_WEIGHTS.values()))
    weights = weights / weights.sum()
    while True:
        yield make_document(kinds[int(rng.choice(len(kinds), p=weights))], rng) + EOS


__all__ = ["EOS", "evolve", "iter_documents", "make_document", "random_instruction",
           "FAMILY_BY_NAME"]
