"""Evol-Instruct (Xu et al., 2023, WizardLM): evolve instructions in depth and in breadth.

In-depth operations rewrite an instruction into a harder one (add constraints, deepen,
concretize, increase reasoning steps, complicate the input); in-breadth evolving writes a new,
rarer instruction of the same domain. Failed evolutions are eliminated as in the paper: no
change from the original, words copied from the evolving prompt, a response that is a short
refusal ("sorry", < 80 words), or a response of only punctuation and stop words. Survivors get
responses (input-first instance generation) and join the pool, so they can evolve again.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from datagen_gym.generators import parsing
from datagen_gym.generators.base import BaseGenerator
from datagen_gym.results import Results

COPIED_PROMPT_WORDS = (
    "#the given prompt#",
    "#rewritten prompt#",
    "#given prompt#",
    "#created prompt#",
    "given prompt",
    "rewritten prompt",
    "created prompt",
)


@dataclass
class Evolution:
    """One evolution attempt: the source, what the LM wrote, and why it failed (or None)."""

    source: str
    evolved: str
    operation: str
    failure: str | None = None


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def instruction_failure(source: str, evolved: str) -> str | None:
    """Elimination of an evolved instruction: ``empty``, ``no_change`` or ``copied_prompt``."""
    if not evolved.strip():
        return "empty"
    if _normalise(evolved) == _normalise(source):
        return "no_change"
    if any(w in evolved.lower() for w in COPIED_PROMPT_WORDS):
        return "copied_prompt"
    return None


def response_failure(response: str) -> str | None:
    """Elimination of a response: ``refusal`` (short, says sorry) or ``stop_words_only``."""
    if "sorry" in response.lower() and len(response.split()) < 80:
        return "refusal"
    words = [w.strip(string.punctuation).lower() for w in response.split()]
    if all(not w or w in ENGLISH_STOP_WORDS for w in words):
        return "stop_words_only"
    return None


class EvolInstructGenerator(BaseGenerator):
    """WizardLM's Evol-Instruct over the shared task pool."""

    method = "evol_instruct"

    def _operation(self) -> str:
        if self.template.method != self.method:
            raise ValueError(
                f"template {self.template.name!r} is a Self-Instruct prompt; "
                "select an evol_* template for EvolInstructGenerator"
            )
        return self.template.operation

    def evolve_instructions(
        self, instructions: Sequence[str], operation: str | None = None
    ) -> list[Evolution]:
        """Evolve each instruction once with the template's operation (or ``operation``)."""
        operation = operation or self._operation()
        texts = self._lm(
            [self.prompt_set.evol_prompt(operation, i) for i in instructions],
            max_new_tokens=64,
            path="evol",
        )
        chat = self.chat_replies
        out = []
        for source, text in zip(instructions, texts):
            evolved = parsing.parse_evol(text, chat)
            out.append(Evolution(source, evolved, operation, instruction_failure(source, evolved)))
        return out

    def generate(self, n: int, step: int | None = None) -> Results:
        """Evolve instructions drawn from the pool and answer the survivors: up to ``n`` records."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        humans, machine = self.pool.of_skill(self.focus)
        pool = humans + machine
        num_sources = math.ceil(n / 2)
        # A focused skill may have fewer tasks than sources are needed: a task is then evolved
        # more than once (the LM samples a different evolution each time).
        picks = self.rng.choice(len(pool), size=num_sources, replace=len(pool) < num_sources)
        sources = [pool[i] for i in picks]
        evolutions = self.evolve_instructions([s["instruction"] for s in sources])
        results = Results(num_candidates=len(evolutions))
        survivors = []
        for src, evo in zip(sources, evolutions):
            if evo.failure is None:
                survivors.append(
                    {
                        "instruction": evo.evolved,
                        # answered input-first; output-first with the task's labels
                        "is_classification": self.label_space is not None,
                        "group": src.get("group"),
                        "source": src["instruction"],
                        # In-breadth writes a task of another kind: no skill carries.
                        "skill": None if self.template.operation == "breadth" else src.get("skill"),
                    }
                )
        answered = []
        for task, pairs in zip(survivors, self._instances(survivors, results)):
            pairs = [(x, y) for x, y in pairs if response_failure(y) is None]
            if not pairs:
                continue
            answered.append(task)
            for x, y in pairs:
                results.data.append(
                    self._record(
                        task["instruction"],
                        x,
                        y,
                        step=step,
                        evolved_from=task["source"],
                        operation=self.template.operation,
                        skill=task["skill"],
                    )
                )
        results.num_kept = len(answered)
        # Only evolutions with a usable response join the pool, where they can evolve again.
        self.pool.rouge.add([t["instruction"] for t in answered])
        self.pool.add_machine(answered)
        results.data = results.data[:n]
        return results

    def generate_from_seed(self, n: int, step: int | None = None) -> Results:
        return self.generate(n, step=step)
