"""What every generator shares: the sampler, the template, the task pool and the RNG."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datagen_gym.backends.base import PartialBatchError
from datagen_gym.config import Config, GenerationConfig
from datagen_gym.generators import chat_prompts, parsing, prompts
from datagen_gym.generators.rouge_filter import RougeLFilter
from datagen_gym.labels import LabelSpace
from datagen_gym.results import Results
from datagen_gym.sampler import Sampler

logger = logging.getLogger(__name__)


class TaskPool:
    """Human seed tasks plus the machine tasks generated so far, and the ROUGE-L filter over
    all their instructions (new instructions must differ from every one of them)."""

    def __init__(self, seed_tasks: Sequence[dict[str, Any]], rouge_threshold: float = 0.7) -> None:
        if not seed_tasks:
            raise ValueError("the seed task pool is empty; Self-Instruct needs human seed tasks")
        for i, task in enumerate(seed_tasks):
            if not str(task.get("instruction", "")).strip():
                raise ValueError(f"seed task {i} has no 'instruction'")
        self.human = [dict(t) for t in seed_tasks]
        self.machine: list[dict[str, Any]] = []
        self.rouge = RougeLFilter(
            threshold=rouge_threshold, pool=[t["instruction"] for t in self.human]
        )

    def add_machine(self, tasks: Sequence[dict[str, Any]]) -> None:
        """Tasks that passed the filters (their instructions are already in ``rouge``)."""
        self.machine.extend(tasks)

    def all_tasks(self) -> list[dict[str, Any]]:
        return self.human + self.machine

    def skills(self) -> tuple[str, ...]:
        """The skills the human seed tasks name (their ``skill`` field), sorted."""
        return tuple(sorted({str(t["skill"]) for t in self.human if t.get("skill")}))

    def of_skill(self, skill: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The human and machine tasks of ``skill`` (all tasks for ``None``)."""
        if skill is None:
            return self.human, self.machine
        return (
            [t for t in self.human if t.get("skill") == skill],
            [t for t in self.machine if t.get("skill") == skill],
        )


class BaseGenerator:
    """Sampling parameters, template choice and the shared task pool.

    Args:
        config: the whole :class:`Config` (its ``generation`` and ``sampling`` sections are used).
        sampler: the :class:`Sampler` to call; by default one over the configured backend.
        seed_tasks: human seed tasks (dicts with ``instruction``, optional ``input``/``output``,
            ``is_classification``, ``group``); by default the embedded world's.
        seed: seeds the in-context sampling and the LM's sampling.
        pool: share an existing :class:`TaskPool` (the :class:`Generator` facade does).
        label_space: the task's classes (:class:`~datagen_gym.labels.LabelSpace`): every new
            task is then a classification task of these labels, its instances are asked for
            with them, and an instance whose label maps to none is dropped and counted
            (``Results.num_off_label``). ``None``: labels as generated (the embedded world).
    """

    method = "base"

    def __init__(
        self,
        config: Config | None = None,
        sampler: Sampler | None = None,
        seed_tasks: Sequence[dict[str, Any]] | None = None,
        seed: int | None = None,
        pool: TaskPool | None = None,
        label_space: LabelSpace | None = None,
    ) -> None:
        self.config = config or Config()
        self.label_space = label_space
        self.gen_config: GenerationConfig = self.config.generation
        self.sampler = sampler or Sampler.from_config(self.config.sampling)
        if pool is None:
            if seed_tasks is None:
                seed_tasks = load_seed_tasks(self.gen_config.seed_tasks_path)
            pool = TaskPool(seed_tasks, self.gen_config.rouge_threshold)
        self.pool = pool
        self.rng = np.random.default_rng(seed)
        self.template = prompts.get_template(self.gen_config.template)
        self.focus: str | None = None

    # ------------------------------------------------------------------ controls
    def get_sampling_params(self) -> dict[str, float]:
        return self.sampler.get_params()

    def set_sampling_params(
        self, temperature: float | None = None, top_p: float | None = None
    ) -> None:
        self.sampler.set_params(temperature=temperature, top_p=top_p)

    def select_template(self, name_or_index: str | int) -> prompts.Template:
        """Choose a prompt template by name or index (see :data:`prompts.TEMPLATES`)."""
        self.template = prompts.get_template(name_or_index)
        return self.template

    def set_focus(self, skill: str | None) -> str | None:
        """Focus generation on one skill (``None``: any). Self-Instruct then draws its in-context
        tasks from that skill's seed and machine tasks, Evol-Instruct evolves tasks of that
        skill; the records are tagged with it. Skills are the ``skill`` fields of the seed tasks.
        """
        if skill is not None and skill not in self.pool.skills():
            raise ValueError(
                f"unknown focus skill {skill!r}; the seed tasks name "
                f"{list(self.pool.skills()) or 'no skills'}"
            )
        self.focus = skill
        return skill

    def reseed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ helpers
    @property
    def chat_replies(self) -> bool:
        """Whether the teacher answers each prompt as a chat reply: its texts are then read with
        the real-model rules of :mod:`~datagen_gym.generators.parsing`, a completion with the
        papers' parsers."""
        return parsing.replies_in_chat(self.sampler.backend)

    @property
    def instruct_prompts(self) -> bool:
        """Whether the prompts are the instruct-model phrasings of
        :mod:`~datagen_gym.generators.chat_prompts`, not the papers' completion prompts of
        :mod:`~datagen_gym.generators.prompts`: ``generation.prompt_style`` (``auto``: for
        chat-format teachers only)."""
        style = self.gen_config.prompt_style
        return style == "instruct" or (style == "auto" and self.chat_replies)

    @property
    def prompt_set(self):
        """The module whose functions build the prompts: ``chat_prompts`` or ``prompts``."""
        return chat_prompts if self.instruct_prompts else prompts

    def stop_sequences(self, path: str) -> list[str]:
        """The stop strings of one prompt path (``bootstrap``, ``classification_check``,
        ``input_first``, ``output_first``, ``evol``): ``sampling.stop`` when set; else, for
        completion prompts to a real teacher, the papers' (Self-Instruct stops the list at task
        16 or a blank line, instances at the next ``Task:`` or the example past the last, the
        check at the end of its line), so that a base model does not run on into the next
        task; none for chat replies (the model ends its turn) and the embedded teacher (whose
        world is generated without them)."""
        sampling = self.config.sampling
        if sampling.stop is not None:
            return list(sampling.stop)
        embedded = sampling.backend == "embedded" and sampling.teacher is None
        if embedded or self.instruct_prompts:
            return []
        return {
            "bootstrap": [
                "\n\n",
                f"\n{prompts.MAX_TASK_NUMBER}.",
                f"\n{prompts.MAX_TASK_NUMBER} .",
            ],
            "classification_check": ["\n", "Task:"],
            "input_first": ["Task:", f"Example {self.gen_config.max_instances_per_task + 1}"],
            "output_first": ["Task:", "\n\n\n"],
            "evol": ["\n\n", "#Given Prompt#", "#The Given Prompt#"],
        }[path]

    def _lm(self, prompt_list: list[str], max_new_tokens: int, path: str) -> list[str]:
        # A fresh torch seed per call, drawn from our RNG, makes the whole run repeatable.
        try:
            return self.sampler.generate(
                prompt_list,
                max_new_tokens=max_new_tokens,
                seed=int(self.rng.integers(2**31 - 1)),
                stop=self.stop_sequences(path),
            )
        except PartialBatchError as exc:
            if exc.num_completed == 0:
                raise
            # Keep what a remote backend finished before the fault. A failed prompt reads as an
            # empty continuation: the bootstrap, instance and evol parsers yield nothing from it
            # (so it is dropped) and the classification check reads it as "not classification".
            logger.warning(
                "keeping %d/%d completions after a backend fault: %s",
                exc.num_completed,
                len(prompt_list),
                exc,
            )
            return [c if c is not None else "" for c in exc.completions]

    def _record(
        self, instruction: str, input_text: str, output: str, **meta: Any
    ) -> dict[str, Any]:
        params = self.sampler.get_params()
        return {
            "instruction": instruction,
            "input": input_text,
            "output": output,
            "method": self.method,
            "template": self.template.name,
            "temperature": round(params["temperature"], 4),
            "top_p": round(params["top_p"], 4),
            **meta,
        }

    def _instances(
        self, tasks: list[dict[str, Any]], results: Results
    ) -> list[list[tuple[str, str]]]:
        """Self-Instruct instance generation: output-first for classification, else input-first.
        ``results`` counts the instances parsed and those dropped off-label."""
        if not tasks:
            return []
        formats = self.prompt_set
        names = self.label_space.labels if self.label_space is not None else None
        paths = ["output_first" if t["is_classification"] else "input_first" for t in tasks]
        prompt_list = [
            formats.output_first_prompt(t["instruction"], names)
            if t["is_classification"]
            else formats.input_first_prompt(t["instruction"])
            for t in tasks
        ]
        # One call for the batch (the embedded world's records depend on it), or one per prompt
        # path when the two paths stop at different strings.
        texts: list[str] = [""] * len(tasks)
        if self.stop_sequences("output_first") == self.stop_sequences("input_first"):
            texts = self._lm(prompt_list, max_new_tokens=64, path=paths[0])
        else:
            for path in ("output_first", "input_first"):
                idx = [i for i, p in enumerate(paths) if p == path]
                if idx:
                    batch = self._lm([prompt_list[i] for i in idx], max_new_tokens=64, path=path)
                    for i, text in zip(idx, batch):
                        texts[i] = text
        chat = self.chat_replies
        return [
            self._keep_instances(
                results,
                task["instruction"],
                parsing.parse_output_first(text, chat)
                if task["is_classification"]
                else parsing.parse_input_first(text, chat),
            )
            for task, text in zip(tasks, texts)
        ]

    def _keep_instances(
        self, results: Results, instruction: str, pairs: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """Self-Instruct's instance filters, then the label space (labels mapped onto it,
        off-label instances dropped and counted in ``results``), at most
        ``max_instances_per_task``."""
        from datagen_gym.generators.instruction_filters import keep_instance

        seen, kept = set(), []
        results.num_parsed += len(pairs)
        for x, y in pairs:
            if self.label_space is not None:
                label = self.label_space.map(y)
                if label is None:
                    results.num_off_label += 1
                    continue
                y = label
            if (x, y) not in seen and keep_instance(instruction, x, y):
                seen.add((x, y))
                kept.append((x, y))
        return kept[: self.gen_config.max_instances_per_task]


# The embedded world's human seed pool, shipped as data (see datagen_gym.world.seed_tasks).
EMBEDDED_SEED_TASKS = Path(__file__).resolve().parent / "seed_tasks.jsonl"


def load_seed_tasks(path: str | None) -> list[dict[str, Any]]:
    """Seed tasks from a JSONL file, or the embedded world's pool for ``None``."""
    from datagen_gym.results import read_jsonl

    if path is None:
        return read_jsonl(EMBEDDED_SEED_TASKS)

    rows = read_jsonl(path)
    for i, row in enumerate(rows, start=1):
        if "instruction" not in row:
            raise ValueError(f"{path}:{i}: a seed task needs an 'instruction' field")
        row.setdefault("is_classification", False)
        row.setdefault("group", None)
    return rows
