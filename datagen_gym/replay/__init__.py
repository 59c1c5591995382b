"""The replay tier: DataGen steps from a cache of real teacher batches (see :mod:`.generator`).

A live ``DataGen-v0`` step spends ~97% of its time in the teacher's generation; the target's
training is cheap. With ``gym.make("DataGen-v0", replay_cache="cache.sqlite")`` the env's
generator is a :class:`ReplayGenerator`: each step looks up the current settings (template,
focus, temperature and top_p rounded to the cache's 0.05 grid, batch size) in a
:class:`ReplayCache` and trains the target, for real, on a cached batch not yet used in the
episode; when the key has none left it generates live, stores the batch and uses it.
``python -m datagen_gym.replay.build`` fills a cache for a grid of settings ahead of time.

What replay does not reproduce of a live step:

* **The episode's task pool in the prompts.** Live, the instructions a step keeps join the
  pool: later Self-Instruct prompts take 2 of their 8 in-context tasks from it, and
  Evol-Instruct evolves its tasks too (evolving evolved tasks). Every cached batch was
  generated from the human seed pool alone, as if it were an episode's first step.
* **The ROUGE-L filter against that pool, only approximately.** Live, a later Self-Instruct
  step drops candidates too similar to the instructions kept earlier in the episode. Replay
  does not, by default; ``ReplayGenerator(episode_filter=True)`` applies the same filter to
  each replayed Self-Instruct batch against the instructions replayed before it in the
  episode, but the candidates it filters are those of first steps (more alike than a live
  episode's), and measured it brought the final metric no closer to live.
* **Exact settings.** Temperature and top_p are rounded to the grid (0.05: the default action
  delta, so discrete actions from the default start stay on the grid; continuous actions and
  randomised starts move by up to 0.025).
* **Sampling randomness.** A key has a finite set of replicas, so long training sees the same
  batches again across episodes (never twice in one episode).

How much this changes the outcome is measured in ``benchmarks/results/replay.md``.
"""

from datagen_gym.replay.cache import (
    DEFAULT_RESOLUTION,
    CacheKey,
    ReplayCache,
    ReplayCacheError,
    Replica,
    quantise,
)
from datagen_gym.replay.generator import ReplayGenerator
from datagen_gym.replay.identity import generator_identity

__all__ = [
    "DEFAULT_RESOLUTION",
    "CacheKey",
    "Replica",
    "ReplayCache",
    "ReplayCacheError",
    "ReplayGenerator",
    "generator_identity",
    "quantise",
]
