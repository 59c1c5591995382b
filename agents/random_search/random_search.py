"""Random-search hill climbing over the teacher's sampling settings (the design's MVP agent).

DataGen mode (action ``MultiDiscrete([3, 3, n_templates])`` or DataGen's continuous ``Box``):
every *proposal* moves temperature and top_p by +-d at random and, with probability
``p_template``, switches to a random other template. If the step's reward (the improvement of
the target metric) is positive the new settings become the incumbent; otherwise the next
action *reverts*: it takes the opposite deltas and the incumbent's template. The revert step's
reward judges nothing (it only undoes), so the step after a revert is a fresh proposal.
Across episodes the search keeps what it found: every episode restarts from the env's initial
temperature / top_p, but the template of the best metric seen so far becomes the new episode's
incumbent (``carry_template=True``), so the first proposal already builds on it. Without that
each episode would start the search over from the env's initial template.

Generic mode (any other action space): sample random actions and keep the best-rewarded one as
the incumbent, which is what ``predict(deterministic=True)`` returns.

The agent does not condition on observations: it is a black-box optimiser of the settings and
its whole state (incumbent, phase, RNG) is plain data stored in one JSON file.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.common.base import META_FILE, BaseAgent, MaybeCallback, checkpoint_dir
from agents.common.checkpoint import PathLike, atomic_write_json, space_from_dict, space_to_dict
from agents.common.parsing import finite_float

FORMAT_VERSION = 1
DOWN, KEEP, UP = 0, 1, 2  # DataGen's delta codes: -d, no change, +d
_EPS = 1e-6  # settings closer than this count as equal (they are floats passed through the env)


def detect_datagen_space(action_space: spaces.Space, env_id: str | None = None) -> bool:
    """Whether the action space has DataGen's (temperature, top_p, template) layout."""
    if isinstance(action_space, spaces.MultiDiscrete):
        nvec = np.asarray(action_space.nvec)
        return nvec.ndim == 1 and len(nvec) == 3 and nvec[0] == 3 and nvec[1] == 3
    if isinstance(action_space, spaces.Box) and env_id is not None and env_id.startswith("DataGen"):
        # A generic Box(-1, 1, (k,)) is indistinguishable from DataGen's continuous mode, so a Box
        # is only read that way when the env says it is DataGen.
        return len(action_space.shape) == 1 and action_space.shape[0] >= 3
    return False


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


class RandomSearchAgent(BaseAgent):
    """Accept/revert random search over DataGen's settings (generic random search otherwise).

    :param env: the env; its action space decides the mode when ``mode="auto"``.
    :param p_template: probability that a proposal also switches the template.
    :param mode: ``"auto"``, ``"datagen"`` or ``"generic"``.
    :param carry_template: start each episode from the best template found so far (DataGen
        mode) rather than from the env's initial one.
    """

    agent_name = "random_search"

    def __init__(
        self,
        env: gym.Env | None,
        p_template: float = 0.3,
        mode: Literal["auto", "datagen", "generic"] = "auto",
        carry_template: bool = True,
        seed: int | None = None,
        tensorboard_log: PathLike | None = None,
        text_every: int = 10,
        verbose: int = 0,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
        env_id: str | None = None,
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
        if mode == "auto":
            mode = "datagen" if detect_datagen_space(self.action_space, env_id) else "generic"
        elif mode == "datagen" and not detect_datagen_space(self.action_space, env_id or "DataGen"):
            raise ValueError(
                f"mode='datagen' needs MultiDiscrete([3, 3, n]) or Box((2 + n,)), "
                f"got {self.action_space}"
            )
        elif mode not in ("datagen", "generic"):
            raise ValueError(f"mode must be 'auto', 'datagen' or 'generic', got {mode!r}")
        self.mode: str = mode
        if mode == "datagen":
            space = self.action_space
            self.n_templates = (
                int(space.nvec[2])
                if isinstance(space, spaces.MultiDiscrete)
                else int(space.shape[0] - 2)
            )
        else:
            self.n_templates = 0
        # All search state is JSON-able plain data (see save()).
        self.phase = "propose"
        self.incumbent: dict[str, Any] = {
            "temperature": None,
            "top_p": None,
            "template_index": None,
        }
        self.current: dict[str, Any] = dict(self.incumbent)
        self.best: dict[str, Any] = {
            "metric": None,
            "reward": None,
            "temperature": None,
            "top_p": None,
            "template_index": None,
            "action": None,
        }
        self.last_codes: list[int] | None = None
        self.counters = {"proposals": 0, "accepted": 0, "reverted": 0}
        self.pending: list[Any] = self._propose()

    # ---------------------------------------------------------------- DataGen search moves
    def _encode(self, codes: list[int], template_index: int) -> np.ndarray:
        """Delta codes + template -> an action of the env's space."""
        space = self.action_space
        if isinstance(space, spaces.MultiDiscrete):
            return (np.asarray([codes[0], codes[1], template_index]) + space.start).astype(
                space.dtype
            )
        # Continuous DataGen: the first two entries scale the deltas, the template is the argmax.
        action = np.full(space.shape, -1.0, dtype=space.dtype)
        action[0], action[1] = codes[0] - 1, codes[1] - 1
        action[2 + template_index] = 1.0
        return np.clip(action, space.low, space.high)

    def _decode(self, action: Any) -> tuple[list[int], int]:
        """Inverse of :meth:`_encode` (used to learn what was done when info is silent)."""
        a = np.asarray(action).reshape(-1)
        if isinstance(self.action_space, spaces.MultiDiscrete):
            a = a.astype(np.int64) - np.asarray(self.action_space.start).reshape(-1)
            return [int(a[0]), int(a[1])], int(a[2])
        codes = [int(np.clip(np.rint(a[0]), -1, 1)) + 1, int(np.clip(np.rint(a[1]), -1, 1)) + 1]
        return codes, int(np.argmax(a[2:]))

    def _reference_template(self) -> int:
        for source in (self.incumbent, self.current):
            if source.get("template_index") is not None:
                return int(source["template_index"])
        return 0  # the env has not told us its template yet; assume its first one

    def _propose(self) -> list[Any]:
        """A fresh random move: +-d on both settings, maybe a different template."""
        if self.mode == "generic":
            return np.asarray(self._sample_action()).tolist()
        codes = [int(self.np_random.choice([DOWN, UP])), int(self.np_random.choice([DOWN, UP]))]
        template = self._reference_template()
        if self.n_templates > 1 and self.np_random.random() < self.p_template:
            others = [i for i in range(self.n_templates) if i != template]
            template = int(self.np_random.choice(others))
        self.last_codes = codes
        return self._encode(codes, template).tolist()

    def _toward(self, target: dict[str, Any], fallback_codes: list[int]) -> list[int]:
        """Delta codes that move the current settings one step toward ``target``.

        Comparing actual values (from ``info``) instead of blindly negating the last move makes
        the revert right when the env clipped the move at a bound.
        """
        codes = []
        for i, key in enumerate(("temperature", "top_p")):
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
        opposite = [2 - c for c in (self.last_codes or [KEEP, KEEP])]
        return self._encode(
            self._toward(self.incumbent, opposite), self._reference_template()
        ).tolist()

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
        template = _int_or_none(info.get("template_index"))
        if template is None and action is not None and self.mode == "datagen":
            template = self._decode(action)[1]
        if template is not None:
            self.current["template_index"] = template
        for key in ("temperature", "top_p"):
            value = finite_float(info.get(key))
            # Without info the absolute value is unknown; forget it rather than keep a stale one.
            self.current[key] = value

    def observe_reset(self, info: dict[str, Any] | None = None) -> None:
        """Start of an episode: the env's initial settings become the reference point."""
        if self.mode == "datagen":
            # The env restarted from its initial settings: forget the previous episode's ones.
            self.current = {"temperature": None, "top_p": None, "template_index": None}
            self._read_settings(dict(info or {}), None)
            self.incumbent = dict(self.current)
            if self.best.get("template_index") is not None and (
                self.carry_template or self.incumbent.get("template_index") is None
            ):
                self.incumbent["template_index"] = self.best["template_index"]
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
                **{k: self.current.get(k) for k in ("temperature", "top_p", "template_index")},
            )
        if self.phase == "propose":
            self.counters["proposals"] += 1
            if reward > 0 and not info.get("all_filtered", False):
                self.counters["accepted"] += 1
                self.incumbent = dict(self.current)
                if self.incumbent["template_index"] is None:
                    self.incumbent["template_index"] = self._decode(action)[1]
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
        target = self.best if self.best["template_index"] is not None else self.incumbent
        template = target.get("template_index")
        template = self._reference_template() if template is None else int(template)
        return self._encode(self._toward(target, [KEEP, KEEP]), template).tolist()

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

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        tb_log_name: str = "run",
        progress_bar: bool = False,
        reset_num_timesteps: bool = True,
    ) -> RandomSearchAgent:
        """Run the search for ``total_timesteps`` env steps (it has no rollouts: the callback
        gets ``on_step`` after every step, no ``on_rollout_start`` / ``on_rollout_end``)."""
        fresh_episode = reset_num_timesteps or self._last_obs is None
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, tb_log_name, progress_bar, reset_num_timesteps
        )
        assert self.env is not None
        if fresh_episode:
            self.observe_reset(self._last_info)
        try:
            callback.on_training_start(locals(), globals())
            while self.num_timesteps < total_timesteps:
                action = np.asarray(self.pending, dtype=self.action_space.dtype)
                obs, reward, terminated, truncated, info = self.env.step(action)
                self.observe(action, float(reward), info)
                keep_going = self._after_env_step(
                    action, float(reward), bool(terminated), bool(truncated), info
                )
                if terminated or truncated:
                    _, reset_info = self._reset_env()
                    self.observe_reset(reset_info)
                else:
                    self._last_obs, self._last_info = obs, dict(info)
                self._dump_logs()
                if not keep_going:
                    break
            for key, value in self.counters.items():
                self.logger.record(f"search/{key}", value)
            callback.on_training_end()
        finally:
            self._teardown_learn()
        return self

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
        params = {**meta["hyperparameters"], **kwargs}
        agent = cls(
            env=None,
            observation_space=space_from_dict(meta["observation_space"]),
            action_space=space_from_dict(meta["action_space"]),
            env_id=meta.get("env_id"),
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
