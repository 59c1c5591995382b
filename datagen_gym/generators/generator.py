"""Generator: Self-Instruct and Evol-Instruct over one sampler and one task pool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datagen_gym.config import Config
from datagen_gym.generators import prompts
from datagen_gym.generators.base import BaseGenerator
from datagen_gym.generators.evol_instruct import EvolInstructGenerator
from datagen_gym.generators.self_instruct import SelfInstructGenerator
from datagen_gym.labels import LabelSpace
from datagen_gym.results import Results
from datagen_gym.sampler import Sampler


class Generator(BaseGenerator):
    """The object the env and :class:`RLTuner` drive.

    Selecting a template also selects the method: ``self_instruct*`` templates run
    :class:`SelfInstructGenerator`, ``evol_*`` templates :class:`EvolInstructGenerator`; both
    share the sampler, the RNG and the pool, so evolved tasks can seed Self-Instruct prompts
    and bootstrapped tasks can be evolved.
    """

    method = "mixed"

    def __init__(
        self,
        config: Config | None = None,
        sampler: Sampler | None = None,
        seed_tasks: Sequence[dict[str, Any]] | None = None,
        seed: int | None = None,
        label_space: LabelSpace | None = None,
    ) -> None:
        super().__init__(config, sampler, seed_tasks, seed, label_space=label_space)
        shared = dict(pool=self.pool, label_space=label_space)
        self.self_instruct = SelfInstructGenerator(self.config, self.sampler, **shared)
        self.evol_instruct = EvolInstructGenerator(self.config, self.sampler, **shared)
        self._sync()

    @property
    def active(self) -> BaseGenerator:
        return self.self_instruct if self.template.method == "self_instruct" else self.evol_instruct

    def _sync(self) -> None:
        for g in (self.self_instruct, self.evol_instruct):
            g.rng = self.rng
            g.template = self.template
            g.focus = self.focus

    def select_template(self, name_or_index: str | int) -> prompts.Template:
        template = super().select_template(name_or_index)
        self._sync()
        return template

    def set_focus(self, skill: str | None) -> str | None:
        super().set_focus(skill)
        self._sync()
        return skill

    def set_method(self, method: str) -> prompts.Template:
        """Switch generator, keeping the current template if it belongs to ``method``."""
        if method not in ("self_instruct", "evol_instruct"):
            raise ValueError(f"method must be 'self_instruct' or 'evol_instruct', got {method!r}")
        if self.template.method != method:
            self.select_template(next(t.name for t in prompts.TEMPLATES if t.method == method))
        return self.template

    def reseed(self, seed: int | None) -> None:
        super().reseed(seed)
        self._sync()

    def reset_pool(self) -> None:
        """Forget the machine tasks (a new episode starts from the human seed pool)."""
        from datagen_gym.generators.base import TaskPool

        self.pool = TaskPool(self.pool.human, self.gen_config.rouge_threshold)
        for g in (self.self_instruct, self.evol_instruct):
            g.pool = self.pool

    def generate(self, n: int, step: int | None = None) -> Results:
        """Up to ``n`` records with the current template, temperature and top_p."""
        return self.active.generate(n, step=step)

    generate_from_seed = generate

    def evolve_instructions(self, instructions: Sequence[str], operation: str | None = None):
        return self.evol_instruct.evolve_instructions(instructions, operation)
