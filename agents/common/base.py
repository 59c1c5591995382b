"""The agent interface shared by the hand-rolled agents and the SB3 adapter.

It copies the Stable-Baselines3 surface (``learn`` / ``predict`` / ``save`` / ``load``) so a
training script can swap ``make_agent("reinforce", env)`` for ``make_agent("ppo", env)`` without
changing a line. The hand-rolled agents also run on SB3's machinery, so the same objects work with
both kinds:

* **callbacks**: ``learn(callback=...)`` takes what SB3's does (a ``BaseCallback``, a list of
  callbacks and/or functions, a function ``callback(locals_, globals_) -> bool``, None) and drives
  it through SB3's protocol with the agent as the callback's ``model`` (see :class:`BaseAgent`
  for what a callback can read from it). SB3's ``CheckpointCallback`` and
  ``StopTrainingOnMaxEpisodes`` work unchanged.
* **logging**: ``self.logger`` is an SB3 ``Logger`` configured like SB3's (``configure_logger``:
  same ``<root>/<tb_log_name>_<i>`` run directories, stdout tables with ``verbose=1``); the
  ``rollout/*`` and ``train/*`` scalars are ``record``-ed and ``dump``-ed, and the env's ``info``
  tags are written by :class:`~agents.common.tensorboard.InfoTensorboardCallback` through the
  logger's ``SummaryWriter``, exactly as for SB3 agents.

The helpers below hold the bookkeeping every hand-rolled learn loop needs (set-up, per-step
statistics and callbacks, log dumps, tear-down), so each agent's ``learn`` only shows its
algorithm.
"""

from __future__ import annotations

import abc
import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback
from stable_baselines3.common.logger import HumanOutputFormat, Logger
from stable_baselines3.common.utils import configure_logger, get_latest_run_id, safe_mean

from agents.common.checkpoint import PathLike, read_json_object, spaces_match
from agents.common.tensorboard import InfoTensorboardCallback

# SB3's function-callback convention: ``callback(locals_, globals_)``; a falsy return (False, and
# None as in SB3) stops training.
StepCallback = Callable[[dict[str, Any], dict[str, Any]], bool]
MaybeCallback = BaseCallback | StepCallback | Sequence[BaseCallback | StepCallback] | None

META_FILE = "agent.json"
#: The suffix SB3 gives model files (``CheckpointCallback`` names ``<prefix>_<n>_steps.zip``).
SB3_MODEL_SUFFIX = ".zip"


def as_callback(callback: MaybeCallback) -> BaseCallback:
    """One SB3 ``BaseCallback`` for what ``learn(callback=...)`` accepts: a ``BaseCallback`` is
    used as is, a function goes through SB3's ``ConvertCallback``, a list or tuple (of either,
    mixed) becomes a ``CallbackList``, None an empty one."""
    if isinstance(callback, BaseCallback):
        return callback
    if callback is None:
        return CallbackList([])
    if isinstance(callback, (list, tuple)):
        return CallbackList([as_callback(cb) for cb in callback])
    if callable(callback):
        return ConvertCallback(callback)
    raise TypeError(
        "callback must be an SB3 BaseCallback, a function `callback(locals_, globals_) -> bool`, "
        f"a list of them or None; got {type(callback).__name__}"
    )


def checkpoint_dir(path: PathLike, existing: bool = False) -> Path:
    """The directory an agent checkpoint at ``path`` lives in.

    Agent checkpoints are directories, but SB3 code names model files ``*.zip`` (its
    ``CheckpointCallback`` calls ``model.save("<dir>/<prefix>_<n>_steps.zip")``). As SB3's own
    ``save`` adds the suffix when it is missing and its ``load`` takes the path either way, the
    suffix is dropped: ``save("x.zip")`` writes ``x/`` and ``load("x.zip")`` reads it.
    ``existing=True`` (loading) keeps ``path`` when it is itself a directory.
    """
    path = Path(path)
    if path.suffix != SB3_MODEL_SUFFIX or (existing and path.is_dir()):
        return path
    return path.with_suffix("")


class SingleEnvView:
    """The agent's single env as SB3 callbacks read it from ``model.get_env()``: every attribute
    is the env's, plus ``num_envs = 1`` (what SB3's ``VecEnv`` has and callbacks such as
    ``StopTrainingOnMaxEpisodes`` read)."""

    num_envs = 1

    def __init__(self, env: Any) -> None:
        self.env = env

    def __getattr__(self, name: str) -> Any:  # only called for what the view itself lacks
        return getattr(self.env, name)

    def __repr__(self) -> str:
        return f"SingleEnvView({self.env!r})"


class BaseAgent(abc.ABC):
    """Abstract agent with the SB3-shaped API.

    What SB3 callbacks read from their ``model`` is here too: ``num_timesteps``, ``get_env()``,
    ``logger``, ``save(path)``, ``get_vec_normalize_env()`` (None) and, for REINFORCE, ``policy``.

    :param env: a single (non-vectorised) gymnasium env; may be ``None`` for a loaded agent that
        only predicts.
    :param seed: seeds the agent's RNGs, the action space and the env's first reset.
    :param tensorboard_log: TensorBoard root; each ``learn`` writes ``<root>/<tb_log_name>_<i>``
        like SB3, so runs of different agents sit side by side.
    :param text_every: steps between two ``datagen/examples`` text summaries (0 disables them).
    :param verbose: 0 silent, 1 prints the logger's table (``rollout/*``, ``train/*``, the env's
        tag means) after every finished episode, as SB3 does at its log intervals.
    """

    #: name stored in ``agent.json`` so :func:`agents.factory.load_agent` can find the class.
    agent_name: ClassVar[str] = "base"
    #: Other names :func:`agents.make_agent` accepts for this agent.
    aliases: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        env: gym.Env | None,
        seed: int | None = None,
        tensorboard_log: PathLike | None = None,
        text_every: int = 10,
        verbose: int = 0,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
    ) -> None:
        if env is None and (observation_space is None or action_space is None):
            raise ValueError("pass an env, or both observation_space and action_space")
        self.env = env
        self.observation_space = observation_space if env is None else env.observation_space
        self.action_space = action_space if env is None else env.action_space
        self.tensorboard_log = None if tensorboard_log is None else os.fspath(tensorboard_log)
        self.text_every = int(text_every)
        self.verbose = int(verbose)
        self.num_timesteps = 0
        self.num_episodes = 0
        self.ep_info_buffer: deque[dict[str, float]] = deque(maxlen=100)
        self.seed: int | None = None
        self._reset_seed: int | None = None
        self._last_obs: Any = None
        self._last_info: dict[str, Any] = {}
        self._ep_return = 0.0
        self._ep_length = 0
        self._logger = Logger(folder=None, output_formats=[])  # until a learn configures one
        self._learning = False  # between _setup_learn and _teardown_learn
        self._callback: BaseCallback | None = None
        self._info_callback: InfoTensorboardCallback | None = None
        self._dump_due = False
        self._env_view: SingleEnvView | None = None
        self._pbar: Any = None
        self.set_random_seed(seed)

    # ------------------------------------------------------------------ public API
    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        tb_log_name: str = "run",
        progress_bar: bool = False,
        reset_num_timesteps: bool = True,
    ) -> BaseAgent:
        """Interact with the env for ``total_timesteps`` steps, learning; returns self.

        The loop every hand-rolled agent shares (an agent fills the hooks below; SB3's agents
        run SB3's own): act, step the env, learn from the transition (:meth:`_record`), then
        the shared bookkeeping and the callback's ``on_step`` (:meth:`_after_env_step`); at an
        episode's end the env is reset (:meth:`_episode_reset`). A callback that returns False
        stops the loop after the step it saw."""
        fresh_episode = reset_num_timesteps or self._last_obs is None
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, tb_log_name, progress_bar, reset_num_timesteps
        )
        assert self.env is not None
        try:
            self._begin_learn(fresh_episode)
            callback.on_training_start(locals(), globals())
            while self.num_timesteps < total_timesteps:
                self._begin_step(callback)
                action, extra_locals = self._act()
                obs, reward, terminated, truncated, info = self.env.step(action)
                terminated, truncated, reward = bool(terminated), bool(truncated), float(reward)
                self._record(action, reward, terminated or truncated, info)
                keep_going = self._after_env_step(
                    action, reward, terminated, truncated, info, extra_locals=extra_locals
                )
                self._log_step()
                if terminated or truncated:
                    self._episode_reset(*self._reset_env())
                else:
                    self._last_obs, self._last_info = obs, dict(info)
                self._end_step(callback)
                self._dump_logs()
                if not keep_going:
                    break
            self._end_learn(callback)
            callback.on_training_end()
        finally:
            self._teardown_learn()
        return self

    # ------------------------------------------------------------------ learn-loop hooks
    def _act(self) -> tuple[np.ndarray, dict[str, Any] | None]:
        """The env action for the current state (``self._last_obs``) and extra callback
        locals (e.g. a bandit's ``arm``)."""
        raise NotImplementedError(f"{type(self).__name__} does not run the shared learn loop")

    def _record(self, action: Any, reward: float, done: bool, info: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Learn from the step just taken (before the callback sees it)."""

    def _begin_learn(self, fresh_episode: bool) -> None:  # noqa: B027 - optional hook
        """Once per ``learn``, before the first step; ``fresh_episode``: the env was reset."""

    def _begin_step(self, callback: BaseCallback) -> None:  # noqa: B027 - optional hook
        """Before each action (a rollout's start, for agents with rollouts)."""

    def _log_step(self) -> None:  # noqa: B027 - optional hook
        """After each step's bookkeeping: the agent's own per-step scalars."""

    def _episode_reset(self, obs: Any, info: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """After the env was reset at an episode's end."""

    def _end_step(self, callback: BaseCallback) -> None:  # noqa: B027 - optional hook
        """After each step, the env reset if the episode ended (an update, for batch agents)."""

    def _end_learn(self, callback: BaseCallback) -> None:  # noqa: B027 - optional hook
        """Once per ``learn``, after the last step (a last update, final scalars)."""

    @abc.abstractmethod
    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Action(s) for an observation (or a batch of them) and the next recurrent state (None)."""

    @abc.abstractmethod
    def save(self, path: PathLike) -> None:
        """Write the agent to the directory ``path`` (JSON/safetensors, each file atomic; an
        SB3-style ``.zip`` suffix is dropped, see :func:`checkpoint_dir`)."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: PathLike, env: gym.Env | None = None, **kwargs: Any) -> BaseAgent:
        """Rebuild an agent saved with :meth:`save`; ``env`` is optional for predict-only use."""

    def set_random_seed(self, seed: int | None) -> None:
        """Seed the agent's numpy RNG, the action space and the env's next reset.

        Subclasses extend this to seed their own RNGs (torch). Only the first reset after
        seeding gets the seed, as in SB3: reseeding every reset would replay the same episode.
        """
        self.seed = seed
        self.np_random = np.random.default_rng(seed)
        if self.action_space is not None and seed is not None:
            self.action_space.seed(seed)
        self._reset_seed = seed

    def get_env(self) -> Any:
        """The env the agent trains on, as SB3 callbacks expect ``model.get_env()``: an env with
        ``num_envs`` (a vectorised one as it is, a single one through :class:`SingleEnvView`,
        which forwards to it); None without an env."""
        if self.env is None or hasattr(self.env, "num_envs"):
            return self.env
        if self._env_view is None or self._env_view.env is not self.env:
            self._env_view = SingleEnvView(self.env)
        return self._env_view

    def get_vec_normalize_env(self) -> None:
        """SB3's ``VecNormalize`` wrapper of the training env: the agents use none."""
        return None

    @property
    def logger(self) -> Logger:
        """The SB3 ``Logger`` of the current (or last) ``learn``; a silent one before any."""
        return self._logger

    @property
    def logger_dir(self) -> str | None:
        """The TensorBoard run directory of the current (or last) ``learn`` (None: no
        TensorBoard)."""
        return self.logger.get_dir()

    def set_env(self, env: gym.Env) -> None:
        """Attach a (new) env; its spaces must match the agent's."""
        self._check_spaces(env)
        self.env = env
        self._last_obs = None

    # ------------------------------------------------------------------ resume hooks
    def seed_next_reset(self, seed: int | None) -> None:
        """Reset the env with ``seed`` at the next episode start (and unseeded after it)."""
        self._reset_seed = seed

    def resume_episode(
        self, obs: Any, info: dict[str, Any], ep_return: float, ep_length: int
    ) -> None:
        """Continue mid-episode: the next ``learn(reset_num_timesteps=False)`` steps on from
        ``obs`` instead of resetting (a run restored from a checkpoint replays the episode's
        actions and hands the agent where it stands)."""
        self._last_obs, self._last_info = obs, dict(info)
        self._ep_return, self._ep_length = float(ep_return), int(ep_length)

    def set_tensorboard_log(self, root: PathLike | None) -> None:
        """Write the next ``learn``'s TensorBoard run under ``root`` (None: no TensorBoard)."""
        self.tensorboard_log = None if root is None else os.fspath(root)

    def end_learn(self) -> None:
        """Close what a ``learn`` call opened (progress bar, the logger's files) when it was left
        by an exception; a ``learn`` closes them itself, so this does nothing after one."""
        self._teardown_learn()

    # ------------------------------------------------------------------ helpers for subclasses
    def _check_spaces(self, env: gym.Env) -> None:
        if not spaces_match(env.action_space, self.action_space):
            raise ValueError(f"env action space {env.action_space} != agent's {self.action_space}")
        if not spaces_match(env.observation_space, self.observation_space):
            raise ValueError(
                f"env observation space {env.observation_space} != agent's {self.observation_space}"
            )

    def _is_batch(self, observation: Any) -> bool:
        """Whether ``observation`` is a batch of observations rather than one."""
        obs = np.asarray(observation)
        single_shape = self.observation_space.shape or ()
        return obs.ndim == len(single_shape) + 1

    def _per_observation(self, action: np.ndarray, observation: Any) -> np.ndarray:
        """``action`` once per observation of a batch (observation-independent agents), else
        unchanged."""
        if observation is not None and self._is_batch(observation):
            return np.repeat(action[None], np.asarray(observation).shape[0], axis=0)
        return action

    def _reset_env(self) -> tuple[Any, dict[str, Any]]:
        assert self.env is not None
        obs, info = self.env.reset(seed=self._reset_seed)
        self._reset_seed = None
        self._last_obs, self._last_info = obs, dict(info or {})
        self._ep_return, self._ep_length = 0.0, 0
        return obs, self._last_info

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback,
        tb_log_name: str,
        progress_bar: bool,
        reset_num_timesteps: bool,
    ) -> tuple[int, BaseCallback]:
        """Prepare a learn loop, as SB3's ``_setup_learn`` does: reset the counters (or continue
        them), reset the env unless continuing mid-episode, configure the logger and initialise
        the callback with the agent as its model.

        Returns the ``num_timesteps`` value at which the loop must stop and the callback, on
        which ``learn`` calls ``on_training_start(locals(), globals())``, ``on_rollout_start`` /
        ``on_rollout_end`` around each rollout (if it has rollouts) and ``on_training_end()``;
        :meth:`_after_env_step` calls ``update_locals`` and ``on_step`` after every env step.
        """
        if self.env is None:
            raise ValueError("this agent has no env: pass one to load(...) or call set_env(env)")
        self._teardown_learn()  # whatever an earlier learn left open
        if reset_num_timesteps:
            self.num_timesteps = 0
            self.num_episodes = 0
            self.ep_info_buffer = deque(maxlen=self.ep_info_buffer.maxlen)
            self._last_obs = None
        if self._last_obs is None:
            self._reset_env()
        self._logger = self._configure_logger(tb_log_name, reset_num_timesteps)
        self._learning = True
        self._dump_due = False
        try:
            # The env's info tags, as for SB3 agents; a continued run (e.g. resumed from a
            # checkpoint) redoes the steps after it, so TensorBoard drops the points an
            # interrupted process wrote for them.
            self._info_callback = InfoTensorboardCallback(
                self.text_every, purge=not reset_num_timesteps
            )
            self._callback = CallbackList([self._info_callback, as_callback(callback)])
            self._callback.init_callback(self)
        except BaseException:
            self._teardown_learn()
            raise
        if progress_bar:
            from tqdm.auto import tqdm

            self._pbar = tqdm(total=int(total_timesteps), desc=f"{self.agent_name}")
        return self.num_timesteps + int(total_timesteps), self._callback

    def _configure_logger(self, tb_log_name: str, reset_num_timesteps: bool) -> Logger:
        """SB3's ``configure_logger`` (same run directories; a continued run keeps its
        directory), except that without ``tensorboard_log`` nothing touches the disk (SB3's
        would create an empty temporary directory)."""
        if self.tensorboard_log is None:
            formats = [HumanOutputFormat(sys.stdout)] if self.verbose >= 1 else []
            return Logger(folder=None, output_formats=formats)
        # A continued run with no earlier run in this root starts at <name>_1, not <name>_0.
        fresh = reset_num_timesteps or get_latest_run_id(self.tensorboard_log, tb_log_name) == 0
        return configure_logger(self.verbose, self.tensorboard_log, tb_log_name, fresh)

    def _after_env_step(
        self,
        action: Any,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
        extra_locals: dict[str, Any] | None = None,
    ) -> bool:
        """Shared per-step bookkeeping and the callback's ``on_step``; returns False when a
        callback asked to stop. A finished episode records ``rollout/*`` and makes the next
        :meth:`_dump_logs` write the logger's values."""
        assert self._callback is not None, "_setup_learn was not called"
        self.num_timesteps += 1
        self._ep_return += float(reward)
        self._ep_length += 1
        done = bool(terminated or truncated)
        if done:
            self.num_episodes += 1
            self.ep_info_buffer.append({"r": self._ep_return, "l": self._ep_length})
            episodes = self.ep_info_buffer
            self.logger.record("rollout/ep_rew_mean", safe_mean([e["r"] for e in episodes]))
            self.logger.record("rollout/ep_len_mean", safe_mean([e["l"] for e in episodes]))
            self.logger.record("time/episodes", self.num_episodes, exclude="tensorboard")
            self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
            self._dump_due = True
        if self._pbar is not None:
            self._pbar.update(1)
        # Same names as SB3's ``locals`` so one callback can serve both kinds of agent.
        self._callback.update_locals(
            {
                "self": self,
                "actions": [action],
                "rewards": [float(reward)],
                "infos": [info],
                "dones": [done],
                "num_timesteps": self.num_timesteps,
                **(extra_locals or {}),
            }
        )
        return bool(self._callback.on_step())

    def _log_step_scalars(self, values: dict[str, float]) -> None:
        """Per-step scalars (a bandit's arm): one TensorBoard point per step, next to the env's
        tags (the logger itself keeps one value per dump)."""
        if self._info_callback is not None and self._info_callback.tb is not None:
            self._info_callback.tb.log_scalars(values, self.num_timesteps)

    def _dump_logs(self) -> None:
        """Write the logger's recorded values at ``num_timesteps`` if an episode finished since
        the last dump (the log interval of the hand-rolled agents); call it once a step is done,
        after the agent's own ``logger.record`` calls for it."""
        if self._dump_due:
            self.logger.dump(self.num_timesteps)
            self._dump_due = False

    def _teardown_learn(self) -> None:
        """Dump what is left, close the logger's files and the progress bar (idempotent)."""
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        if self._learning:
            self._learning = False
            try:
                if self._dump_due or self.logger.name_to_value:
                    self.logger.dump(self.num_timesteps)
            finally:
                self._dump_due = False
                self._callback = self._info_callback = None
                self.logger.close()

    @staticmethod
    def _read_meta(path: PathLike, expected: str) -> dict[str, Any]:
        # A JSON object with an "agent" name, or a CheckpointError naming the file.
        meta = read_json_object(checkpoint_dir(path, existing=True) / META_FILE, {"agent": str})
        if meta["agent"] != expected:
            raise ValueError(f"{path} holds a {meta['agent']!r} agent, not {expected!r}")
        return meta
