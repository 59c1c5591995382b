"""Random-search hill climbing over an env's settings (the design's MVP agent).

Settings mode: the env declares its action layout with three attributes (read through
``env.get_wrapper_attr``), one entry per action dimension:

* ``action_dim_names`` - the dimension's name (e.g. DataGen-v0's ``("temperature", "top_p",
  "template")``, plus ``"focus"`` with ``focus=True``);
* ``action_dim_keep`` - the "no change" value of a *delta* dimension (three values: down / keep /
  up, i.e. ``keep - 1``, ``keep``, ``keep + 1``), or ``None`` for a *choice* dimension that picks
  an absolute setting (DataGen: ``(1, 1, None[, None])``);
* ``action_dim_info_keys`` - the ``info`` key that reports the dimension's current value
  (DataGen: ``("temperature", "top_p", "template_index"[, "focus_index"])``).

Every *proposal* moves each delta dimension down or up at random and, with probability
``p_template``, switches one choice dimension (picked uniformly when there are several) to a
random other value. If the step's reward (the improvement of the target metric) is positive the
new settings become the incumbent; otherwise the next action *reverts*: it moves the delta
dimensions back toward the incumbent's values (read from ``info``) and takes the incumbent's
choices. The revert step's reward judges nothing (it only undoes), so the step after a revert is
a fresh proposal. Across episodes the search keeps what it found: every episode restarts from
the env's initial settings, but the choices of the best metric seen so far become the new
episode's incumbent (``carry_template=True``), so the first proposal already builds on them.
Without that each episode would start the search over from the env's initial choices.

The action space is either ``MultiDiscrete`` (one entry per declared dimension) or a continuous
``Box((n_delta + n,))``: first one scalar per delta dimension (its sign is the move; the delta
dimensions must then come first in the declaration), then the argmax block of the choice
dimension. A ``Box`` supports at most one choice dimension, whose block takes the remaining
entries (the layout does not give the sizes of several blocks).

Generic mode (no layout declared, or one that does not fit the action space): sample random
actions and keep the best-rewarded one as the incumbent, which is what
``predict(deterministic=True)`` returns.

The agent does not condition on observations: it is a black-box optimiser of the settings and
its whole state (layout, incumbent, phase, RNG) is plain data stored in one JSON file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.common.base import META_FILE, BaseAgent, checkpoint_dir
from agents.common.checkpoint import PathLike, atomic_write_json, space_from_dict, space_to_dict
from agents.common.parsing import finite_float

#: The checkpoint format: ``agent.json`` stores the settings layout it searched (``"layout"``).
FORMAT_VERSION = 2
DOWN, KEEP, UP = 0, 1, 2  # internal delta codes: -d, no change, +d (value = keep + code - 1)
_EPS = 1e-6  # settings closer than this count as equal (they are floats passed through the env)
LAYOUT_ATTRIBUTES = ("action_dim_names", "action_dim_keep", "action_dim_info_keys")
_RESERVED_KEYS = ("metric", "reward", "action")  # ``best`` also stores these


def env_action_layout(env: gym.Env | None) -> dict[str, list[Any]] | None:
    """The env's declared action layout (see the module docstring), or None if it declares none."""
    if env is None:
        return None
    values = []
    for name in LAYOUT_ATTRIBUTES:
        try:
            value = env.get_wrapper_attr(name)
        except AttributeError:
            return None
        if value is None:
            return None
        values.append(list(value))
    names, keep, keys = values
    # Plain JSON-able values (a declaration may hold numpy ints).
    keep = [k if k is None or isinstance(k, bool) else _int_or_none(k) for k in keep]
    return {"names": [str(n) for n in names], "keep": keep, "info_keys": [str(k) for k in keys]}


def layout_problem(layout: dict[str, Any] | None, space: spaces.Space) -> str | None:
    """Why ``layout`` cannot drive the settings search over ``space`` (None: it can)."""
    if layout is None:
        return "the env declares no action layout (" + ", ".join(LAYOUT_ATTRIBUTES) + ")"
    names, keep, keys = (list(layout.get(k) or []) for k in ("names", "keep", "info_keys"))
    n = len(names)
    if n == 0 or len(keep) != n or len(keys) != n:
        return f"the layout's names, keep values and info keys differ in length: {layout}"
    if len(set(keys)) != n or any(k in _RESERVED_KEYS for k in keys):
        return f"the layout's info keys must be distinct and not {_RESERVED_KEYS}: {keys}"
    deltas = [i for i, k in enumerate(keep) if k is not None]
    choices = [i for i, k in enumerate(keep) if k is None]
    if isinstance(space, spaces.MultiDiscrete):
        nvec = np.asarray(space.nvec)
        if nvec.ndim != 1 or len(nvec) != n:
            return f"the layout has {n} dimensions, the action space is {space}"
        for i in deltas:
            if not (isinstance(keep[i], int) and 1 <= keep[i] <= int(nvec[i]) - 2):
                return f"delta dimension {names[i]!r} needs keep - 1 and keep + 1 in {space}"
        return None
    if isinstance(space, spaces.Box):
        if len(space.shape) != 1:
            return f"a Box action space must be 1-D, got {space}"
        if deltas != list(range(len(deltas))):
            return "in a Box action space the delta dimensions must come first"
        if len(choices) > 1:
            return "a Box action space supports at most one choice dimension"
        extra = space.shape[0] - len(deltas)
        if extra < len(choices) or (not choices and extra):
            return f"the layout {names} does not fit the action space {space}"
        return None
    return f"the settings search needs a MultiDiscrete or Box action space, got {space}"


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


class RandomSearchAgent(BaseAgent):
    """Accept/revert random search over an env's declared settings (generic random search
    otherwise).

    :param env: the env; its declared action layout decides the mode when ``mode="auto"``.
    :param p_template: probability that a proposal also switches a choice dimension.
    :param mode: ``"auto"``, ``"settings"`` (alias ``"datagen"``) or ``"generic"``.
    :param carry_template: start each episode from the best choices found so far (settings
        mode) rather than from the env's initial ones.
    :param env_id: recorded in checkpoints only (the layout comes from the env).
    :param action_layout: ``{"names", "keep", "info_keys"}`` overriding the env's declaration
        (used by :meth:`load`).
    """

    agent_name = "random_search"
    aliases = ("random",)

    def __init__(
        self,
        env: gym.Env | None,
        p_template: float = 0.3,
        mode: Literal["auto", "settings", "datagen", "generic"] = "auto",
        carry_template: bool = True,
        seed: int | None = None,
        tensorboard_log: PathLike | None = None,
        text_every: int = 10,
        verbose: int = 0,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
        env_id: str | None = None,
        action_layout: dict[str, Sequence[Any]] | None = None,
    ) -> None:
        super().__init__(
            env,
            seed=seed,
            tensorboard_log=tensorboard_log,
            text_every=text_every,
            verbose=verbose,
            observation_space=observation_space,
            action_space=action_space,
        )
        if not 0.0 <= p_template <= 1.0:
            raise ValueError("p_template must be in [0, 1]")
        self.p_template = float(p_template)
        self.carry_template = bool(carry_template)
        if env_id is None and env is not None and env.spec is not None:
            env_id = env.spec.id
        self.env_id = env_id
        layout = (
            {k: list(v) for k, v in action_layout.items()}
            if action_layout is not None
            else env_action_layout(env)
        )
        problem = layout_problem(layout, self.action_space)
        if mode == "datagen":
            mode = "settings"
        if mode == "auto":
            mode = "settings" if problem is None else "generic"
        elif mode == "settings" and problem is not None:
            raise ValueError(
                f"mode='settings' cannot use the action space {self.action_space}: {problem}"
            )
        elif mode not in ("settings", "generic"):
            raise ValueError(
                f"mode must be 'auto', 'settings' ('datagen') or 'generic', got {mode!r}"
            )
        self.mode: str = mode
        self.layout: dict[str, list[Any]] | None = layout if mode == "settings" else None
        keep = self.layout["keep"] if self.layout else []
        keys = self.layout["info_keys"] if self.layout else []
        self._delta_dims = [i for i, k in enumerate(keep) if k is not None]
        self._choice_dims = [i for i, k in enumerate(keep) if k is None]
        self._keys: list[str] = list(keys)
        self._delta_keys = [keys[i] for i in self._delta_dims]
        self._choice_keys = [keys[i] for i in self._choice_dims]
        self.choice_sizes = self._choice_sizes()
        # All search state is JSON-able plain data (see save()).
        self.phase = "propose"
        self.incumbent: dict[str, Any] = dict.fromkeys(self._keys)
        self.current: dict[str, Any] = dict(self.incumbent)
        self.best: dict[str, Any] = {"metric": None, "reward": None, **self.incumbent}
        self.best["action"] = None
        self.last_codes: list[int] | None = None
        self.counters = {"proposals": 0, "accepted": 0, "reverted": 0}
        self.pending: list[Any] = self._propose()

    def _choice_sizes(self) -> list[int]:
        space = self.action_space
        if isinstance(space, spaces.MultiDiscrete):
            return [int(space.nvec[i]) for i in self._choice_dims]
        if self._choice_dims:  # a Box: the one choice block takes the entries after the deltas
            return [int(space.shape[0]) - len(self._delta_dims)]
        return []

    # ---------------------------------------------------------------- settings search moves
    def _encode(self, codes: list[int], choices: list[int]) -> np.ndarray:
        """Delta codes (one per delta dimension) + choice values -> an action of the space."""
        space = self.action_space
        assert self.layout is not None
        if isinstance(space, spaces.MultiDiscrete):
            values = [0] * len(self._keys)
            for i, code in zip(self._delta_dims, codes, strict=True):
                values[i] = int(self.layout["keep"][i]) + code - 1
            for i, choice in zip(self._choice_dims, choices, strict=True):
                values[i] = choice
            return (np.asarray(values) + space.start).astype(space.dtype)
        # Box: one scalar per delta dimension scales the move, then the choice's argmax block.
        action = np.full(space.shape, -1.0, dtype=space.dtype)
        n_delta = len(self._delta_dims)
        for i, code in enumerate(codes):
            action[i] = code - 1
        if choices:
            action[n_delta + choices[0]] = 1.0
        return np.clip(action, space.low, space.high)

    def _decode(self, action: Any) -> tuple[list[int], list[int]]:
        """Inverse of :meth:`_encode` (used to learn what was done when info is silent)."""
        assert self.layout is not None
        a = np.asarray(action).reshape(-1)
        if isinstance(self.action_space, spaces.MultiDiscrete):
            a = a.astype(np.int64) - np.asarray(self.action_space.start).reshape(-1)
            codes = [int(a[i]) - int(self.layout["keep"][i]) + 1 for i in self._delta_dims]
            return codes, [int(a[i]) for i in self._choice_dims]
        n_delta = len(self._delta_dims)
        codes = [int(np.clip(np.rint(a[i]), -1, 1)) + 1 for i in range(n_delta)]
        return codes, [int(np.argmax(a[n_delta:]))] if self._choice_dims else []

    def _reference_choices(self) -> list[int]:
        """The incumbent's choices (else the current ones, else the first value)."""
        out = []
        for key in self._choice_keys:
            value = 0  # the env has not told us this choice yet; assume its first value
            for source in (self.incumbent, self.current):
                if source.get(key) is not None:
                    value = int(source[key])
                    break
            out.append(value)
        return out

    def _propose(self) -> list[Any]:
        """A fresh random move: down/up on every delta, maybe one different choice."""
        if self.mode == "generic":
            return np.asarray(self._sample_action()).tolist()
        codes = [int(self.np_random.choice([DOWN, UP])) for _ in self._delta_dims]
        choices = self._reference_choices()
        switchable = [j for j, n in enumerate(self.choice_sizes) if n > 1]
        if switchable and self.np_random.random() < self.p_template:
            # One choice dimension at a time (no draw when there is only one).
            j = switchable[0]
            if len(switchable) > 1:
                j = switchable[int(self.np_random.integers(len(switchable)))]
            others = [v for v in range(self.choice_sizes[j]) if v != choices[j]]
            choices[j] = int(self.np_random.choice(others))
        self.last_codes = codes
        return self._encode(codes, choices).tolist()

    def _toward(self, target: dict[str, Any], fallback_codes: list[int]) -> list[int]:
        """Delta codes that move the current settings one step toward ``target``.

        Comparing actual values (from ``info``) instead of blindly negating the last move makes
        the revert right when the env clipped the move at a bound.
        """
        codes = []
        for i, key in enumerate(self._delta_keys):
            cur, tgt = self.current.get(key), target.get(key)
            if cur is None or tgt is None:
                codes.append(fallback_codes[i])
            elif cur > tgt + _EPS:
                codes.append(DOWN)
            elif cur < tgt - _EPS:
                codes.append(UP)
            else:
                codes.append(KEEP)
        return codes

    def _revert(self) -> list[Any]:
        last = self.last_codes or [KEEP] * len(self._delta_dims)
        opposite = [2 - c for c in last]
        codes = self._toward(self.incumbent, opposite)
        return self._encode(codes, self._reference_choices()).tolist()

    # ---------------------------------------------------------------- generic helpers
    def _sample_action(self) -> np.ndarray:
        """Sample the action space with the agent's own (JSON-serialisable) RNG."""
        space, rng = self.action_space, self.np_random
        if isinstance(space, spaces.Discrete):
            return np.asarray(space.start + rng.integers(space.n), dtype=np.int64)
        if isinstance(space, spaces.MultiDiscrete):
            return (space.start + rng.integers(0, space.nvec)).astype(space.dtype)
        if isinstance(space, spaces.MultiBinary):
            return rng.integers(0, 2, size=space.shape).astype(space.dtype)
        if isinstance(space, spaces.Box):
            low = np.where(np.isfinite(space.low), space.low, -1.0)  # unbounded: sample N(0,1)
            high = np.where(np.isfinite(space.high), space.high, 1.0)
            bounded = np.isfinite(space.low) & np.isfinite(space.high)
            x = np.where(bounded, rng.uniform(low, high), rng.normal(size=space.shape))
            return x.astype(space.dtype)
        raise TypeError(f"random search cannot sample {space}")

    # ---------------------------------------------------------------- the search step
    def _read_settings(self, info: dict[str, Any], action: Any | None) -> None:
        """Update the known current settings from ``info`` (or from the action taken)."""
        decoded = self._decode(action)[1] if action is not None else None
        for j, key in enumerate(self._choice_keys):
            value = _int_or_none(info.get(key))
            if value is None and decoded is not None:
                value = decoded[j]
            if value is not None:
                self.current[key] = value
        for key in self._delta_keys:
            # Without info the absolute value is unknown; forget it rather than keep a stale one.
            self.current[key] = finite_float(info.get(key))

    def observe_reset(self, info: dict[str, Any] | None = None) -> None:
        """Start of an episode: the env's initial settings become the reference point."""
        if self.mode == "settings":
            # The env restarted from its initial settings: forget the previous episode's ones.
            self.current = dict.fromkeys(self._keys)
            self._read_settings(dict(info or {}), None)
            self.incumbent = dict(self.current)
            for key in self._choice_keys:
                if self.best.get(key) is not None and (
                    self.carry_template or self.incumbent.get(key) is None
                ):
                    self.incumbent[key] = self.best[key]
        self.phase = "propose"
        self.pending = self._propose()

    def observe(self, action: Any, reward: float, info: dict[str, Any] | None = None) -> None:
        """Feed back the outcome of ``action``; computes the next pending action."""
        info = dict(info or {})
        reward = float(reward)
        if self.mode == "generic":
            if self.best["reward"] is None or reward > self.best["reward"]:
                self.best.update(reward=reward, action=np.asarray(action).tolist())
            self.counters["proposals"] += 1
            self.pending = self._propose()
            return
        self._read_settings(info, action)
        metric = finite_float(info.get("metric"))
        if metric is not None and (self.best["metric"] is None or metric > self.best["metric"]):
            self.best.update(
                metric=metric,
                reward=reward,
                action=np.asarray(action).tolist(),
                **{k: self.current.get(k) for k in self._keys},
            )
        if self.phase == "propose":
            self.counters["proposals"] += 1
            if reward > 0 and not info.get("all_filtered", False):
                self.counters["accepted"] += 1
                self.incumbent = dict(self.current)
                decoded = self._decode(action)[1]
                for j, key in enumerate(self._choice_keys):
                    if self.incumbent.get(key) is None:
                        self.incumbent[key] = decoded[j]
                self.pending = self._propose()
            else:
                self.counters["reverted"] += 1
                self.phase = "revert"
                self.pending = self._revert()
        else:  # the revert step was taken; its reward only undoes the rejected move
            self.phase = "propose"
            self.pending = self._propose()

    def _exploit(self) -> list[Any]:
        """Head for the best settings seen (or hold the incumbent if nothing better is known)."""
        if self.mode == "generic":
            return self.best["action"] if self.best["action"] is not None else self.pending
        known = self.best["metric"] is not None and all(
            self.best.get(k) is not None for k in self._choice_keys
        )
        target = self.best if known else self.incumbent
        reference = self._reference_choices()
        choices = [
            reference[j] if target.get(key) is None else int(target[key])
            for j, key in enumerate(self._choice_keys)
        ]
        return self._encode(self._toward(target, [KEEP] * len(self._delta_dims)), choices).tolist()

    # ---------------------------------------------------------------- API
    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """The search's next move; ``deterministic=True`` exploits the best settings found.

        Pure: calling it does not advance the search (:meth:`observe` does), so repeated calls
        agree and a loaded agent predicts exactly what the saved one would have.
        """
        action = np.asarray(
            self._exploit() if deterministic else self.pending, dtype=self.action_space.dtype
        )
        return self._per_observation(action, observation), state

    # ------------------------------------------------------------------ the learn loop
    # (BaseAgent.learn; a search has no rollouts: the callback gets ``on_step`` after every
    # step, no ``on_rollout_start`` / ``on_rollout_end``)
    def _begin_learn(self, fresh_episode: bool) -> None:
        if fresh_episode:
            self.observe_reset(self._last_info)

    def _act(self) -> tuple[np.ndarray, dict[str, Any] | None]:
        return np.asarray(self.pending, dtype=self.action_space.dtype), None

    def _record(self, action: Any, reward: float, done: bool, info: dict[str, Any]) -> None:
        self.observe(action, reward, info)

    def _episode_reset(self, obs: Any, info: dict[str, Any]) -> None:
        self.observe_reset(info)

    def _end_learn(self, callback: Any) -> None:
        for key, value in self.counters.items():
            self.logger.record(f"search/{key}", value)

    def save(self, path: PathLike) -> None:
        """Write the whole search state, RNG included, to ``<path>/agent.json``."""
        path = checkpoint_dir(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "agent": self.agent_name,
            "format_version": FORMAT_VERSION,
            "hyperparameters": {
                "p_template": self.p_template,
                "mode": self.mode,
                "carry_template": self.carry_template,
                "text_every": self.text_every,
            },
            "env_id": self.env_id,
            "layout": self.layout,
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
            "state": {
                "phase": self.phase,
                "incumbent": self.incumbent,
                "current": self.current,
                "best": self.best,
                "last_codes": self.last_codes,
                "pending": self.pending,
                "counters": self.counters,
            },
            # PCG64's state is a dict of (big) ints: exact in JSON, no pickle needed.
            "rng_state": self.np_random.bit_generator.state,
            "num_timesteps": self.num_timesteps,
            "num_episodes": self.num_episodes,
            "seed": self.seed,
        }
        atomic_write_json(path / META_FILE, meta)

    @classmethod
    def load(cls, path: PathLike, env: gym.Env | None = None, **kwargs: Any) -> RandomSearchAgent:
        """Rebuild a saved search, continuing exactly where it stopped."""
        meta = cls._read_meta(path, cls.agent_name)
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{checkpoint_dir(path) / META_FILE} has format version {version!r}; this agent "
                f"reads {FORMAT_VERSION}"
            )
        params = {**meta["hyperparameters"], **kwargs}
        layout = meta.get("layout")
        agent = cls(
            env=None,
            observation_space=space_from_dict(meta["observation_space"]),
            action_space=space_from_dict(meta["action_space"]),
            env_id=meta.get("env_id"),
            action_layout=layout,
            **params,
        )
        if env is not None:
            agent.set_env(env)
        state = meta["state"]
        agent.phase = state["phase"]
        agent.incumbent, agent.current, agent.best = (
            state["incumbent"],
            state["current"],
            state["best"],
        )
        agent.last_codes, agent.pending, agent.counters = (
            state["last_codes"],
            state["pending"],
            state["counters"],
        )
        agent.np_random.bit_generator.state = meta["rng_state"]
        agent.num_timesteps, agent.num_episodes = (
            int(meta["num_timesteps"]),
            int(meta["num_episodes"]),
        )
        agent.seed = meta.get("seed")
        return agent
