"""ReplayGenerator: the env's generator, answered from a replay cache when it can be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from datagen_gym.generators import prompts
from datagen_gym.generators.generator import Generator
from datagen_gym.replay.cache import CacheKey, ReplayCache, ReplayCacheError, Replica
from datagen_gym.replay.identity import generator_identity, teacher_identity
from datagen_gym.results import Results
from datagen_gym.sampler import TEMPERATURE_RANGE, TOP_P_RANGE

# Mixed into the episode seed so that the replica draws are a stream of their own, not the
# live generator's (which the same seed also drives, for the misses).
_DRAW_STREAM = 0x5E91A7


class ReplayGenerator:
    """Drop-in for :class:`Generator` in :class:`~datagen_gym.envs.DataGenEnv`: ``generate``
    returns a cached batch of the current settings when the cache holds one not yet used in
    this episode, and otherwise generates one live, stores it and returns it.

    Every control (sampling parameters, template, focus, seeding, the pool) is the live
    generator's, so the env, :class:`RLTuner` and checkpoints see the same object as without
    replay; the settings an agent sets are kept exactly, only the cache lookup rounds them.

    Replica choice: uniformly among the key's replicas not yet returned in this episode, with an
    RNG reseeded by :meth:`reseed` (the env reseeds at every ``reset``), so the same seed and the
    same cache file give the same batches, hence the same rewards (a run that stores misses
    changes the file: a rerun then also draws from the new replicas). ``reset_pool`` (called at
    every ``reset``) starts a new episode. A miss generates from a fresh human seed pool with
    the key's exact settings, so that every replica of a key is drawn from one distribution
    whether a build or an episode made it; it is stored unfiltered and then returned through
    the same episode filter as a hit.

    Args:
        live: the generator to wrap (its sampler, template and focus are the env's controls).
        cache: a :class:`ReplayCache` or the path of one (opened or created with the live
            generator's teacher and world identity).
        store_misses: store live batches as new replicas (off: a read-only shared cache).
        episode_filter: apply the ROUGE-L filter against the instructions already kept in the
            episode to each replayed Self-Instruct batch, as a live step filters against the
            episode's pool. Off by default: measured on 6 settings x 3 seeds it did not bring
            the final metric closer to live (mean error 0.028 vs 0.030) and ordered the
            settings less like live (Spearman 0.77 vs 0.94), because cached batches, all drawn
            from first-step prompts, resemble each other more than a live episode's steps do
            (benchmarks/results/replay.md).
    """

    def __init__(
        self,
        live: Generator,
        cache: ReplayCache | str | Path,
        store_misses: bool = True,
        episode_filter: bool = False,
    ) -> None:
        self.live = live
        self.episode_filter = episode_filter
        identity = generator_identity(live)
        if not isinstance(cache, ReplayCache):
            cache = ReplayCache(cache, identity, read_only=not store_misses, info=identity)
        else:
            cache.check_identity(identity)
        self._teacher = identity["teacher"]
        self.cache = cache
        self.store_misses = store_misses and not cache.read_only
        self._draws = np.random.default_rng()
        self._used: set[int] = set()
        # Batches served from the cache / generated live over this object's life, and the id
        # of the last batch's replica (negative: generated live and not stored).
        self.hits = self.misses = 0
        self.last_replica_id: int | None = None

    # ------------------------------------------------------------------ delegated controls
    @property
    def config(self):
        return self.live.config

    @property
    def gen_config(self):
        return self.live.gen_config

    @property
    def sampler(self):
        return self.live.sampler

    @property
    def pool(self):
        return self.live.pool

    @property
    def rng(self) -> np.random.Generator:
        return self.live.rng

    @property
    def template(self) -> prompts.Template:
        return self.live.template

    @property
    def focus(self) -> str | None:
        return self.live.focus

    method = Generator.method

    def get_sampling_params(self) -> dict[str, float]:
        return self.live.get_sampling_params()

    def set_sampling_params(
        self, temperature: float | None = None, top_p: float | None = None
    ) -> None:
        self.live.set_sampling_params(temperature=temperature, top_p=top_p)

    def select_template(self, name_or_index: str | int) -> prompts.Template:
        return self.live.select_template(name_or_index)

    def set_focus(self, skill: str | None) -> str | None:
        return self.live.set_focus(skill)

    def set_method(self, method: str) -> prompts.Template:
        return self.live.set_method(method)

    def evolve_instructions(self, instructions, operation: str | None = None):
        return self.live.evolve_instructions(instructions, operation)

    def reseed(self, seed: int | None) -> None:
        """Reseed the live generator and the replica draws (the env does so at every reset)."""
        self.live.reseed(seed)
        self._draws = np.random.default_rng(None if seed is None else [int(seed), _DRAW_STREAM])

    def reset_pool(self) -> None:
        """A new episode: every replica may be drawn again; the live pool (and with it the
        episode filter) restarts from the human seed tasks."""
        self.live.reset_pool()
        self._used.clear()

    def __getattr__(self, name: str) -> Any:
        # Anything else a caller reads from a Generator (self_instruct, active...) is the live
        # generator's. Only called for names not found on this object.
        if name == "live":  # not yet set (during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.live, name)

    # ------------------------------------------------------------------ generation
    def current_key(self, n: int) -> CacheKey:
        p = self.live.get_sampling_params()
        return self.cache.key(
            self.live.template.name, self.live.focus, p["temperature"], p["top_p"], n
        )

    def generate(self, n: int, step: int | None = None) -> Results:
        """A batch for the current settings: an unused cached replica, else a live one (stored)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self._check_teacher()
        key = self.current_key(n)
        # Always one draw per call, hit or miss: a miss that a later run finds cached then
        # shifts no other draw of the episode.
        u = float(self._draws.random())
        available = [i for i in self.cache.replica_ids(key) if i not in self._used]
        if available:
            replica = self.cache.get(available[int(u * len(available))])
            self.hits += 1
        else:
            replica = self.generate_replica(key)
            self.misses += 1
        self._used.add(replica.id)
        self.last_replica_id = replica.id
        records, num_kept = self._episode_filter(replica, key)
        return Results(
            [{**r, "step": step} for r in records],
            num_candidates=replica.num_candidates,
            num_kept=num_kept,
        )

    def _episode_filter(self, replica: Replica, key: CacheKey) -> tuple[list[dict[str, Any]], int]:
        """The replica's records as this episode would have kept them: Self-Instruct drops the
        instructions (and their records) too similar (ROUGE-L) to an instruction already kept
        in the episode, as the live filter does against the episode's pool; every kept
        instruction joins that filter, Evol-Instruct's unfiltered, as live."""
        if not self.episode_filter or not replica.records:
            return replica.records, replica.num_kept
        rouge = self.live.pool.rouge
        instructions = list(dict.fromkeys(r["instruction"] for r in replica.records))
        if prompts.get_template(key.template).method != "self_instruct":
            rouge.add(instructions)
            return replica.records, replica.num_kept
        novel = rouge.filter(instructions, add=True)
        kept = {i for i, ok in zip(instructions, novel) if ok}
        return (
            [r for r in replica.records if r["instruction"] in kept],
            max(0, replica.num_kept - (len(instructions) - len(kept))),
        )

    generate_from_seed = generate

    def _check_teacher(self) -> None:
        """Refuse to go on if the teacher's files changed since the cache was opened.

        Safetensors weights can stay memory-mapped after loading, so overwriting the files (a
        retrained teacher written in place) can change the weights of a running process (a
        benchmark run saw its live episodes change at that moment): its misses would then
        store the new teacher's batches under the old identity. Re-hashing
        costs a few stat calls (the hash is cached per file sizes and mtimes)."""
        now = teacher_identity(self.live.sampler.backend)[0]
        if now != self._teacher:
            raise ReplayCacheError(
                f"{self.cache.path}: the teacher's files changed since this cache was opened "
                f"(teacher hash {self._teacher[:12]} -> {now[:12]}); restart with a cache of "
                "the new teacher"
            )

    def generate_replica(
        self, key: CacheKey, origin: str = "miss", max_replicas: int | None = None
    ) -> Replica | None:
        """Generate a batch live with the key's exact settings from a fresh seed pool, store it
        as a new replica (``origin``: ``"miss"`` or ``"build"``) and return it.

        With ``max_replicas`` (a build) the batch is stored only while the key holds fewer
        replicas, and ``None`` is returned when another process filled the key meanwhile."""
        temperature, top_p = key.values(self.cache.resolution)
        # A coarse grid's end points can fall just outside the sampler's bounds.
        temperature = min(max(temperature, TEMPERATURE_RANGE[0]), TEMPERATURE_RANGE[1])
        top_p = min(max(top_p, TOP_P_RANGE[0]), TOP_P_RANGE[1])
        live = self.live
        before = (live.get_sampling_params(), live.template.name, live.focus, live.pool)
        # A fresh pool: the batch must not depend on this episode's history, or it could not
        # stand in for the same settings in another episode. The episode's pool (and its
        # ROUGE filter) comes back afterwards.
        live.reset_pool()
        try:
            live.set_sampling_params(temperature=temperature, top_p=top_p)
            live.select_template(key.template)
            live.set_focus(key.focus)
            batch = live.generate(key.batch_size, step=None)
        finally:
            live.set_sampling_params(**before[0])
            live.select_template(before[1])
            live.set_focus(before[2])
            live.pool = before[3]
            for g in (live.self_instruct, live.evol_instruct):
                g.pool = before[3]
        stored = [{k: v for k, v in r.items() if k != "step"} for r in batch.data]
        if self.store_misses:
            replica_id = self.cache.add(
                key, stored, batch.num_candidates, batch.num_kept, origin, max_replicas
            )
            if replica_id is None:
                return None
        else:
            # Not stored: a negative id no stored replica has, unique within the episode.
            replica_id = -(len(self._used) + 1)
        return Replica(replica_id, stored, batch.num_candidates, batch.num_kept)
