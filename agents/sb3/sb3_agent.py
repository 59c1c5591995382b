"""Any Stable-Baselines3 / sb3-contrib algorithm behind the common agent API.

:class:`SB3Agent` picks the algorithm by name, fits the env to it (``Monitor`` for SB3's
``rollout/*`` statistics, ``MultiDiscreteToDiscrete`` for DQN-style algorithms, a clear error
where the action space cannot fit), adds the shared ``datagen/*`` TensorBoard callback and
forwards ``learn`` / ``predict`` / ``save`` / ``load``. Actions returned by :meth:`predict` are
always in the *user's* env action space, whatever wrapper the algorithm needed.

Defaults are sized for DataGen's short, expensive episodes (~10 steps, each a generation plus
a target evaluation): small rollouts and replay warm-ups so that learning starts within a few
episodes. Every default can be overridden through keyword arguments.

Checkpoints never unpickle. SB3's ``model.zip`` stores every attribute that is not plain JSON
(``lr_schedule``, the spaces, ``policy_class``, ...) as a base64 cloudpickle in its ``data``
entry, and ``BaseAlgorithm.load`` deserialises them - ``custom_objects`` only replaces the
entries it names, so a planted pickle under any other key still runs. :meth:`SB3Agent.load`
therefore never calls SB3's loader: it rebuilds the model from the constructor arguments we
store ourselves in ``agent.json`` (plain JSON, or a small JSON encoding for action noise) and
the spaces, reads from the zip only the plain counters of ``data`` (a whitelist, each type
checked; ``:serialized:`` entries are never decoded) and the ``*.pth`` tensors through
``torch.load(weights_only=True)``, PyTorch's restricted unpickler that admits tensors and
containers only.
"""

from __future__ import annotations

import copy
import importlib
import io
import json
import math
import warnings
import zipfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import (
    ActionNoise,
    NormalActionNoise,
    OrnsteinUhlenbeckActionNoise,
)
from stable_baselines3.common.save_util import recursive_setattr
from stable_baselines3.common.vec_env import VecEnv

from agents.common.base import META_FILE, BaseAgent, MaybeCallback, as_callback, checkpoint_dir
from agents.common.checkpoint import (
    CheckpointError,
    PathLike,
    atomic_write_json,
    atomic_write_with,
    read_json_object,
    space_from_dict,
    space_to_dict,
    to_jsonable,
)
from agents.common.parsing import normalize_agent_name
from agents.common.tensorboard import InfoTensorboardCallback
from agents.common.wrappers import MultiDiscreteToDiscrete, StepInfoRecorder, unflatten_discrete
from agents.sb3.skill_slot_policy import POLICY_CLASSES as SKILL_SLOT_CLASSES
from agents.sb3.skill_slot_policy import SKILL_SLOT_POLICY

MODEL_FILE = "model.zip"
#: The checkpoint format: ``algo_kwargs`` are authoritative (the model is rebuilt from them,
#: never unpickled) and ``unstored_kwargs`` lists those that could not be stored.
FORMAT_VERSION = 2
#: Plain counters of SB3's ``data`` entry that a resumed model needs, with their JSON types.
#: Nothing else of ``data`` is read (hyper-parameters come from ``agent.json``).
ZIP_COUNTERS: dict[str, type | tuple[type, ...]] = {
    "num_timesteps": int,
    "_total_timesteps": int,
    "_num_timesteps_at_start": int,
    "_episode_num": int,
    "_n_updates": int,
    "_n_calls": int,
    "_current_progress_remaining": (int, float),
    "exploration_rate": (int, float),
}

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
    masked: bool = False  # reads the env's action_masks() (sb3-contrib's MaskablePPO)
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
    # PPO that samples only the values the env's action_masks() allows (a focus on a skill
    # the task lacks, for DataGen); MultiDiscrete is masked per dimension.
    "maskable_ppo": AlgoSpec(
        "sb3_contrib:MaskablePPO",
        "MlpPolicy",
        (_DISC, _MD, _MB),
        {**_ON_POLICY, "ent_coef": 0.01},
        masked=True,
    ),
    "recurrent_ppo": AlgoSpec(
        "sb3_contrib:RecurrentPPO",
        "MlpLstmPolicy",
        (_BOX, _DISC, _MD, _MB),
        {**_ON_POLICY, "ent_coef": 0.01, "policy_kwargs": {"lstm_hidden_size": 64}},
    ),
}
ALIASES = {"ppo_lstm": "recurrent_ppo", "maskableppo": "maskable_ppo", "ppo_mask": "maskable_ppo"}
SB3_NAMES = tuple(sorted(ALGORITHMS) + sorted(ALIASES))


def resolve_algo(name: str) -> str:
    """Canonical algorithm name for ``name`` (case-insensitive, aliases allowed)."""
    key = normalize_agent_name(name)
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


def _check_action_masks(algo: str, env: gym.Env | VecEnv) -> None:
    """A masked algorithm needs ``action_masks()`` on the env (found through its wrappers)."""
    if isinstance(env, VecEnv):
        found = all(env.has_attr("action_masks")) if hasattr(env, "has_attr") else False
    else:
        try:
            found = callable(env.get_wrapper_attr("action_masks"))
        except AttributeError:
            found = False
    if not found:
        raise ValueError(
            f"{algo.upper()} needs an env with an action_masks() method "
            f"(sb3-contrib's convention; DataGenEnv has one in "
            f"action_mode='discrete')"
        )


class SB3Agent(BaseAgent):
    """Wrap an SB3 / sb3-contrib algorithm chosen by name.

    :param algo: ``ppo``, ``a2c``, ``dqn``, ``qrdqn``, ``sac``, ``td3``, ``ddpg``, ``trpo``,
        ``ars``, ``recurrent_ppo`` (alias ``ppo_lstm``), ``maskable_ppo`` (aliases
        ``maskableppo``, ``ppo_mask``; needs an env with ``action_masks()``, as DataGenEnv in
        its discrete action mode has).
    :param env: a gymnasium env (wrapped here) or an already-wrapped SB3 ``VecEnv``.
    :param policy: policy name or class; the algorithm's usual MLP policy by default.
        ``"SkillSlotPolicy"`` (PPO, A2C, MaskablePPO): one shared network scores every skill
        slot of DataGen's focus (:mod:`agents.sb3.skill_slot_policy`).
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
        if self.spec.masked and env is not None:
            _check_action_masks(self.algo, env)
        self.recorders: list[StepInfoRecorder] = []
        self.env = self._wrap_env(env) if env is not None else None
        self.algo_kwargs = self._with_defaults(algo_kwargs)
        self.policy_class = self._policy_class(env)
        if _build_model:
            if self.env is None:
                raise ValueError(
                    "SB3Agent needs an env to build a new model (use SB3Agent.load without one)"
                )
            self.model = algo_class(self.algo)(
                self.policy_class,
                self.env,
                seed=seed,
                verbose=verbose,
                tensorboard_log=self.tensorboard_log,
                **self.algo_kwargs,
            )

    def _policy_class(self, env: gym.Env | VecEnv | None) -> str | type:
        """What the algorithm is built with: ``self.policy`` itself, or for
        :data:`SKILL_SLOT_POLICY` its class for this algorithm, the env's skill layout added to
        ``policy_kwargs`` (so it is stored with the checkpoint)."""
        if self.policy != SKILL_SLOT_POLICY:
            return self.policy
        if self.algo not in SKILL_SLOT_CLASSES:
            raise ValueError(
                f"policy {SKILL_SLOT_POLICY!r} works with {sorted(SKILL_SLOT_CLASSES)}, "
                f"not {self.algo!r}"
            )
        policy_kwargs = dict(self.algo_kwargs.get("policy_kwargs") or {})
        if "skill_observation" not in policy_kwargs:
            layout = None
            if isinstance(env, VecEnv):
                layout = env.get_attr("skill_observation", [0])[0]
            elif env is not None:
                try:
                    layout = env.get_wrapper_attr("skill_observation")
                except AttributeError:
                    pass
            if layout is None:
                raise ValueError(
                    f"policy {SKILL_SLOT_POLICY!r} needs the env's per-skill observation: "
                    "a DataGen env with observe_skills (focus=True turns it on), or "
                    "policy_kwargs={'skill_observation': {...}}"
                )
            policy_kwargs["skill_observation"] = dict(layout)
            self.algo_kwargs["policy_kwargs"] = policy_kwargs
        return SKILL_SLOT_CLASSES[self.algo]

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
        callback: MaybeCallback = None,
        tb_log_name: str = "run",
        progress_bar: bool = False,
        reset_num_timesteps: bool = True,
        **learn_kwargs: Any,
    ) -> SB3Agent:
        """SB3 ``learn`` with the DataGen TensorBoard callback added in front of ``callback``."""
        assert self.model is not None
        if self.model.get_env() is None:
            raise ValueError("this agent has no env: pass one to load(...)")
        info = InfoTensorboardCallback(
            self.text_every, self.recorders, purge=not reset_num_timesteps
        )
        learn_kwargs = {**self.spec.learn_defaults, **learn_kwargs}
        # Our logger, not SB3's: the same run directories as every agent, and without
        # tensorboard_log SB3's would create an empty tempdir/SB3-<date> folder on every learn().
        self.model.set_logger(self._configure_logger(tb_log_name, reset_num_timesteps))
        self.model.learn(
            total_timesteps,
            callback=CallbackList([info, as_callback(callback)]),
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
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """The model's action(s), mapped back to the user's action space when it was flattened.

        ``action_masks`` (masked algorithms only): the env's ``action_masks()`` for this
        observation; without it a masked policy may pick any value."""
        assert self.model is not None
        extra: dict[str, Any] = {}
        if action_masks is not None:
            if not self.spec.masked:
                raise ValueError(
                    f"action_masks is only read by masked algorithms "
                    f"(maskable_ppo), not {self.algo}"
                )
            extra["action_masks"] = np.asarray(action_masks, dtype=bool)
        action, state = self.model.predict(
            observation,
            state=state,
            episode_start=episode_start,
            deterministic=deterministic,
            **extra,
        )
        if self.flatten:
            space = self.action_space
            action = unflatten_discrete(action, space.nvec, space.start).astype(space.dtype)
        return action, state

    def set_env(self, env: gym.Env | VecEnv) -> None:
        """Attach a (new) env, wrapped as at construction (``Monitor``, flattening)."""
        if not isinstance(env, VecEnv):
            self._check_spaces(env)
        if self.spec.masked:
            _check_action_masks(self.algo, env)
        self.recorders = []
        self.env = self._wrap_env(env)
        if self.model is not None:
            self.model.set_env(self.env)

    def set_tensorboard_log(self, root: PathLike | None) -> None:
        """Write the next ``learn``'s TensorBoard run under ``root`` (the model's logger too)."""
        super().set_tensorboard_log(root)
        if self.model is not None:
            self.model.tensorboard_log = self.tensorboard_log

    def resume_episode(
        self, obs: Any, info: dict[str, Any], ep_return: float, ep_length: int
    ) -> None:
        """Continue mid-episode at ``obs`` (see :meth:`BaseAgent.resume_episode`): SB3 keeps
        the last observation and the episode-start flag on the model."""
        assert self.model is not None
        self.model._last_obs = np.asarray(obs)[None]
        self.model._last_episode_starts = np.array([ep_length == 0])

    @property
    def logger(self) -> Logger:
        """The model's SB3 ``Logger`` (set up by its ``learn``); a silent one before any."""
        model_logger = getattr(self.model, "_logger", None)
        return model_logger if model_logger is not None else super().logger

    def get_vec_normalize_env(self) -> Any:
        """The model's ``VecNormalize`` wrapper, if its env has one."""
        return None if self.model is None else self.model.get_vec_normalize_env()

    def save(self, path: PathLike) -> None:
        """Write ``<path>/model.zip`` (SB3's format) and ``<path>/agent.json`` (wrapper rebuild)."""
        assert self.model is not None
        path = checkpoint_dir(path)
        path.mkdir(parents=True, exist_ok=True)
        model = self.model
        atomic_write_with(path / MODEL_FILE, lambda tmp: model.save(tmp), suffix=".zip")
        stored = {}
        for key, value in self.algo_kwargs.items():
            encoded = _encode_kwarg(value)
            if encoded is not _UNSTORABLE:
                stored[key] = encoded
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
            # The constructor arguments load() rebuilds the model from (the zip's pickled
            # copies are never read); what JSON cannot hold must be passed to load() again.
            "algo_kwargs": stored,
            "unstored_kwargs": sorted(set(self.algo_kwargs) - set(stored)),
            # SB3 pickles these deques; kept here so rollout/ep_rew_mean continues smoothly.
            "ep_info_buffer": [_plain_episode(e) for e in (model.ep_info_buffer or [])],
        }
        atomic_write_json(path / META_FILE, meta)

    @classmethod
    def load(cls, path: PathLike, env: gym.Env | VecEnv | None = None, **kwargs: Any) -> SB3Agent:
        """Rebuild the agent of ``<path>`` without unpickling anything (see the module docstring).

        ``env`` (if given) is wrapped exactly as at training time. ``kwargs``: ``device``,
        ``tensorboard_log``, ``text_every``, ``policy`` (required if a custom policy class was
        used) and constructor arguments that override the stored ones (required for those listed
        in ``unstored_kwargs``, e.g. a custom learning-rate schedule). A corrupt, incompatible or
        tampered checkpoint raises :class:`CheckpointError` naming the file.
        """
        path = checkpoint_dir(path, existing=True)
        meta_path = path / META_FILE
        meta = read_json_object(
            meta_path,
            {
                "agent": str,
                "algo": str,
                "observation_space": dict,
                "action_space": dict,
                "algo_kwargs": dict,
            },
        )
        if meta["agent"] != cls.agent_name:
            raise CheckpointError(
                f"{meta_path} holds a {meta['agent']!r} agent, not {cls.agent_name!r}"
            )
        if meta.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{meta_path} has format_version {meta.get('format_version')!r}; this version "
                f"reads {FORMAT_VERSION}"
            )
        try:
            algo = resolve_algo(meta["algo"])
            obs_space = space_from_dict(meta["observation_space"])
            act_space = space_from_dict(meta["action_space"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{meta_path}: bad algo or space description ({exc})") from None
        device = kwargs.pop("device", "auto")
        tensorboard_log = kwargs.pop("tensorboard_log", None)
        text_every = kwargs.pop("text_every", meta.get("text_every", 10))
        policy = kwargs.pop("policy", None) or meta.get("policy")
        if kwargs.pop("custom_objects", None) is not None:
            raise TypeError(
                "custom_objects is not supported: SB3Agent.load never unpickles; "
                "pass constructor arguments instead"
            )
        if policy is None:
            raise ValueError(
                f"{meta_path}: the model used a custom policy class; pass it as "
                f"SB3Agent.load(..., policy=YourPolicy)"
            )
        algo_kwargs = {k: _decode_kwarg(meta_path, k, v) for k, v in meta["algo_kwargs"].items()}
        missing = [k for k in meta.get("unstored_kwargs", []) if k not in kwargs]
        if missing:
            raise ValueError(
                f"{meta_path}: the arguments {missing} could not be stored as JSON; "
                f"pass them to SB3Agent.load(...)"
            )
        algo_kwargs.update(kwargs)
        seed = meta.get("seed")
        agent = cls(
            algo,
            env,
            policy=policy,
            seed=seed,
            tensorboard_log=tensorboard_log,
            text_every=text_every,
            observation_space=obs_space,
            action_space=act_space,
            _build_model=False,
            **algo_kwargs,
        )
        if env is not None and not isinstance(env, VecEnv):
            agent._check_spaces(env)
        agent.model = agent._rebuild_model(path / meta.get("model", MODEL_FILE), device)
        episodes = meta.get("ep_info_buffer")
        if isinstance(episodes, list) and episodes:
            # learn(reset_num_timesteps=False) keeps non-None buffers (both, or it asserts).
            window = agent.model._stats_window_size
            agent.model.ep_info_buffer = deque(
                (_plain_episode(e) for e in episodes if isinstance(e, dict)), maxlen=window
            )
            agent.model.ep_success_buffer = deque(maxlen=window)
        agent.seed = seed
        agent.num_timesteps = int(agent.model.num_timesteps)
        return agent

    def _rebuild_model(self, zip_path: Path, device: Any) -> BaseAlgorithm:
        """A fresh model from the stored arguments, with the zip's tensors and counters."""
        counters, params, variables = read_sb3_zip(zip_path)
        model_cls = algo_class(self.algo)
        # SB3's own load path: construct without set-up, fill in what it needs, set up.
        model = model_cls(
            self.policy_class,
            self.env,
            seed=self.seed,
            verbose=self.verbose,
            tensorboard_log=self.tensorboard_log,
            device=device,
            _init_setup_model=False,
            **self.algo_kwargs,
        )
        if self.env is None:  # predict-only: the spaces come from agent.json
            model.observation_space = self.observation_space
            model.action_space = (
                spaces.Discrete(int(np.prod(self.action_space.nvec)))
                if self.flatten
                else self.action_space
            )
            model.n_envs = 1
        model._setup_model()
        try:
            model.set_parameters(params, exact_match=True, device=model.device)
            for name, value in (variables or {}).items():
                if value is not None:
                    # As SB3 does: set .data so optimisers keep their reference to the tensor.
                    recursive_setattr(model, f"{name}.data", value.data.to(model.device))
        except (RuntimeError, ValueError, KeyError, AttributeError) as exc:
            detail = " ".join(str(exc).split())[:300]
            raise CheckpointError(
                f"{zip_path}: its tensors do not fit a {self.algo} model built "
                f"from agent.json ({detail})"
            ) from None
        if hasattr(model, "weights") and hasattr(model.policy, "load_from_vector"):
            # ARS keeps a flat copy of the policy weights that it updates; recompute it from
            # the loaded policy (SB3's own loader leaves it at the fresh initialisation).
            model.weights = torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach()
        for key, value in counters.items():
            if hasattr(model, key):
                setattr(model, key, value)
        if model.use_sde:
            model.policy.reset_noise()
        return model


# ---------------------------------------------------------------------------- zip reading
def read_sb3_zip(
    zip_path: PathLike,
) -> tuple[dict[str, int | float], dict[str, Any], dict[str, Any] | None]:
    """``(counters, state_dicts, pytorch_variables)`` of an SB3 ``model.zip``, with no unpickling.

    ``counters``: the :data:`ZIP_COUNTERS` found in the ``data`` JSON with the right type (any
    ``:serialized:`` entry is skipped unread). ``state_dicts``: every ``*.pth`` member but
    ``pytorch_variables.pth``, read with ``torch.load(weights_only=True)``. A member that is not
    a plain tensor file raises :class:`CheckpointError` naming the zip and the member.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise FileNotFoundError(f"{zip_path} not found")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
            if "data" not in names:
                raise CheckpointError(f"{zip_path} has no 'data' member: not an SB3 model zip")
            try:
                data = json.loads(archive.read("data").decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CheckpointError(f"{zip_path}: member 'data' is not JSON ({exc})") from None
            if not isinstance(data, dict):
                raise CheckpointError(f"{zip_path}: member 'data' is not a JSON object")
            counters = {}
            for key, types in ZIP_COUNTERS.items():
                value = data.get(key)
                if (
                    isinstance(value, types)
                    and not isinstance(value, bool)
                    and (not isinstance(value, float) or math.isfinite(value))
                ):
                    counters[key] = value
            params: dict[str, Any] = {}
            variables: dict[str, Any] | None = None
            for name in names:
                if not name.endswith(".pth"):
                    continue  # system_info.txt, the version: informational
                loaded = _weights_only_load(zip_path, name, archive.read(name))
                if name in ("pytorch_variables.pth", "tensors.pth"):
                    variables = loaded
                else:
                    params[name[: -len(".pth")]] = loaded
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"{zip_path} is not a valid zip file ({exc})") from None
    if not params:
        raise CheckpointError(f"{zip_path} holds no *.pth state dicts: not an SB3 model zip")
    return counters, params, variables


def _weights_only_load(zip_path: Path, name: str, raw: bytes) -> Any:
    try:
        with warnings.catch_warnings():  # a foreign pickle also warns about its protocol
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError ...: all mean "not plain tensors"
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise CheckpointError(
            f"{zip_path}: member {name!r} is not a plain tensor file; refused "
            f"to load it ({first.strip()[:200]})"
        ) from None


# ---------------------------------------------------------------------------- kwargs <-> JSON
_UNSTORABLE = object()
_NOISES: dict[str, type[ActionNoise]] = {
    "NormalActionNoise": NormalActionNoise,
    "OrnsteinUhlenbeckActionNoise": OrnsteinUhlenbeckActionNoise,
}


def _encode_kwarg(value: Any) -> Any:
    """A JSON form of a constructor argument, or ``_UNSTORABLE``."""
    if type(value) in _NOISES.values():
        noise = {"mean": value._mu, "sigma": value._sigma}
        if isinstance(value, OrnsteinUhlenbeckActionNoise):
            noise.update(theta=value._theta, dt=value._dt, initial_noise=value.initial_noise)
        return {":action_noise:": type(value).__name__, **to_jsonable(noise)}
    try:
        encoded = to_jsonable(value)
    except TypeError:
        return _UNSTORABLE
    # A key of ours inside user data would be decoded as noise; refuse to store it.
    return _UNSTORABLE if ":action_noise:" in json.dumps(encoded) else encoded


def _decode_kwarg(meta_path: Path, key: str, value: Any) -> Any:
    if isinstance(value, dict) and ":action_noise:" in value:
        noise_cls = _NOISES.get(value[":action_noise:"])
        if noise_cls is None:
            raise CheckpointError(
                f"{meta_path}: algo_kwargs.{key} names an unknown action "
                f"noise {value[':action_noise:']!r}"
            )
        try:
            args = {
                k: np.asarray(v, dtype=np.float64) if k in ("mean", "sigma") else v
                for k, v in value.items()
                if k != ":action_noise:"
            }
            if args.get("initial_noise") is not None:
                args["initial_noise"] = np.asarray(args["initial_noise"], dtype=np.float64)
            return noise_cls(**args)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{meta_path}: algo_kwargs.{key} is not a valid action noise ({exc})"
            ) from None
    return value


def _plain_episode(entry: Any) -> dict[str, float]:
    """An ``ep_info_buffer`` entry reduced to its JSON numbers (``r``, ``l``, ``t``)."""
    out = {}
    for key in ("r", "l", "t"):
        try:
            value = float(entry[key])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(value):
            out[key] = value
    return out
