"""RLTuner: the design's RL loop (section 2.2) on top of ``DataGen-v0`` and the ``agents`` package.

The tuner builds a :class:`~datagen_gym.envs.datagen_env.DataGenEnv` from a config, the user's
``target_model`` and validation data, picks an agent by name (``random_search`` for the MVP,
``reinforce``, ``ppo``, ``dqn``, ...) and lets the agent drive the env. An agent callback turns
every env step into a history entry and tracks the best metric and the settings that reached
it; :meth:`RLTuner.generate_dataset` then generates a dataset with those settings.

Checkpoints (:meth:`RLTuner.save`) are directories::

    checkpoint/
        tuner.json   config, history, best, generator state, counters, env episode position
        agent/       agent.save(...): JSON + safetensors, or SB3's zip; never a pickle

They are written to a temporary sibling directory and swapped in with two renames, so a crash
mid-save leaves the previous checkpoint readable (:meth:`RLTuner.load` also finds it if the crash
fell between the two renames). All file I/O goes through :mod:`agents.common.checkpoint` (atomic,
fsync'ed, umask-respecting). Loading never unpickles, and a corrupt or incompatible checkpoint
raises :class:`CheckpointError` naming the file and what is wrong.

A checkpoint is data, never a program or a connection: the fields that choose code to import,
files, the backend, a host or an environment variable (:data:`INVOCATION_FIELDS`) are never
taken from it. :meth:`RLTuner.load` takes them from ``config_changes`` (what the caller names
now; the defaults where it names none) and refuses to resume when the saved run set one that
the caller does not name.

Resuming with other settings: :func:`resume_config` applies changes that cannot change results
(run length is a ``train`` argument; :data:`RESUME_SAFE_FIELDS` are connection settings such as
``sampling.base_url``) and refuses the others (seed, templates, target, ...) with a message
naming the fields.

Resuming mid-episode: the env's state (task pool, episode data, RNGs) is not stored; the
checkpoint records the reset seed / RNG state of the current episode and the actions taken in
it, and :meth:`RLTuner.load` replays them (on the embedded teacher the env is deterministic, so
the replay rebuilds the exact state; it costs at most one episode of env steps). What is lost
on a kill: SB3's rollout / replay buffers and REINFORCE's partial episode batch (the network
weights and optimiser state are restored).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from agents.common.parsing import finite_float, normalize_agent_name
from datagen.rl_tuning.checkpoint import (  # noqa: F401 (re-exported: the tuner's public names)
    AGENT_DIR,
    FORMAT_VERSION,
    INVOCATION_FIELDS,
    RESUME_SAFE_FIELDS,
    TUNER_FILE,
    _jsonable,
    _rng_from_state,
    _rng_state,
    checkpoint_path,
    read_state,
    resume_config,
)
from datagen.rl_tuning.generation import generate_with_settings
from datagen.rl_tuning.recorder import EpisodeRecorder
from datagen_gym.atomic_io import CheckpointError, create_temp_dir, fsync_dir
from datagen_gym.config import Config
from datagen_gym.envs.datagen_env import DataGenEnv, TargetModelError  # noqa: F401 (re-export)
from datagen_gym.envs.wrappers import BudgetExhausted
from datagen_gym.generators.generator import Generator
from datagen_gym.results import Results
from datagen_gym.sampler import Sampler

logger = logging.getLogger(__name__)

#: Decimals of temperature / top_p in history, summaries and outputs: the env's repeated
#: +-0.05 steps leave float noise (0.7999999999999999) that means nothing to a reader.
SETTING_DECIMALS = 6
#: Episodes a learning agent gets by default (random search gets one episode).
DEFAULT_LEARNING_EPISODES = 20
#: Keys of every history entry.
HISTORY_KEYS = (
    "iteration",
    "episode",
    "episode_step",
    "temperature",
    "top_p",
    "template",
    "template_index",
    "focus",
    "method",
    "metric",
    "metrics",
    "skill_metrics",
    "test_metric",
    "reward",
    "best_metric",
    "baseline_metric",
    "kept_fraction",
    "correctness",
    "num_kept",
    "num_off_label",
    "dataset_size",
    "all_filtered",
    "time_generation_s",
    "time_target_s",
)

TargetModel = Callable[[list[dict[str, Any]]], dict[str, float]]
PathLike = str | os.PathLike


# ---------------------------------------------------------------------------- helpers
def round_setting(value: Any) -> Any:
    """``value`` rounded to :data:`SETTING_DECIMALS` if it is a number (else unchanged)."""
    if isinstance(value, (int, float, np.floating)) and not isinstance(value, bool):
        return round(float(value), SETTING_DECIMALS)
    return value


def _fixed_action(space: spaces.Space) -> Any:
    """Some valid element of ``space`` (the replay substitutes the recorded action for it)."""
    if isinstance(space, spaces.Discrete):
        return int(space.start)
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.start, dtype=space.dtype).copy()
    if isinstance(space, spaces.Box):
        return np.clip(np.zeros(space.shape, dtype=space.dtype), space.low, space.high)
    return space.sample()


def check_algorithm(name: str) -> str:
    """The normalised agent name, or a ``ValueError`` listing the valid ones."""
    from agents import list_agents

    key = normalize_agent_name(name)
    if key not in list_agents():
        raise ValueError(f"unknown RL algorithm {name!r}; valid names: {', '.join(list_agents())}")
    return key


# ---------------------------------------------------------------------------- the tuner
_LOADING = object()  # rl_agent placeholder used by RLTuner.load (the agent comes from disk)


class RLTuner:
    """Learn generation settings that make a target model best, with any agent of ``agents``.

    Args:
        config: a :class:`Config`, a dict of its sections, a YAML path or ``None`` (defaults).
            Its ``rl_tuning`` section sets the episode length (``num_iterations``), the batch
            size, the algorithm, the learning rate, the reward metric and the seed.
        target_model: ``target_model(records) -> {"accuracy": ..., ...}``: fine-tunes the
            user's model on the records and evaluates it. ``None`` uses the built-in
            scikit-learn target of ``config.rl_tuning.task``.
        validation_dataset: the held-out records the target evaluates on (kept by the env for
            reference; the target is expected to close over it).
        generator: a :class:`Generator` to drive (default: one over the configured backend).
        rl_agent: ``None`` (``config.rl_tuning.rl_algorithm``), an agent name of
            :func:`agents.list_agents`, or an agent instance (re-attached to the tuner's env).
        agent_kwargs: extra constructor arguments for an agent created by name.
        seed_tasks: human seed tasks of the user's task (see :mod:`datagen_gym.task`; the CLI
            splits them off the validation file): default ``generation.seed_tasks_path``, a
            built-in task's own, or the embedded world's (``generation.task_mode``).

    Example::

        tuner = RLTuner(Config(), target_model=my_target, validation_dataset=val)
        history = tuner.train(num_iterations=10, batch_size=64)
        tuner.best_params            # {"temperature": ..., "top_p": ..., "template": ...}
        tuner.generate_dataset(1000, "data.jsonl")
        tuner.save("checkpoint"); RLTuner.load("checkpoint", my_target)
    """

    def __init__(
        self,
        config: Config | dict | str | os.PathLike | None = None,
        target_model: TargetModel | None = None,
        validation_dataset: Sequence[dict[str, Any]] | None = None,
        generator: Generator | None = None,
        rl_agent: Any = None,
        agent_kwargs: dict[str, Any] | None = None,
        seed_tasks: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        self.config = Config.coerce(config)
        rl = self.config.rl_tuning
        self.target_model = target_model
        self.validation_dataset = list(validation_dataset) if validation_dataset else None
        self.env = DataGenEnv(
            target_model=target_model,
            validation_dataset=validation_dataset,
            config=self.config,
            generator=generator,
            seed_tasks=seed_tasks,
        )
        self.recorder = EpisodeRecorder(self.env)
        self.history: list[dict[str, Any]] = []
        self._best: dict[str, Any] | None = None
        self._baseline: float | None = None
        self._steps_done = 0
        self._planned = 0
        self._learn_calls = 0
        self._checkpoint_dir: Path | None = None
        #: What :meth:`load` changed in the saved config (``"sampling.base_url=... (was ...)"``).
        self.resume_changes: list[str] = []
        self._checkpoint_every: int | None = None
        self._last_checkpoint_step = 0
        #: Records generated by the steps since the last checkpoint (lost on a resume, which
        #: redoes those steps): :meth:`records_since_checkpoint`.
        self._unsaved_records: list[dict[str, Any]] = []
        self._pbar: Any = None
        self.agent: Any = None
        self.algorithm = normalize_agent_name(rl.rl_algorithm)
        if rl_agent is not _LOADING:
            self.agent = self._make_agent(rl_agent, dict(agent_kwargs or {}))

    # ------------------------------------------------------------------ agent
    def _make_agent(self, rl_agent: Any, agent_kwargs: dict[str, Any]) -> Any:
        from agents import BaseAgent, SB3Agent, agent_accepts, make_agent

        if rl_agent is None or isinstance(rl_agent, str):
            name = check_algorithm(rl_agent or self.config.rl_tuning.rl_algorithm)
            self.algorithm = name
            kwargs: dict[str, Any] = {"seed": self.config.rl_tuning.seed}
            if agent_accepts(name, "learning_rate"):
                kwargs["learning_rate"] = self.config.rl_tuning.learning_rate
            kwargs.update(agent_kwargs)
            try:
                return make_agent(name, self.recorder, **kwargs)
            except ValueError as exc:
                if "action space" not in str(exc) and "action_mode" not in str(exc):
                    raise
                mode = self.config.rl_tuning.action_mode
                other = "continuous" if mode == "discrete" else "discrete"
                raise ValueError(
                    f"the {name} agent does not support rl_tuning.action_mode="
                    f"{mode!r}: set action_mode: {other} in the config's "
                    f"rl_tuning section, or choose another algorithm"
                ) from exc
        if isinstance(rl_agent, SB3Agent):
            rl_agent.set_env(self.recorder)
            self.algorithm = rl_agent.algo
            return rl_agent
        if isinstance(rl_agent, BaseAgent):
            rl_agent.set_env(self.recorder)
            self.algorithm = rl_agent.agent_name
            return rl_agent
        raise TypeError(
            f"rl_agent must be None, an agent name or an agents.BaseAgent, got "
            f"{type(rl_agent).__name__}"
        )

    @property
    def is_random_search(self) -> bool:
        """Whether the agent is the design's MVP random search (no learning)."""
        from agents import RandomSearchAgent
        from agents.factory import agent_class

        try:
            return agent_class(self.algorithm) is RandomSearchAgent
        except ValueError:  # an agent instance of the user's own class
            return False

    # ------------------------------------------------------------------ state
    @property
    def best_params(self) -> dict[str, Any]:
        """The settings that reached the best metric: temperature, top_p, template, focus
        (None: any), metric, and the test split's metric at that step where the target reports
        one.

        Before any step: the configured start settings with ``metric`` None.
        """
        if self._best is None:
            return {
                "temperature": round_setting(self.env.start_params["temperature"]),
                "top_p": round_setting(self.env.start_params["top_p"]),
                "template": self.env.start_template.name,
                "focus": None,
                "metric": None,
                "test_metric": None,
                "iteration": None,
            }
        return {
            k: self._best.get(k)
            for k in (
                "temperature",
                "top_p",
                "template",
                "focus",
                "metric",
                "test_metric",
                "iteration",
            )
        }

    @property
    def best(self) -> dict[str, Any] | None:
        """The full history entry of the best step (None before training)."""
        return None if self._best is None else dict(self._best)

    @property
    def baseline_metric(self) -> float | None:
        """The target's metric on the human seed tasks alone (known after the first step)."""
        return self._baseline

    @property
    def steps_done(self) -> int:
        """Env steps taken over every :meth:`train` call (checkpoints included)."""
        return self._steps_done

    @property
    def total_planned(self) -> int:
        """The step count at which the current (or last) training run ends."""
        return self._planned

    @property
    def num_iterations(self) -> int:
        """Episode length (env steps per episode)."""
        return self.config.rl_tuning.num_iterations

    @property
    def batch_size(self) -> int:
        """Records generated per env step."""
        return self.config.rl_tuning.batch_size

    def default_timesteps(self) -> int:
        """One episode for random search, :data:`DEFAULT_LEARNING_EPISODES` for learning agents."""
        episodes = 1 if self.is_random_search else DEFAULT_LEARNING_EPISODES
        return episodes * self.num_iterations

    # ------------------------------------------------------------------ training
    def _apply_sizes(self, num_iterations: int | None, batch_size: int | None) -> None:
        changes = {
            k: v
            for k, v in (("num_iterations", num_iterations), ("batch_size", batch_size))
            if v is not None
        }
        if not changes:
            return
        self.config = self.config.replace(rl_tuning=changes)
        self.env.config = self.config
        self.env.num_iterations = self.config.rl_tuning.num_iterations
        self.env.batch_size = self.config.rl_tuning.batch_size

    def train(
        self,
        num_iterations: int | None = None,
        batch_size: int | None = None,
        total_timesteps: int | None = None,
        tensorboard_log: PathLike | None = None,
        checkpoint_dir: PathLike | None = None,
        checkpoint_every: int | None = None,
        progress: bool = True,
    ) -> list[dict[str, Any]]:
        """Run the RL loop; returns the whole history (one dict per env step, see
        :data:`HISTORY_KEYS`).

        Args:
            num_iterations: episode length (env steps per episode); default from the config.
            batch_size: records generated per step; default from the config.
            total_timesteps: env steps to run. Default: one episode for random search, 20
                episodes for learning agents; a tuner loaded from an unfinished run's
                checkpoint continues that run's remaining steps.
            tensorboard_log: TensorBoard root (runs appear as ``<root>/<algorithm>_<i>``).
            checkpoint_dir: where to :meth:`save` (every ``checkpoint_every`` steps and at the
                end).
            checkpoint_every: steps between checkpoints (None: only at the end).
            progress: show a tqdm bar with the current and best metric.
        """
        if total_timesteps is not None and int(total_timesteps) < 1:
            raise ValueError(f"total_timesteps must be >= 1, got {total_timesteps}")
        if checkpoint_every is not None and int(checkpoint_every) < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self._apply_sizes(num_iterations, batch_size)
        # Before the first step: a bad path must not surface at the first checkpoint.
        from datagen_gym.atomic_io import ensure_writable_dir

        for name, where in (
            ("checkpoint_dir", None if checkpoint_dir is None else Path(checkpoint_dir).parent),
            ("tensorboard_log", tensorboard_log),
        ):
            if where is not None:
                try:
                    ensure_writable_dir(where)
                except OSError as exc:
                    raise ValueError(
                        f"{name}: {where} is not a writable directory ({exc.strerror or exc})"
                    ) from exc
        if checkpoint_dir is not None and Path(checkpoint_dir).is_file():
            raise ValueError(f"checkpoint_dir: {checkpoint_dir} exists and is not a directory")
        if total_timesteps is None and self._planned > self._steps_done:
            pass  # resume the unfinished run of a loaded checkpoint
        else:
            self._planned = self._steps_done + int(total_timesteps or self.default_timesteps())
        remaining = self._planned - self._steps_done
        self._checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self._checkpoint_every = int(checkpoint_every) if checkpoint_every else None
        self._last_checkpoint_step = self._steps_done
        if tensorboard_log is not None:
            self._set_tensorboard(tensorboard_log)

        from tqdm import tqdm

        self._pbar = tqdm(
            total=self._planned,
            initial=self._steps_done,
            unit="step",
            desc=f"rl-tune [{self.algorithm}]",
            disable=not progress,
            dynamic_ncols=True,
        )
        self._update_pbar()
        first = self._learn_calls == 0
        self._learn_calls += 1  # before learn: a checkpoint written during it must count it
        self.recorder.budget = self.recorder.steps + remaining
        try:
            try:
                self.agent.learn(
                    remaining,
                    callback=self._on_step,
                    tb_log_name=self.algorithm,
                    progress_bar=False,
                    reset_num_timesteps=first,
                )
            except BudgetExhausted:
                # Only agents that ignore the stop callback get here; the steps are all done.
                if hasattr(self.agent, "end_learn"):
                    self.agent.end_learn()
            self._drain()
        except BaseException:
            # Steps that finished before a failure belong to the history (the caller writes
            # the partial outputs from it).
            self._drain()
            raise
        finally:
            self.recorder.budget = None
            self._pbar.close()
            self._pbar = None
        if self._checkpoint_dir is not None:
            self.save(self._checkpoint_dir)
        return self.history

    def _set_tensorboard(self, root: PathLike) -> None:
        if hasattr(self.agent, "set_tensorboard_log"):
            self.agent.set_tensorboard_log(root)
        else:  # a user's agent object: the SB3 attribute name
            self.agent.tensorboard_log = os.fspath(root)

    @property
    def tensorboard_dir(self) -> str | None:
        """The TensorBoard run directory of the last :meth:`train` (None without TensorBoard)."""
        if getattr(self.agent, "tensorboard_log", None) is None:
            return None
        logger_dir = getattr(self.agent, "logger_dir", None)  # SB3 agents
        return logger_dir or getattr(self.agent, "tensorboard_dir", None)

    def _on_step(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> bool:
        """The agent callback: record the step(s), checkpoint, stop at the step budget."""
        self._drain()
        if (
            self._checkpoint_dir is not None
            and self._checkpoint_every is not None
            and self._steps_done - self._last_checkpoint_step >= self._checkpoint_every
            and self._steps_done < self._planned
        ):
            self.save(self._checkpoint_dir)
            self._last_checkpoint_step = self._steps_done
        return self._steps_done < self._planned

    def _drain(self) -> None:
        """Turn the recorder's queued steps into history entries (in order)."""
        for episode, episode_step, reward, info, records in self.recorder.pending:
            self._steps_done += 1
            self._record(episode, episode_step, reward, info)
            self._unsaved_records.extend(
                {**r, "step": self._steps_done, "episode": episode} for r in records
            )
        self.recorder.pending.clear()

    def _record(self, episode: int, episode_step: int, reward: float, info: dict[str, Any]) -> None:
        if self._baseline is None:
            self._baseline = finite_float(info.get("baseline_metric"))
        metric = finite_float(info.get("metric"))
        entry = _jsonable(
            {
                "iteration": self._steps_done,
                "episode": episode,
                "episode_step": episode_step,
                "temperature": round_setting(info.get("temperature")),
                "top_p": round_setting(info.get("top_p")),
                "template": info.get("template"),
                "template_index": info.get("template_index"),
                "focus": info.get("focus"),
                "method": info.get("method"),
                "metric": metric,
                "metrics": info.get("metrics", {}),
                "skill_metrics": info.get("skill_metrics", {}),
                "test_metric": finite_float(info.get("test_metric")),
                "reward": reward,
                "best_metric": None,
                "baseline_metric": info.get("baseline_metric"),
                "kept_fraction": info.get("kept_fraction"),
                "correctness": info.get("correctness"),
                "num_kept": info.get("num_kept"),
                "num_off_label": info.get("num_off_label", 0),
                "dataset_size": info.get("dataset_size"),
                "all_filtered": bool(info.get("all_filtered", False)),
                "time_generation_s": info.get("time_generation_s"),
                "time_target_s": info.get("time_target_s"),
            }
        )
        # An all-filtered step kept nothing, so its settings did not reach its metric.
        if (
            metric is not None
            and not entry["all_filtered"]
            and (self._best is None or metric > self._best["metric"])
        ):
            self._best = entry
        entry["best_metric"] = None if self._best is None else self._best["metric"]
        self.history.append(entry)
        logger.debug(
            "step %d (episode %d.%d): %s=%.4f reward=%+.4f T=%.2f top_p=%.2f %s",
            entry["iteration"],
            episode,
            episode_step,
            self.env.reward_metric,
            metric if metric is not None else math.nan,
            reward,
            entry["temperature"],
            entry["top_p"],
            entry["template"],
        )
        if self._pbar is not None:
            self._pbar.update(1)
            self._update_pbar(entry)

    def _update_pbar(self, entry: dict[str, Any] | None = None) -> None:
        if self._pbar is None:
            return
        entry = entry or (self.history[-1] if self.history else None)
        if entry is None:
            return
        fmt = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
        self._pbar.set_postfix_str(
            f"{self.env.reward_metric}={fmt(entry['metric'])} best={fmt(entry['best_metric'])} "
            f"T={entry['temperature']:.2f} top_p={entry['top_p']:.2f} {entry['template']}"
            + (f" focus={entry['focus']}" if entry.get("focus") else ""),
            refresh=False,
        )

    # ------------------------------------------------------------------ generation
    def generate_dataset(
        self,
        n: int,
        path: PathLike | None = None,
        seed: int | None = None,
        max_rounds: int = 50,
        on_batch: Callable[[Results], None] | None = None,
    ) -> Results:
        """Generate ``n`` records with the best settings found (the start settings before
        training), with a fresh generator (human seed pool only) seeded by ``seed`` (default
        ``config.rl_tuning.seed`` or 0). Generation repeats until ``n`` records pass the
        filters (or ``max_rounds`` rounds, or 3 rounds in a row keep nothing). Saved as JSONL
        (atomically) if ``path`` is given.
        """
        params = self.best_params
        base = self.env.generator
        if seed is None:
            seed = self.config.rl_tuning.seed if self.config.rl_tuning.seed is not None else 0
        sampler = Sampler(
            base.sampler.backend,
            temperature=params["temperature"],
            top_p=params["top_p"],
            max_new_tokens=base.sampler.max_new_tokens,
        )
        results = generate_with_settings(
            self.config,
            n,
            temperature=params["temperature"],
            top_p=params["top_p"],
            template=params["template"],
            focus=params["focus"],
            seed=seed,
            sampler=sampler,
            seed_tasks=base.pool.human,
            label_space=base.label_space,
            max_rounds=max_rounds,
            on_batch=on_batch,
        )
        if path is not None:
            from datagen_gym.atomic_io import atomic_write_jsonl

            atomic_write_jsonl(path, results.data)
        return results

    def records_since_checkpoint(self) -> list[dict[str, Any]]:
        """The records generated by the steps taken since the last checkpoint was saved (each
        with its ``step`` and ``episode``). A resume redoes those steps, so after a failure
        these are the only copy of that generation work."""
        return list(self._unsaved_records)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything of ``tuner.json``: JSON types only."""
        params = self.env.generator.get_sampling_params()
        return _jsonable(
            {
                "format_version": FORMAT_VERSION,
                "config": self.config.to_dict(),
                "algorithm": self.algorithm,
                "agent": {
                    "class": type(self.agent).__name__,
                    "name": getattr(self.agent, "agent_name", None),
                },
                "history": self.history,
                "best": self._best,
                "baseline_metric": self._baseline,
                "generator": {
                    "temperature": params["temperature"],
                    "top_p": params["top_p"],
                    "template": self.env.generator.template.name,
                    "focus": self.env.generator.focus,
                },
                "counters": {
                    "steps_done": self._steps_done,
                    "total_planned": self._planned,
                    "learn_calls": self._learn_calls,
                },
                "env": self.recorder.state_dict(),
            }
        )

    def save(self, path: PathLike) -> Path:
        """Write the checkpoint directory ``path`` (``tuner.json`` + ``agent/``), atomically.

        The new checkpoint is built in a temporary sibling directory and swapped in with two
        renames; a failure (or a crash) at any point leaves the previous checkpoint loadable.
        """
        from datagen_gym.atomic_io import atomic_write_json

        path = Path(path)
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"checkpoint path {path} exists and is not a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = create_temp_dir(path.parent, path.name)
        try:
            self.agent.save(tmp / AGENT_DIR)
            # tuner.json last: its presence marks a complete checkpoint.
            atomic_write_json(tmp / TUNER_FILE, self.state_dict())
            self._swap_in(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._unsaved_records.clear()
        return path

    @staticmethod
    def _swap_in(tmp: Path, path: Path) -> None:
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
        fsync_dir(path.parent)
        # Leftovers of saves that crashed earlier (their directories were never swapped in).
        for stale in path.parent.glob(f".{path.name}.old-*"):
            shutil.rmtree(stale, ignore_errors=True)

    @classmethod
    def load(
        cls,
        path: PathLike,
        target_model: TargetModel | None = None,
        validation_dataset: Sequence[dict[str, Any]] | None = None,
        generator: Generator | None = None,
        config_changes: dict[str, dict[str, Any]] | None = None,
        seed_tasks: Sequence[dict[str, Any]] | None = None,
    ) -> RLTuner:
        """Rebuild a tuner from :meth:`save`: config, history, best, counters, agent, and the
        env's position (mid-episode checkpoints are replayed, see the module docstring).

        ``target_model`` / ``validation_dataset`` / ``generator`` are the same objects the
        saved tuner was built with (they are code, not stored); ``None`` target uses the
        built-in one, as in the constructor. ``config_changes`` (``{"sampling": {"backend":
        "openai", "base_url": ...}}``) go through :func:`resume_config`: they supply the
        :data:`INVOCATION_FIELDS` (target and data files, backend, model, host, key variable),
        which are never read from the checkpoint (:class:`MissingInvocationSettings` when the
        saved run set one they do not name); other connection settings are applied (see
        :attr:`resume_changes`), and changes that would alter the results raise ``ValueError``.
        Nothing is unpickled; a corrupt checkpoint raises :class:`CheckpointError`.
        """
        from agents import load_agent

        path = checkpoint_path(path)
        state = read_state(path)
        config, applied = resume_config(Config.from_dict(state["config"]), config_changes)
        tuner = cls(
            config,
            target_model,
            validation_dataset,
            generator,
            rl_agent=_LOADING,
            seed_tasks=seed_tasks,
        )
        tuner.resume_changes = applied
        try:
            tuner.agent = load_agent(path / AGENT_DIR, env=tuner.recorder)
        except FileNotFoundError as exc:
            raise CheckpointError(f"{path / AGENT_DIR}: incomplete checkpoint ({exc})") from None
        except CheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever a tampered file triggers, say which
            detail = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise CheckpointError(
                f"{path / AGENT_DIR}: cannot load the agent checkpoint "
                f"({type(exc).__name__}: {detail})"
            ) from exc
        tuner.algorithm = state["algorithm"]
        tuner.history = list(state["history"])
        tuner._best = state["best"]
        tuner._baseline = state.get("baseline_metric")
        counters = state["counters"]
        tuner._steps_done = int(counters["steps_done"])
        tuner._planned = int(counters["total_planned"])
        tuner._learn_calls = int(counters["learn_calls"])
        tuner._check_env_state(path / TUNER_FILE, state["env"], state["generator"])
        tuner._restore_env(state["env"], state["generator"])
        return tuner

    def _check_env_state(
        self, file: Path, env_state: dict[str, Any], gen_state: dict[str, Any]
    ) -> None:
        """Reject env positions the replay cannot use, before any env step runs."""
        space = self.recorder.action_space
        for i, action in enumerate(env_state["actions"]):
            try:
                ok = space.contains(np.asarray(action, dtype=space.dtype))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise CheckpointError(
                    f"{file}: env.actions[{i}]={action!r} is not an action of this env ({space})"
                )
        for key in ("rng_state", "episode_rng_state"):
            if env_state[key] is not None:
                try:
                    _rng_from_state(env_state[key])
                except (TypeError, ValueError, KeyError) as exc:
                    raise CheckpointError(
                        f"{file}: env.{key} is not a numpy RNG state ({exc})"
                    ) from None
        from datagen_gym.generators import prompts

        if gen_state["template"] not in prompts.TEMPLATE_NAMES:
            raise CheckpointError(
                f"{file}: generator.template {gen_state['template']!r} is "
                f"not a template of this version"
            )
        focus = gen_state.get("focus")
        if focus is not None and focus not in self.env.generator.pool.skills():
            raise CheckpointError(
                f"{file}: generator.focus {focus!r} is not a skill of the "
                f"seed tasks {list(self.env.generator.pool.skills())}"
            )

    def _restore_env(self, env_state: dict[str, Any], gen_state: dict[str, Any]) -> None:
        """Put the env (and the agent's view of it) where the checkpoint left it."""
        rec, inner = self.recorder, self.env
        if env_state["reset_done"] and not env_state["episode_done"]:
            if env_state["episode_rng_state"] is not None:
                inner.np_random = _rng_from_state(env_state["episode_rng_state"])
            obs, info, ep_return = self._replay(env_state["episode_seed"], env_state["actions"])
            self._install_obs(obs, info, ep_return, len(env_state["actions"]))
            now = inner.generator.get_sampling_params()
            if (
                abs(now["temperature"] - gen_state["temperature"]) > 1e-9
                or abs(now["top_p"] - gen_state["top_p"]) > 1e-9
                or inner.generator.template.name != gen_state["template"]
                or inner.generator.focus != gen_state.get("focus")
            ):
                warnings.warn(
                    "replaying the interrupted episode did not reach the saved "
                    "generator settings (is the backend non-deterministic?); "
                    "setting them directly",
                    RuntimeWarning,
                    stacklevel=3,
                )
                inner.generator.set_sampling_params(gen_state["temperature"], gen_state["top_p"])
                inner.generator.select_template(gen_state["template"])
                inner.generator.set_focus(gen_state.get("focus"))
        else:
            # Between episodes: the agent resets the env itself, from the saved RNG state.
            inner.np_random = _rng_from_state(env_state["rng_state"])
            inner.generator.set_sampling_params(gen_state["temperature"], gen_state["top_p"])
            inner.generator.select_template(gen_state["template"])
            inner.generator.set_focus(gen_state.get("focus"))
            if (
                not env_state["reset_done"]
                and self.config.rl_tuning.seed is not None
                and hasattr(self.agent, "seed_next_reset")
            ):
                self.agent.seed_next_reset(self.config.rl_tuning.seed)
        for key in (
            "episode",
            "episode_step",
            "episode_done",
            "reset_done",
            "episode_seed",
            "episode_rng_state",
            "actions",
        ):
            setattr(rec, key, env_state[key])
        rec.pending.clear()

    def _replay(self, seed: int | None, actions: list[Any]) -> tuple[Any, dict, float]:
        """Reset and re-take ``actions`` through the agent's outer env (wrappers included)."""
        outer = getattr(self.agent, "env", None) or self.recorder
        self.recorder._replay = [np.asarray(a) for a in actions]
        ep_return = 0.0
        try:
            obs, info = outer.reset(seed=seed)
            dummy = _fixed_action(outer.action_space)
            for _ in actions:
                obs, reward, terminated, truncated, info = outer.step(dummy)
                ep_return += float(reward)
        finally:
            self.recorder._replay = None
            self.recorder.pending.clear()
        return obs, dict(info), ep_return

    def _install_obs(
        self, obs: Any, info: dict[str, Any], ep_return: float, ep_length: int
    ) -> None:
        """Tell the agent it is mid-episode at ``obs`` (so its next learn does not reset)."""
        if hasattr(self.agent, "resume_episode"):
            self.agent.resume_episode(obs, info, ep_return, ep_length)

    # ------------------------------------------------------------------ misc
    def summary(self) -> dict[str, Any]:
        """Best settings, best metric vs the baseline, and the step counts."""
        best = self.best_params
        improvement = None
        if best["metric"] is not None and self._baseline is not None:
            improvement = best["metric"] - self._baseline
        return _jsonable(
            {
                "algorithm": self.algorithm,
                "reward_metric": self.env.reward_metric,
                "baseline_metric": self._baseline,
                "best_metric": best["metric"],
                "improvement": improvement,
                "best_params": best,
                "steps_done": self._steps_done,
                "total_planned": self._planned,
                "complete": self._steps_done >= self._planned,
                "episodes": len({h["episode"] for h in self.history}),
                "num_iterations": self.num_iterations,
                "batch_size": self.batch_size,
                # instances dropped for a label outside the task's (datagen_gym.task), all steps
                "num_off_label": sum(int(h.get("num_off_label") or 0) for h in self.history),
                "seed_source": self.env.task.source if self.env.task else "the embedded world",
            }
        )

    def __repr__(self) -> str:
        return (
            f"RLTuner(algorithm={self.algorithm!r}, steps={self._steps_done}/"
            f"{self._planned}, best={self.best_params})"
        )
