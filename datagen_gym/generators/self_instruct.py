"""Self-Instruct (Wang et al., 2023): bootstrap new tasks from a seed pool with in-context examples.

One round: build prompts of 8 in-context instructions (6 human seed tasks, 2 machine tasks once
there are any), let the LM continue the numbered list, split the continuation into tasks, drop
those the paper's rules reject and those with ROUGE-L F1 > 0.7 against any task in the pool,
ask the LM whether each survivor is a classification task, then generate its instances
output-first (classification) or input-first (the rest).
"""

from __future__ import annotations

import math
from typing import Any

from datagen_gym.generators import chat_prompts, parsing, prompts
from datagen_gym.generators.base import BaseGenerator
from datagen_gym.generators.instruction_filters import instruction_rejection
from datagen_gym.results import Results

# Bootstrap prompts per requested record. Decoding cost grows with the number of new tokens,
# hardly with the batch, so one wide round beats several narrow ones.
_PROMPTS_PER_RECORD = 0.25


class SelfInstructGenerator(BaseGenerator):
    """Self-Instruct's instruction bootstrap, filters and instance generation."""

    method = "self_instruct"
    max_rounds = 1

    def _check_template(self) -> prompts.Template:
        if self.template.method != self.method:
            raise ValueError(
                f"template {self.template.name!r} is an Evol-Instruct operation; "
                "select a self_instruct* template for SelfInstructGenerator"
            )
        return self.template

    def bootstrap_prompts(self, num_prompts: int) -> list[str]:
        """Prompts of ``num_prompt_instructions`` in-context tasks (2 of them machine tasks), of
        the focused skill's tasks when there is a focus (fewer if it has fewer tasks)."""
        template = self._check_template()
        humans, machine = self.pool.of_skill(self.focus)
        if self.focus is None:  # a focus is narrower than the template's group
            humans = [t for t in humans if template.group in (None, t.get("group"))] or humans
        # Seeds split off a user's labelled data share their instruction: list each once.
        humans = list({t["instruction"]: t for t in humans}.values())
        cfg = self.gen_config
        formats = self.prompt_set
        out = []
        for _ in range(num_prompts):
            n_machine = min(cfg.num_machine_instructions, len(machine))
            n_human = min(cfg.num_prompt_instructions - n_machine, len(humans))
            picked = [
                humans[i]["instruction"]
                for i in self.rng.choice(len(humans), n_human, replace=False)
            ]
            picked += [
                machine[i]["instruction"]
                for i in self.rng.choice(len(machine), n_machine, replace=False)
            ]
            self.rng.shuffle(picked)
            out.append(formats.bootstrap_prompt(template.header, picked))
        return out

    def filter_instructions(self, candidates: list[str]) -> list[str]:
        """The rule filters, then the ROUGE-L filter (which adds survivors to the pool)."""
        cfg = self.gen_config
        ruled = [
            c
            for c in candidates
            if instruction_rejection(
                c, cfg.blacklist, cfg.min_instruction_words, cfg.max_instruction_words
            )
            is None
        ]
        novel = self.pool.rouge.filter(ruled, add=True)
        return [c for c, ok in zip(ruled, novel) if ok]

    def classify(self, instructions: list[str]) -> list[bool]:
        """Ask the LM, few-shot, whether each task is a classification task. A task with a
        label space needs no question: every new task is one of its classification tasks."""
        if self.label_space is not None:
            return [True] * len(instructions)
        # the papers' budget of 3 tokens is too short for an instruct model's "The answer is No."
        budget = chat_prompts.CLASSIFICATION_CHECK_TOKENS if self.instruct_prompts else 3
        answers = self._lm(
            [self.prompt_set.classification_check_prompt(i) for i in instructions],
            max_new_tokens=budget,
            path="classification_check",
        )
        return [parsing.parse_classification_check(a, self.chat_replies) for a in answers]

    def generate_from_seed(self, n: int, step: int | None = None) -> Results:
        """Up to ``n`` new records (fewer when the filters reject most candidates)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        results = Results()
        for _ in range(self.max_rounds):
            need = n - len(results)
            if need <= 0:
                break
            num_prompts = math.ceil(need * _PROMPTS_PER_RECORD)
            continuations = self._lm(
                self.bootstrap_prompts(num_prompts),
                max_new_tokens=self.sampler.max_new_tokens,
                path="bootstrap",
            )
            chat = self.chat_replies
            candidates = [c for text in continuations for c in parsing.parse_bootstrap(text, chat)]
            kept = self.filter_instructions(candidates)
            results.num_candidates += len(candidates)
            results.num_kept += len(kept)
            flags = self.classify(kept) if kept else []
            tasks: list[dict[str, Any]] = [
                {"instruction": inst, "is_classification": flag, "group": None, "skill": self.focus}
                for inst, flag in zip(kept, flags)
            ]
            self.pool.add_machine(tasks)
            for task, pairs in zip(tasks, self._instances(tasks, results)):
                for x, y in pairs:
                    results.data.append(
                        self._record(
                            task["instruction"],
                            x,
                            y,
                            step=step,
                            is_classification=task["is_classification"],
                            skill=task["skill"],
                        )
                    )
            if not candidates:
                break
        results.data = results.data[:n]
        return results

    generate = generate_from_seed
