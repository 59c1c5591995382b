"""The agent interface shared by the hand-rolled agents and the SB3 adapter.

It copies the Stable-Baselines3 surface (``learn`` / ``predict`` / ``save`` / ``load``) so a
training script can swap ``make_agent("reinforce", env)`` for ``make_agent("ppo", env)`` without
changing a line. The helpers below hold the bookkeeping every hand-rolled learn loop needs
(TensorBoard run directory, episode statistics, callbacks, progress bar), so each agent's
``learn`` only shows its algorithm.
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

from agents.common.checkpoint import PathLike, read_json_object, spaces_match
from agents.common.tensorboard import InfoTBWriter, info_log_spec

# SB3's function-callback convention: ``callback(locals_, globals_)``; returning False stops.
StepCallback = Callable[[dict[str, Any], dict[str, Any]], "bool | None"]
MaybeCallback = StepCallback | Sequence[StepCallback] | None

META_FILE = "agent.json"


class BaseAgent(abc.ABC):
    """Abstract agent with the SB3-shaped API.

    :param env: a single (non-vectorised) gymnasium env; may be ``None`` for a loaded agent that
        only predicts.
    :param seed: seeds the agent's RNGs, the action space and the env's first reset.
    :param tensorboard_log: TensorBoard root; each ``learn`` writes ``<root>/<tb_log_name>_<i>``
        like SB3, so runs of different agents sit side by side.
    :param text_every: steps between two ``datagen/examples`` text summaries (0 disables them).
    :param verbose: 0 silent, 1 prints one line per finished episode.
    """

    #: name stored in ``agent.json`` so :func:`agents.factory.load_agent` can find the class.
    agent_name: ClassVar[str] = "base"

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
        self._tb: InfoTBWriter | None = None
        self._callbacks: list[StepCallback] = []
        self._pbar: Any = None
        self.set_random_seed(seed)

    # ------------------------------------------------------------------ public API
    @abc.abstractmethod
    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        tb_log_name: str = "run",
        progress_bar: bool = False,
        reset_num_timesteps: bool = True,
    ) -> BaseAgent:
        """Interact with the env for ``total_timesteps`` steps, learning; returns self."""

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
        """Write the agent to the directory ``path`` (JSON/safetensors, each file atomic)."""

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

    def get_env(self) -> gym.Env | None:
        """The env the agent trains on."""
        return self.env

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
        """Close what a ``learn`` call opened (progress bar, TensorBoard writer) when it was left
        by an exception; a ``learn`` that returns closes them itself."""
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
    ) -> int:
        """Prepare a learn loop; returns the ``num_timesteps`` value at which it must stop."""
        if self.env is None:
            raise ValueError("this agent has no env: pass one to load(...) or call set_env(env)")
        if reset_num_timesteps:
            self.num_timesteps = 0
            self.num_episodes = 0
            self._last_obs = None
        if self._last_obs is None:
            self._reset_env()
        self._callbacks = self._as_callbacks(callback)
        self._tb = InfoTBWriter(
            self._make_summary_writer(tb_log_name, reset_num_timesteps),
            info_log_spec(self.env),
            text_every=self.text_every,
        )
        self._pbar = None
        if progress_bar:
            from tqdm.auto import tqdm

            self._pbar = tqdm(total=int(total_timesteps), desc=f"{self.agent_name}")
        return self.num_timesteps + int(total_timesteps)

    def _make_summary_writer(self, tb_log_name: str, reset_num_timesteps: bool) -> Any:
        if self.tensorboard_log is None:
            return None
        from stable_baselines3.common.utils import get_latest_run_id
        from torch.utils.tensorboard import SummaryWriter

        # Same directory scheme as SB3 so `tensorboard --logdir <root>` shows both kinds together.
        run_id = get_latest_run_id(self.tensorboard_log, tb_log_name)
        if not reset_num_timesteps:
            run_id = max(run_id - 1, 0)
        self.tensorboard_dir = os.path.join(self.tensorboard_log, f"{tb_log_name}_{run_id + 1}")
        # A continued run (e.g. resumed from a checkpoint) redoes the steps after it: make
        # TensorBoard drop the points an interrupted process wrote for them.
        purge = None if reset_num_timesteps else self.num_timesteps + 1
        return SummaryWriter(log_dir=self.tensorboard_dir, purge_step=purge)

    @staticmethod
    def _as_callbacks(callback: MaybeCallback) -> list[StepCallback]:
        if callback is None:
            return []
        callbacks = list(callback) if isinstance(callback, (list, tuple)) else [callback]
        for cb in callbacks:
            if not callable(cb) or hasattr(cb, "init_callback"):
                raise TypeError(
                    "hand-rolled agents take plain callables "
                    "`callback(locals_, globals_) -> bool`; "
                    f"got {type(cb).__name__} (SB3 BaseCallback objects only work with SB3Agent)"
                )
        return callbacks

    def _after_env_step(
        self,
        action: Any,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
        extra_locals: dict[str, Any] | None = None,
    ) -> bool:
        """Shared per-step bookkeeping; returns False when a callback asked to stop."""
        assert self._tb is not None
        self.num_timesteps += 1
        self._ep_return += float(reward)
        self._ep_length += 1
        self._tb.log_step([info], [float(reward)], self.num_timesteps)
        if terminated or truncated:
            self.num_episodes += 1
            self.ep_info_buffer.append({"r": self._ep_return, "l": self._ep_length})
            self._tb.log_episode(self._ep_return, self._ep_length, self.num_timesteps)
            if self.verbose:
                print(
                    f"[{self.agent_name}] step {self.num_timesteps} episode {self.num_episodes}: "
                    f"return {self._ep_return:.4g} length {self._ep_length}",
                    file=sys.stderr,
                )
        if self._pbar is not None:
            self._pbar.update(1)
        # Same names as SB3's ``locals`` so one function callback can serve both kinds of agent.
        locals_ = {
            "self": self,
            "actions": [action],
            "rewards": [float(reward)],
            "infos": [info],
            "dones": [terminated or truncated],
            "num_timesteps": self.num_timesteps,
            **(extra_locals or {}),
        }
        keep_going = True
        for cb in self._callbacks:
            if cb(locals_, globals()) is False:
                keep_going = False
        return keep_going

    def _teardown_learn(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def _log_scalar(self, tag: str, value: float) -> None:
        if self._tb is not None:
            self._tb.add_scalar(tag, value, self.num_timesteps)

    @staticmethod
    def _read_meta(path: PathLike, expected: str) -> dict[str, Any]:
        # A JSON object with an "agent" name, or a CheckpointError naming the file.
        meta = read_json_object(Path(path) / META_FILE, {"agent": str})
        if meta["agent"] != expected:
            raise ValueError(f"{path} holds a {meta['agent']!r} agent, not {expected!r}")
        return meta
