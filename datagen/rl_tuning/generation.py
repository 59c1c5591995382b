"""Records with fixed settings: what ``datagen generate`` and :meth:`RLTuner.generate_dataset`
produce once the settings are chosen."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from datagen_gym.config import Config
from datagen_gym.generators.generator import Generator
from datagen_gym.labels import LabelSpace
from datagen_gym.results import Results
from datagen_gym.sampler import Sampler


def generate_with_settings(
    config: Config,
    n: int,
    temperature: float,
    top_p: float,
    template: str | int,
    seed: int = 0,
    focus: str | None = None,
    sampler: Sampler | None = None,
    seed_tasks: Sequence[dict[str, Any]] | None = None,
    label_space: LabelSpace | None = None,
    max_rounds: int = 50,
    on_batch: Callable[[Results], None] | None = None,
) -> Results:
    """``n`` records from a fresh :class:`Generator` (human seed pool only) with fixed settings.

    Generation repeats until ``n`` records pass the filters, ``max_rounds`` rounds ran, or 3
    rounds in a row kept nothing (so it may return fewer). ``sampler`` reuses a loaded backend
    (its parameters are overwritten); by default one over ``config.sampling`` is built.
    Bad settings raise ``ValueError`` naming the allowed range or names.
    """
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    n = int(n)
    if sampler is None:
        sampler = Sampler.from_config(config.sampling)
    sampler.set_params(temperature=float(temperature), top_p=float(top_p))
    generator = Generator(
        config, sampler=sampler, seed_tasks=seed_tasks, seed=int(seed), label_space=label_space
    )
    generator.select_template(template)
    generator.set_focus(focus)
    results, empty, rounds = Results(), 0, 0
    while len(results) < n and rounds < max_rounds and empty < 3:
        batch = generator.generate(n - len(results), step=None)
        rounds += 1
        empty = empty + 1 if len(batch) == 0 else 0
        # No env step produced these records: drop the generator's "step": null.
        batch.data = [
            {k: v for k, v in r.items() if k != "step"} for r in batch.data[: n - len(results)]
        ]
        results.extend(batch)
        if on_batch is not None:
            on_batch(batch)
    return results
