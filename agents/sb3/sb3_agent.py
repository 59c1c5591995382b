"""Any Stable-Baselines3 / sb3-contrib algorithm behind the common agent API.

:class:`SB3Agent` picks the algorithm by name, fits the env to it (``Monitor`` for SB3's
``rollout/*`` statistics, ``MultiDiscreteToDiscrete`` for DQN-style algorithms, a clear error
where the action space cannot fit), adds the shared ``datagen/*`` TensorBoard callback and
forwards ``learn`` / ``predict`` / ``save`` / ``load``. Actions returned by :meth:`predict` are
always in the *user's* env action space, whatever wrapper the algorithm needed.

Defaults are sized for DataGen's short, expensive episodes (~10 steps, each a generation plus
a target evaluation): small rollouts and replay warm-ups so that learning starts within a few
episodes. Every default can be overridden through keyword arguments.
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import VecEnv

from agents.common.base import META_FILE, BaseAgent
from agents.common.checkpoint import (
    PathLike,
    atomic_write_json,
    atomic_write_with,
    space_from_dict,
    space_to_dict,
    to_jsonable,
)
from agents.common.tensorboard import DataGenTensorboardCallback
from agents.common.wrappers import MultiDiscreteToDiscrete, StepInfoRecorder, unflatten_discrete

MODEL_FILE = "model.zip"
FORMAT_VERSION = 1

_ON_POLICY = {"n_steps": 64, "batch_size": 32}
_OFF_POLICY = {"buffer_size": 10_000, "learning_starts": 32, "batch_size": 32}
_DQN_LIKE = {
    **_OFF_POLICY,
    "train_freq": 1,
    "target_update_interval": 100,
    "exploration_fraction": 0.5,
    "exploration_final_eps": 0.05,
}


@dataclass(frozen=True)
class AlgoSpec:
    """How to build one algorithm and which action spaces it takes."""

    target: str  # "module:Class"
    policy: str
    spaces: tuple[type[spaces.Space], ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    continuous_only: bool = False
    noise: bool = False  # deterministic actor (TD3/DDPG): add Gaussian exploration noise
    learn_defaults: dict[str, Any] = field(default_factory=dict)  # e.g. log_interval


_BOX, _DISC, _MD, _MB = spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary
ALGORITHMS: dict[str, AlgoSpec] = {
    "ppo": AlgoSpec(
        "stable_baselines3:PPO",
        "MlpPolicy",
        (_BOX, _DISC, _MD, _MB),
        {**_ON_POLICY, "ent_coef": 0.01},
    ),
    # A2C logs every 100 rollouts by default (1,000 steps here, a whole DataGen budget): every 10.
    "a2c": AlgoSpec(
        "stable_baselines3:A2C",
        "MlpPolicy",
        (_BOX, _DISC, _MD, _MB),
        {"n_steps": 10, "ent_coef": 0.01},
        learn_defaults={"log_interval": 10},
    ),
    "dqn": AlgoSpec("stable_baselines3:DQN", "MlpPolicy", (_DISC,), dict(_DQN_LIKE)),
    "qrdqn": AlgoSpec("sb3_contrib:QRDQN", "MlpPolicy", (_DISC,), dict(_DQN_LIKE)),
    "sac": AlgoSpec(
        "stable_baselines3:SAC", "MlpPolicy", (_BOX,), dict(_OFF_POLICY), continuous_only=True
    ),
    "td3": AlgoSpec(
        "stable_baselines3:TD3",
        "MlpPolicy",
        (_BOX,),
        dict(_OFF_POLICY),
        continuous_only=True,
        noise=True,
    ),
    "ddpg": AlgoSpec(
        "stable_baselines3:DDPG",
        "MlpPolicy",
        (_BOX,),
        dict(_OFF_POLICY),
        continuous_only=True,
        noise=True,
    ),
    "trpo": AlgoSpec("sb3_contrib:TRPO", "MlpPolicy", (_BOX, _DISC, _MD, _MB), dict(_ON_POLICY)),
    # ARS evaluates each perturbed policy for a whole episode; 4 directions keep a round short.
    "ars": AlgoSpec("sb3_contrib:ARS", "LinearPolicy", (_BOX, _DISC), {"n_delta": 4}),
    "recurrent_ppo": AlgoSpec(
        "sb3_contrib:RecurrentPPO",
        "MlpLstmPolicy",
        (_BOX, _DISC, _MD, _MB),
        {**_ON_POLICY, "ent_coef": 0.01, "policy_kwargs": {"lstm_hidden_size": 64}},
    ),
}
ALIASES = {"ppo_lstm": "recurrent_ppo"}
SB3_NAMES = tuple(sorted(ALGORITHMS) + sorted(ALIASES))


def resolve_algo(name: str) -> str:
    """Canonical algorithm name for ``name`` (case-insensitive, aliases allowed)."""
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in ALGORITHMS:
        raise ValueError(f"unknown SB3 algorithm {name!r}; valid: {', '.join(SB3_NAMES)}")
    return key


def algo_class(name: str) -> type[BaseAlgorithm]:
    """Import the algorithm class lazily (sb3-contrib is only needed for its algorithms)."""
    module, cls = ALGORITHMS[resolve_algo(name)].target.split(":")
    return getattr(importlib.import_module(module), cls)


def _adapt_action_space(algo: str, space: spaces.Space) -> bool:
    """Check ``space`` fits ``algo``; returns whether MultiDiscrete must be flattened."""
    spec = ALGORITHMS[algo]
    if isinstance(space, spec.spaces):
        return False
    if spec.continuous_only:
        raise ValueError(
            f"{algo.upper()} needs a continuous (Box) action space but the env has {space}; "
            f"create the env with gym.make('DataGen-v0', action_mode='continuous')"
        )
    if isinstance(space, spaces.MultiDiscrete) and spaces.Discrete in spec.spaces:
        return True
    wanted = (
        "action_mode='discrete'" if isinstance(space, spaces.Box) else "a supported action space"
    )
    raise ValueError(
        f"{algo.upper()} does not support {space} (takes {[s.__name__ for s in spec.spaces]}); "
        f"create the env with {wanted}"
    )


class SB3Agent(BaseAgent):
    """Wrap an SB3 / sb3-contrib algorithm chosen by name.

    :param algo: ``ppo``, ``a2c``, ``dqn``, ``qrdqn``, ``sac``, ``td3``, ``ddpg``, ``trpo``,
        ``ars``, ``recurrent_ppo`` (alias ``ppo_lstm``).
    :param env: a gymnasium env (wrapped here) or an already-wrapped SB3 ``VecEnv``.
    :param policy: policy name or class; the algorithm's usual MLP policy by default.
    :param algo_kwargs: forwarded to the algorithm's constructor, overriding our defaults.
    """

    agent_name = "sb3"

    def __init__(
        self,
        algo: str,
        env: gym.Env | VecEnv | None,
        policy: str | type | None = None,
        seed: int | None = None,
        tensorboard_log: PathLike | None = None,
        text_every: int = 10,
        verbose: int = 0,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
        _build_model: bool = True,
        **algo_kwargs: Any,
    ) -> None:
        self.algo = resolve_algo(algo)
        self.model: BaseAlgorithm | None = None
        super().__init__(
            env if not isinstance(env, VecEnv) else None,
            seed=seed,
            tensorboard_log=tensorboard_log,
            text_every=text_every,
            verbose=verbose,
            observation_space=env.observation_space if env is not None else observation_space,
            action_space=env.action_space if env is not None else action_space,
        )
        self.spec = ALGORITHMS[self.algo]
        self.policy = policy or self.spec.policy
        self.flatten = _adapt_action_space(self.algo, self.action_space)
        self.recorders: list[StepInfoRecorder] = []
        self.env = self._wrap_env(env) if env is not None else None
        self.algo_kwargs = self._with_defaults(algo_kwargs)
        if _build_model:
            if self.env is None:
                raise ValueError(
                    "SB3Agent needs an env to build a new model (use SB3Agent.load without one)"
                )
            self.model = algo_class(self.algo)(
                self.policy,
                self.env,
                seed=seed,
                verbose=verbose,
                tensorboard_log=self.tensorboard_log,
                **self.algo_kwargs,
            )

    # ---------------------------------------------------------------- env and defaults
    def _wrap_env(self, env: gym.Env | VecEnv) -> gym.Env | VecEnv:
        """Make ``env`` fit the algorithm; Monitor outermost so it sees every step's reward."""
        if isinstance(env, VecEnv):
            if self.flatten:
                raise ValueError(
                    f"{self.algo.upper()} needs Discrete actions: pass the plain gymnasium env "
                    "so it can be wrapped with MultiDiscreteToDiscrete before vectorising"
                )
            return env  # the caller vectorised it and is responsible for (Vec)Monitor
        if self.flatten:
            env = MultiDiscreteToDiscrete(env)
        if self.algo == "ars":  # ARS hides step infos from callbacks; record them for ours
            recorder = StepInfoRecorder(env)
            self.recorders.append(recorder)
            env = recorder
        if not is_wrapped(env, Monitor):
            env = Monitor(env)
        return env

    def _with_defaults(self, user: dict[str, Any]) -> dict[str, Any]:
        kwargs = {**copy.deepcopy(self.spec.defaults), **user}  # SB3 may mutate policy_kwargs
        if "n_steps" in user and "batch_size" not in user and "batch_size" in kwargs:
            # Keep minibatches no larger than the rollout the user asked for.
            kwargs["batch_size"] = max(2, min(int(kwargs["batch_size"]), int(user["n_steps"])))
        if (
            self.spec.noise
            and "action_noise" not in kwargs
            and isinstance(self.action_space, spaces.Box)
        ):
            # TD3/DDPG act deterministically; without noise they never explore.
            half_range = np.where(
                np.isfinite(self.action_space.high - self.action_space.low),
                (self.action_space.high - self.action_space.low) / 2.0,
                1.0,
            )
            kwargs["action_noise"] = NormalActionNoise(
                mean=np.zeros(self.action_space.shape), sigma=0.1 * half_range.astype(np.float64)
            )
        return kwargs

    def set_random_seed(self, seed: int | None) -> None:
        """Seed the agent and, once built, the SB3 model (which seeds torch, numpy and the env)."""
        super().set_random_seed(seed)
        if getattr(self, "model", None) is not None and seed is not None:
            self.model.set_random_seed(seed)

    # ---------------------------------------------------------------- API
    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        tb_log_name: str = "run",
        progress_bar: bool = False,
        reset_num_timesteps: bool = True,
        **learn_kwargs: Any,
    ) -> SB3Agent:
        """SB3 ``learn`` with the DataGen TensorBoard callback added in front of ``callback``."""
        assert self.model is not None
        if self.model.get_env() is None:
            raise ValueError("this agent has no env: pass one to load(...)")
        callbacks: list[BaseCallback] = [
            DataGenTensorboardCallback(self.text_every, self.recorders)
        ]
        for cb in callback if isinstance(callback, (list, tuple)) else [callback]:
            if cb is None:
                continue
            callbacks.append(cb if isinstance(cb, BaseCallback) else ConvertCallback(cb))
        learn_kwargs = {**self.spec.learn_defaults, **learn_kwargs}
        self.model.learn(
            total_timesteps,
            callback=CallbackList(callbacks),
            tb_log_name=tb_log_name,
            progress_bar=progress_bar,
            reset_num_timesteps=reset_num_timesteps,
            **learn_kwargs,
        )
        self.num_timesteps = self.model.num_timesteps
        return self

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """The model's action(s), mapped back to the user's action space when it was flattened."""
        assert self.model is not None
        action, state = self.model.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic
        )
        if self.flatten:
            space = self.action_space
            action = unflatten_discrete(action, space.nvec, space.start).astype(space.dtype)
        return action, state

    @property
    def logger_dir(self) -> str | None:
        """Directory SB3 logs to (the TensorBoard run directory when ``tensorboard_log`` is set)."""
        return None if self.model is None else self.model.logger.get_dir()

    def save(self, path: PathLike) -> None:
        """Write ``<path>/model.zip`` (SB3's format) and ``<path>/agent.json`` (wrapper rebuild)."""
        assert self.model is not None
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        model = self.model
        atomic_write_with(path / MODEL_FILE, lambda tmp: model.save(tmp), suffix=".zip")
        meta = {
            "agent": self.agent_name,
            "format_version": FORMAT_VERSION,
            "algo": self.algo,
            "policy": self.policy if isinstance(self.policy, str) else None,
            "flatten_multidiscrete": self.flatten,
            "text_every": self.text_every,
            "model": MODEL_FILE,
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
            "num_timesteps": int(model.num_timesteps),
            "seed": self.seed,
            # Informational only: the zip holds the authoritative values.
            "algo_kwargs": {k: to_jsonable(v) for k, v in self.algo_kwargs.items() if _jsonable(v)},
        }
        atomic_write_json(path / META_FILE, meta)

    @classmethod
    def load(cls, path: PathLike, env: gym.Env | VecEnv | None = None, **kwargs: Any) -> SB3Agent:
        """Load ``<path>/model.zip``, wrapping ``env`` (if given) exactly as at training time."""
        path = Path(path)
        meta = cls._read_meta(path, cls.agent_name)
        tensorboard_log = kwargs.pop("tensorboard_log", None)
        agent = cls(
            meta["algo"],
            env,
            policy=meta.get("policy"),
            tensorboard_log=tensorboard_log,
            text_every=kwargs.pop("text_every", meta.get("text_every", 10)),
            observation_space=space_from_dict(meta["observation_space"]),
            action_space=space_from_dict(meta["action_space"]),
            _build_model=False,
        )
        if env is not None and not isinstance(env, VecEnv):
            agent._check_spaces(env)
        extra = {"tensorboard_log": tensorboard_log} if tensorboard_log is not None else {}
        agent.model = algo_class(meta["algo"]).load(
            path / meta.get("model", MODEL_FILE), env=agent.env, **extra, **kwargs
        )
        agent.seed = meta.get("seed")
        agent.num_timesteps = int(agent.model.num_timesteps)
        return agent


def _jsonable(value: Any) -> bool:
    try:
        to_jsonable(value)
        return True
    except TypeError:
        return False
