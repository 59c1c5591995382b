"""Multi-armed bandits over a discrete action space: the arms, statistics, learn loop and I/O.

A bandit treats each *arm* - one fixed action - as a slot machine whose payout is the env's step
reward, and ignores observations. Where one setting dominates (on DataGen-v0 the template
explains most of the spread) that is the natural rival of an RL policy: it spends the budget on
finding the best arm and nothing on learning state-dependence. Subclasses only implement the
selection rule (:meth:`BanditAgent._select_arm`) and, if they keep more than the per-arm
statistics (EXP3's weights), :meth:`BanditAgent.observe` and the ``_algo_state`` pair.

Arms
----
* ``Discrete(n)``: the ``n`` actions.
* ``MultiDiscrete``: the joint product of the dimensions in ``arm_dims``, every other dimension
  held at its ``fixed_action`` value. Arm ``i`` is the ``i``-th combination in C order (the last
  arm dimension varies fastest).

Which dimensions make the arms, by default, is read from two optional attributes of
``env.unwrapped`` (used only when its action space is the agent's, i.e. no wrapper changed it);
nothing env-specific is hard-coded here:

* ``action_dim_names: Sequence[str]`` - one name per ``MultiDiscrete`` dimension. ``arm_dims``
  may then name dimensions, and arms are labelled ``"template=3"`` in :meth:`arm_stats`.
* ``action_dim_keep: Sequence[int | None]`` - per dimension, the value that leaves a *relative*
  setting unchanged ("keep" of a -/keep/+ delta), or ``None`` for a dimension that picks an
  absolute setting. The default arms are the absolute dimensions, the delta ones held at "keep",
  so an arm is a fixed setting. A delta arm would mean "move", whose reward depends on where the
  episode has drifted to, which breaks the bandit's premise of a fixed payout per arm.

Without ``action_dim_keep`` the arms are all dimensions. For DataGen-v0 (``MultiDiscrete([3, 3,
n_templates])``, temperature / top_p deltas and the template) the env is expected to declare
``action_dim_names = ("temperature", "top_p", "template")`` and ``action_dim_keep = (1, 1,
None)``, so the arms are the templates (times the focus values when that dimension exists).
``fixed_action`` defaults to the declared keep values, else to each dimension's middle value
(which is "keep" for a symmetric -/keep/+ dimension).

Statistics (pull count, mean and sum of squared deviations per arm, the observed reward range)
persist across episodes and ``learn`` calls: the bandit learns over the whole budget.
``predict(deterministic=True)`` returns the arm with the highest empirical mean;
``predict(deterministic=False)`` applies the algorithm's selection rule (which may consume the
agent's RNG). Everything, RNG state included, is saved as one JSON file.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.common.base import META_FILE, BaseAgent, checkpoint_dir
from agents.common.checkpoint import PathLike, atomic_write_json, space_from_dict, space_to_dict

FORMAT_VERSION = 1


def _env_attribute(env: gym.Env | None, name: str, n_dims: int) -> list[Any] | None:
    """``env.unwrapped.<name>`` if it describes the agent's own action space, else None."""
    if env is None:
        return None
    base = env.unwrapped
    value = getattr(base, name, None)
    # The attribute describes the unwrapped env's actions; a wrapper that changed the action
    # space (e.g. flattening to Discrete) makes it meaningless for this agent.
    if value is None or not (base.action_space == env.action_space):
        return None
    value = list(value)
    if len(value) != n_dims:
        raise ValueError(f"env.unwrapped.{name} has {len(value)} entries for {n_dims} dimensions")
    return value


def checked_reward_range(reward_range: Sequence[float]) -> tuple[float, float]:
    """``(low, high)`` as floats, refusing an empty range."""
    low, high = (float(x) for x in reward_range)
    if not high > low:
        raise ValueError(f"reward_range must be (low, high) with high > low, got {reward_range}")
    return low, high


class BanditAgent(BaseAgent):
    """Base of the bandit agents: arms, per-arm statistics, learn / predict / save / load.

    :param env: the env (``Discrete`` or ``MultiDiscrete`` actions).
    :param arm_dims: ``MultiDiscrete`` dimensions (indices, or names from ``action_dim_names``)
        whose joint values are the arms; default: see the module docstring.
    :param fixed_action: a full action whose entries outside ``arm_dims`` are held fixed (the
        entries inside are ignored); default: the env's keep values, else the middle values.
    :param dim_names: names of the dimensions, overriding ``env.unwrapped.action_dim_names``.
    """

    agent_name = "bandit"

    def __init__(
        self,
        env: gym.Env | None,
        arm_dims: Sequence[int | str] | None = None,
        fixed_action: Sequence[int] | None = None,
        dim_names: Sequence[str] | None = None,
        seed: int | None = None,
        tensorboard_log: PathLike | None = None,
        text_every: int = 10,
        verbose: int = 0,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
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
        self._build_arms(env, arm_dims, fixed_action, dim_names)
        k = self.n_arms
        self.counts = np.zeros(k, dtype=np.int64)
        self.means = np.zeros(k, dtype=np.float64)
        self.m2 = np.zeros(k, dtype=np.float64)  # sum of squared deviations (Welford)
        self.reward_min: float | None = None
        self.reward_max: float | None = None
        # Set by subclasses that rescale rewards (UCB1, EXP3): a declared (low, high), else the
        # observed min / max.
        self.reward_range: tuple[float, float] | None = None

    # ------------------------------------------------------------------ arms
    def _build_arms(
        self,
        env: gym.Env | None,
        arm_dims: Sequence[int | str] | None,
        fixed_action: Sequence[int] | None,
        dim_names: Sequence[str] | None,
    ) -> None:
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            if arm_dims is not None or fixed_action is not None:
                raise ValueError("arm_dims / fixed_action apply to MultiDiscrete spaces only")
            self.arm_dims: list[int] | None = None
            self.fixed_action: list[int] | None = None
            self.dim_names: list[str] | None = None
            self.n_arms = int(space.n)
            return
        if not isinstance(space, spaces.MultiDiscrete) or np.asarray(space.nvec).ndim != 1:
            raise TypeError(f"bandit agents need Discrete or 1-d MultiDiscrete actions: {space}")
        nvec = np.asarray(space.nvec, dtype=np.int64)
        start = np.asarray(space.start, dtype=np.int64)
        n_dims = len(nvec)
        names = list(dim_names) if dim_names is not None else None
        names = names or _env_attribute(env, "action_dim_names", n_dims)
        if names is not None and len(names) != n_dims:
            raise ValueError(f"dim_names has {len(names)} entries for {n_dims} dimensions")
        keep = _env_attribute(env, "action_dim_keep", n_dims)

        if arm_dims is None:
            dims = [d for d in range(n_dims) if keep is None or keep[d] is None]
        else:
            dims = [self._dim_index(d, names, n_dims) for d in arm_dims]
        if not dims:
            raise ValueError(
                "no arm dimensions: arm_dims is empty, or the env's "
                "action_dim_keep marks every dimension as a delta"
            )
        if len(set(dims)) != len(dims):
            raise ValueError(f"arm_dims must name distinct dimensions, got {arm_dims!r}")
        if fixed_action is None:
            fixed = [
                int(keep[d])
                if keep is not None and keep[d] is not None
                else int(start[d] + (nvec[d] - 1) // 2)
                for d in range(n_dims)
            ]
        else:
            fixed = [int(v) for v in fixed_action]
            if len(fixed) != n_dims:
                raise ValueError(f"fixed_action has {len(fixed)} entries for {n_dims} dimensions")
        for d in range(n_dims):
            if d not in dims and not start[d] <= fixed[d] < start[d] + nvec[d]:
                raise ValueError(f"fixed_action[{d}]={fixed[d]} is outside {space}")
        self.arm_dims = sorted(dims)
        self.fixed_action = fixed
        self.dim_names = names
        self.n_arms = int(np.prod(nvec[self.arm_dims]))

    @staticmethod
    def _dim_index(dim: int | str, names: list[str] | None, n_dims: int) -> int:
        if isinstance(dim, str):
            if names is None or dim not in names:
                raise ValueError(f"unknown action dimension {dim!r}; names: {names}")
            return names.index(dim)
        if not 0 <= int(dim) < n_dims:
            raise ValueError(f"arm dimension {dim} is outside 0..{n_dims - 1}")
        return int(dim)

    def action_of(self, arm: int) -> np.ndarray:
        """The env action that pulls ``arm``."""
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            return np.asarray(space.start + int(arm), dtype=np.int64)
        assert self.arm_dims is not None and self.fixed_action is not None
        action = np.asarray(self.fixed_action, dtype=np.int64)
        sizes = np.asarray(space.nvec)[self.arm_dims]
        values = np.unravel_index(int(arm), tuple(int(s) for s in sizes))
        for d, v in zip(self.arm_dims, values):
            action[d] = int(np.asarray(space.start)[d]) + int(v)
        return action.astype(space.dtype)

    def arm_label(self, arm: int) -> str:
        """A readable name of ``arm``: ``"template=3"`` with dimension names, ``"2=3"`` without."""
        if self.arm_dims is None:
            return str(int(self.action_of(arm)))
        action = self.action_of(arm)
        names = self.dim_names or [str(d) for d in range(len(action))]
        return ",".join(f"{names[d]}={int(action[d])}" for d in self.arm_dims)

    def arm_stats(self) -> list[dict[str, Any]]:
        """One row per arm: label, action, pulls and mean reward (None if never pulled)."""
        return [
            {
                "arm": i,
                "label": self.arm_label(i),
                "action": self.action_of(i).tolist(),
                "pulls": int(self.counts[i]),
                "mean_reward": float(self.means[i]) if self.counts[i] else None,
            }
            for i in range(self.n_arms)
        ]

    # ------------------------------------------------------------------ statistics
    def observe(self, arm: int, reward: float) -> None:
        """Add one pull's reward to ``arm``'s statistics."""
        reward = float(reward)
        if not math.isfinite(reward):
            return  # a nan/inf reward would poison the mean forever; the pull teaches nothing
        n = self.counts[arm] + 1
        delta = reward - self.means[arm]
        self.counts[arm] = n
        self.means[arm] += delta / n
        self.m2[arm] += delta * (reward - self.means[arm])
        self.reward_min = reward if self.reward_min is None else min(self.reward_min, reward)
        self.reward_max = reward if self.reward_max is None else max(self.reward_max, reward)

    def pooled_mean_var(self) -> tuple[float, float]:
        """Mean and variance of every reward observed so far (all arms together)."""
        total = int(self.counts.sum())
        if total == 0:
            return 0.0, 0.0
        mean = float(np.dot(self.counts, self.means) / total)
        ss = float(self.m2.sum() + np.dot(self.counts, (self.means - mean) ** 2))
        return mean, ss / total

    def _range(self) -> tuple[float, float]:
        if self.reward_range is not None:
            return self.reward_range
        if self.reward_min is None or self.reward_max is None:
            return 0.0, 0.0
        return self.reward_min, self.reward_max

    def reward_span(self) -> float:
        """Width of the reward range used to rescale rewards to [0, 1] (0 before any spread)."""
        low, high = self._range()
        return high - low

    def rescale(self, reward: float) -> float:
        """``reward`` mapped to [0, 1] by the reward range (0.5 while the range is empty)."""
        low, high = self._range()
        if high <= low:
            return 0.5
        return float(np.clip((reward - low) / (high - low), 0.0, 1.0))

    def best_arm(self) -> int:
        """The arm with the highest mean reward (ties: more pulls, then lower index; 0 if none)."""
        pulled = self.counts > 0
        if not pulled.any():
            return 0
        means = np.where(pulled, self.means, -np.inf)
        tied = np.flatnonzero(means == means.max())
        return int(tied[np.argmax(self.counts[tied])])

    # ------------------------------------------------------------------ selection helpers
    def _untried_arm(self) -> int | None:
        """A random never-pulled arm, or None: UCB1 and Thompson pull every arm once first.

        Random rather than index order because the reward of a pull also depends on its
        position in the episode (on DataGen later steps add less); a fixed order would bias
        the first estimate of the same arms every time.
        """
        untried = np.flatnonzero(self.counts == 0)
        return int(self.np_random.choice(untried)) if untried.size else None

    def _argmax_random_tie(self, values: np.ndarray) -> int:
        tied = np.flatnonzero(values == values.max())
        return int(tied[0] if tied.size == 1 else self.np_random.choice(tied))

    @abc.abstractmethod
    def _select_arm(self) -> int:
        """The algorithm's choice of the next arm to pull (may draw from ``self.np_random``)."""

    def _hyperparameters(self) -> dict[str, Any]:
        """Constructor arguments specific to the algorithm (saved, passed back on load)."""
        return {}

    def _algo_state(self) -> dict[str, Any]:
        """State beyond the per-arm statistics (EXP3's weights)."""
        return {}

    def _set_algo_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`_algo_state`."""

    # ------------------------------------------------------------------ API
    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """The best arm's action (``deterministic=True``) or the selection rule's choice."""
        arm = self.best_arm() if deterministic else self._select_arm()
        action = self.action_of(arm)
        return self._per_observation(action, observation), state

    # ------------------------------------------------------------------ the learn loop
    # (BaseAgent.learn): every pull is a step for the callback (``locals_["arm"]`` names the
    # arm); a bandit has no rollouts, so no ``on_rollout_start`` / ``on_rollout_end``.
    # Statistics carry over between learn calls.
    def _act(self) -> tuple[np.ndarray, dict[str, Any] | None]:
        self._arm = self._select_arm()
        return self.action_of(self._arm), {"arm": self._arm}

    def _record(self, action: Any, reward: float, done: bool, info: dict[str, Any]) -> None:
        self.observe(self._arm, reward)

    def _log_step(self) -> None:
        best = self.best_arm()
        self._log_step_scalars(
            {
                "bandit/arm": self._arm,
                "bandit/best_arm": best,
                "bandit/best_mean_reward": float(self.means[best]),
            }
        )

    def save(self, path: PathLike) -> None:
        """Write the arms, statistics and RNG state to ``<path>/agent.json``."""
        path = checkpoint_dir(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "agent": self.agent_name,
            "format_version": FORMAT_VERSION,
            "hyperparameters": {**self._hyperparameters(), "text_every": self.text_every},
            "arms": {
                "arm_dims": self.arm_dims,
                "fixed_action": self.fixed_action,
                "dim_names": self.dim_names,
                "n_arms": self.n_arms,
            },
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
            "state": {
                "counts": self.counts,
                "means": self.means,
                "m2": self.m2,
                "reward_min": self.reward_min,
                "reward_max": self.reward_max,
                **self._algo_state(),
            },
            # PCG64's state is a dict of (big) ints: exact in JSON, no pickle needed.
            "rng_state": self.np_random.bit_generator.state,
            "num_timesteps": self.num_timesteps,
            "num_episodes": self.num_episodes,
            "seed": self.seed,
        }
        atomic_write_json(path / META_FILE, meta)

    @classmethod
    def load(cls, path: PathLike, env: gym.Env | None = None, **kwargs: Any) -> BanditAgent:
        """Rebuild a saved bandit; it continues exactly where it stopped (same RNG stream)."""
        meta = cls._read_meta(path, cls.agent_name)
        arms = meta["arms"]
        agent = cls(
            env=None,
            observation_space=space_from_dict(meta["observation_space"]),
            action_space=space_from_dict(meta["action_space"]),
            arm_dims=arms["arm_dims"],
            fixed_action=arms["fixed_action"],
            dim_names=arms["dim_names"],
            **{**meta["hyperparameters"], **kwargs},
        )
        if agent.n_arms != arms["n_arms"]:
            raise ValueError(f"{path}: {arms['n_arms']} arms saved, {agent.n_arms} rebuilt")
        if env is not None:
            agent.set_env(env)
        state = meta["state"]
        agent.counts = np.asarray(state["counts"], dtype=np.int64)
        agent.means = np.asarray(state["means"], dtype=np.float64)
        agent.m2 = np.asarray(state["m2"], dtype=np.float64)
        agent.reward_min, agent.reward_max = state["reward_min"], state["reward_max"]
        agent._set_algo_state(state)
        agent.np_random.bit_generator.state = meta["rng_state"]
        agent.num_timesteps = int(meta["num_timesteps"])
        agent.num_episodes = int(meta["num_episodes"])
        agent.seed = meta.get("seed")
        return agent
