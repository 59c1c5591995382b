"""Tests of the bandit agents (UCB1, Thompson sampling, EXP3) on known synthetic bandits.

Everything but the last test runs on a tiny Gaussian bandit env (well under a second each); the
last one is a short integration run on the real DataGen-v0.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from test_agents import _real_env_available, read_events  # envs_tests/ is on sys.path

from agents import EXP3Agent, ThompsonAgent, UCBAgent, list_agents, load_agent, make_agent
from agents.bandit import BanditAgent
from agents.common.checkpoint import read_json

BANDITS = ["ucb", "thompson", "exp3"]
KEEP = 1


class GaussianBandit(gym.Env):
    """Reward ~ Normal(means[arm], sd) with 5-step episodes and a constant observation.

    ``MultiDiscrete([3, 3, n, ...])`` mimics DataGen's layout: two -/keep/+ delta dimensions,
    then the arm dimensions; the arm is the index of the last dimensions in C order, and the
    deltas must be held at keep (a bandit arm is a fixed setting). ``declare`` sets the optional
    ``action_dim_names`` / ``action_dim_keep`` attributes the bandits read.
    """

    def __init__(
        self,
        action_space: spaces.Space,
        means: list[float],
        sd: float,
        declare: bool = True,
        horizon: int = 5,
    ) -> None:
        self.action_space = action_space
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.means = np.asarray(means, dtype=np.float64)
        self.sd = sd
        self.horizon = horizon
        self.pulls: list[int] = []
        if declare and isinstance(action_space, spaces.MultiDiscrete):
            n_arm_dims = len(action_space.nvec) - 2
            self.action_dim_names = ("temperature", "top_p", "template", "focus")[: 2 + n_arm_dims]
            self.action_dim_keep = (KEEP, KEEP) + (None,) * n_arm_dims

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def arm_of(self, action: Any) -> int:
        if isinstance(self.action_space, spaces.Discrete):
            return int(action) - int(self.action_space.start)
        a = np.asarray(action)
        assert a[0] == KEEP and a[1] == KEEP, f"a delta was moved: {a}"
        return int(np.ravel_multi_index(tuple(a[2:]), tuple(self.action_space.nvec[2:])))

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        assert self.action_space.contains(action)
        arm = self.arm_of(action)
        self.pulls.append(arm)
        self.t += 1
        reward = float(self.np_random.normal(self.means[arm], self.sd))
        return np.zeros(2, np.float32), reward, False, self.t >= self.horizon, {}


def datagen_like_bandit(**kwargs: Any) -> GaussianBandit:
    # DataGen's scale: rewards are metric improvements of a few hundredths, noise as large.
    means = [0.0, 0.02, 0.06, 0.03, 0.01]
    return GaussianBandit(spaces.MultiDiscrete([3, 3, 5]), means, 0.02, **kwargs)


# ----------------------------------------------------------------------------- learning
@pytest.mark.parametrize("name", BANDITS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bandit_finds_best_arm_multidiscrete(name: str, seed: int) -> None:
    env = datagen_like_bandit()
    agent = make_agent(name, env, seed=seed)
    assert isinstance(agent, BanditAgent) and agent.n_arms == 5  # the templates only
    agent.learn(600)
    pulls = np.bincount(env.pulls, minlength=5)
    assert int(np.argmax(pulls)) == 2, pulls
    assert np.asarray(agent.predict(None, deterministic=True)[0]).tolist() == [KEEP, KEEP, 2]
    assert agent.arm_stats()[2]["label"] == "template=2" and agent.counts.sum() == 600


@pytest.mark.parametrize("name", BANDITS)
@pytest.mark.parametrize("seed", [0, 1])
def test_bandit_finds_best_arm_discrete(name: str, seed: int) -> None:
    # A different reward scale and a shifted Discrete space: nothing may assume [0, 1] or 0-based.
    env = GaussianBandit(spaces.Discrete(4, start=3), [1.0, 3.0, 2.0, 0.0], 0.5)
    agent = make_agent(name, env, seed=seed).learn(400)
    pulls = np.bincount(env.pulls, minlength=4)
    assert int(np.argmax(pulls)) == 1, pulls
    action, _ = agent.predict(np.zeros(2, np.float32), deterministic=True)
    assert int(action) == 4
    batch, _ = agent.predict(np.zeros((3, 2), np.float32), deterministic=True)
    assert batch.tolist() == [4, 4, 4]


def test_thompson_concentrates_on_the_best_arm() -> None:
    # Sharper than "pulled most": Thompson spends nearly all of a long budget on the best arm.
    env = datagen_like_bandit()
    ThompsonAgent(env, seed=0).learn(600)
    assert np.bincount(env.pulls, minlength=5)[2] > 0.8 * 600


def test_statistics_persist_across_episodes_and_learn_calls() -> None:
    env = datagen_like_bandit()
    agent = UCBAgent(env, seed=0).learn(12)
    agent.learn(8)  # reset_num_timesteps=True restarts the step counter, not the statistics
    assert agent.counts.sum() == 20 and agent.num_timesteps == 8 and len(env.pulls) == 20
    assert agent.counts.min() >= 1  # the initial round covered every arm


# ----------------------------------------------------------------------------- the rules
def test_ucb_bound_is_ucb1_on_rescaled_rewards() -> None:
    agent = UCBAgent(datagen_like_bandit(), c=0.5)
    assert agent._select_arm() in range(5)
    for arm, reward in [(0, 0.0), (1, 0.2), (1, 0.4), (2, 0.1)]:
        agent.observe(arm, reward)
    span, t = 0.4, 4  # observed min / max
    bounds = agent.upper_bounds()
    assert bounds[1] == pytest.approx(0.3 + 0.5 * span * np.sqrt(2 * np.log(t) / 2))
    assert np.isinf(bounds[3]) and agent._select_arm() in (3, 4)  # untried arms come first
    fixed = UCBAgent(datagen_like_bandit(), c=1.0, reward_range=(-1.0, 1.0))
    fixed.observe(0, 0.0)
    assert fixed.reward_span() == 2.0 and fixed.rescale(0.5) == 0.75


def test_exp3_probabilities_and_update() -> None:
    agent = EXP3Agent(datagen_like_bandit(), gamma=0.2, reward_range=(0.0, 1.0))
    p = agent.probabilities()
    assert p.sum() == pytest.approx(1.0) and np.allclose(p, 0.2)
    agent.observe(3, 1.0)  # x = 1, drawn with p = 0.2: log w += gamma * x / (p K) = 0.2
    assert agent.log_weights[3] == pytest.approx(0.2) and agent.log_weights[:3].sum() == 0
    p = agent.probabilities()
    assert p.argmax() == 3 and p.min() >= 0.2 / 5


def test_thompson_draws_shrink_with_pulls() -> None:
    agent = ThompsonAgent(datagen_like_bandit(), seed=0)
    rng = np.random.default_rng(0)
    for arm in range(5):
        for _ in range(1 if arm else 200):
            agent.observe(arm, float(rng.normal(0.5, 0.1)))
    draws = np.stack([agent.sample_means() for _ in range(200)])
    # arm 0 has 200 pulls: its draws sit tightly at the mean; arm 1 has one: they spread wide
    assert draws[:, 0].std() < 0.02 < draws[:, 1].std()
    assert abs(draws[:, 0].mean() - agent.means[0]) < 0.01


def test_bad_rewards_are_skipped() -> None:
    agent = EXP3Agent(datagen_like_bandit())
    agent.observe(1, float("nan"))
    assert agent.counts.sum() == 0 and np.all(agent.log_weights == 0)


# ----------------------------------------------------------------------------- arms
def test_arms_from_env_attributes_focus_dimension() -> None:
    env = GaussianBandit(spaces.MultiDiscrete([3, 3, 4, 3]), list(range(12)), 0.1)
    agent = UCBAgent(env)
    assert agent.arm_dims == [2, 3] and agent.n_arms == 12 and agent.fixed_action[:2] == [1, 1]
    assert agent.action_of(7).tolist() == [1, 1, 2, 1]  # C order: focus varies fastest
    assert agent.arm_label(7) == "template=2,focus=1"
    only_template = UCBAgent(env, arm_dims=["template"], fixed_action=[1, 1, 0, 2])
    assert only_template.n_arms == 4 and only_template.action_of(3).tolist() == [1, 1, 3, 2]


def test_arms_without_env_attributes() -> None:
    env = datagen_like_bandit(declare=False)
    agent = ThompsonAgent(env)
    assert agent.arm_dims == [0, 1, 2] and agent.n_arms == 45  # all dimensions
    explicit = ThompsonAgent(env, arm_dims=[2])
    assert explicit.n_arms == 5 and explicit.action_of(4).tolist() == [1, 1, 4]  # middle = keep
    assert explicit.arm_label(4) == "2=4"
    with pytest.raises(ValueError, match="unknown action dimension"):
        ThompsonAgent(env, arm_dims=["template"])
    with pytest.raises(ValueError, match="outside"):
        ThompsonAgent(env, arm_dims=[2], fixed_action=[3, 1, 0])


def test_wrapped_action_space_ignores_env_attributes() -> None:
    from agents.common.wrappers import MultiDiscreteToDiscrete

    flat = MultiDiscreteToDiscrete(datagen_like_bandit())
    agent = EXP3Agent(flat)  # the attributes describe the MultiDiscrete, not this Discrete
    assert agent.n_arms == 45 and agent.arm_dims is None
    with pytest.raises(TypeError, match="Discrete or 1-d MultiDiscrete"):
        UCBAgent(gym.make("Pendulum-v1"))
    with pytest.raises(ValueError, match="MultiDiscrete spaces only"):
        UCBAgent(flat, arm_dims=[0])


# ----------------------------------------------------------------------------- seeding, I/O
@pytest.mark.parametrize("name", BANDITS)
def test_seeding_makes_runs_repeatable(name: str) -> None:
    runs = []
    for seed in (3, 3, 4):
        env = datagen_like_bandit()
        make_agent(name, env, seed=seed).learn(60)
        runs.append(env.pulls)
    assert runs[0] == runs[1] and runs[0] != runs[2]


@pytest.mark.parametrize("name", BANDITS)
def test_save_load_round_trip_without_pickle(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = datagen_like_bandit()
    agent = make_agent(name, env, seed=0, text_every=3).learn(40)
    agent.save(tmp_path / name)
    assert [p.name for p in (tmp_path / name).iterdir()] == ["agent.json"]
    meta = read_json(tmp_path / name / "agent.json")
    assert meta["agent"] == name and sum(meta["state"]["counts"]) == 40

    def no_pickle(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a bandit checkpoint must load without unpickling")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    loaded = load_agent(tmp_path / name)  # predict-only, no env
    monkeypatch.undo()
    assert type(loaded) is type(agent) and loaded.num_timesteps == 40
    for attr in ("counts", "means", "m2"):
        assert np.array_equal(getattr(agent, attr), getattr(loaded, attr)), attr
    assert (loaded.reward_min, loaded.reward_max) == (agent.reward_min, agent.reward_max)
    if isinstance(agent, EXP3Agent):
        assert np.array_equal(agent.log_weights, loaded.log_weights)
    assert loaded.text_every == 3 and loaded.arm_dims == agent.arm_dims
    assert loaded.dim_names == agent.dim_names
    # same statistics and RNG state: the same choices, and the same future once re-attached
    assert np.array_equal(agent.predict(None, True)[0], loaded.predict(None, True)[0])
    for _ in range(5):
        assert np.array_equal(agent.predict(None)[0], loaded.predict(None)[0])
    env_a, env_b = datagen_like_bandit(), datagen_like_bandit()
    agent.set_env(env_a)
    loaded.set_env(env_b)
    agent.set_random_seed(9)
    loaded.set_random_seed(9)
    agent.learn(20)
    loaded.learn(20)
    assert env_a.pulls == env_b.pulls and np.array_equal(agent.means, loaded.means)


def test_load_rejects_another_agent(tmp_path: Path) -> None:
    UCBAgent(datagen_like_bandit(), seed=0).learn(5).save(tmp_path / "u")
    with pytest.raises(ValueError, match="not 'exp3'"):
        EXP3Agent.load(tmp_path / "u")


def test_names_and_callback() -> None:
    assert set(BANDITS) <= set(list_agents())
    seen: list[int] = []

    def stop_after_four(locals_: dict, globals_: dict) -> bool:
        seen.append(locals_["arm"])
        return locals_["num_timesteps"] < 4

    agent = make_agent("UCB", datagen_like_bandit(), seed=0).learn(50, callback=stop_after_four)
    assert agent.num_timesteps == 4 and len(set(seen)) == 4  # initial round: distinct arms


# ----------------------------------------------------------------------------- the real env
@pytest.mark.skipif(not _real_env_available(), reason="DataGen-v0 or its embedded teacher absent")
def test_bandits_on_real_datagen_env(tmp_path: Path) -> None:
    env = gym.make("DataGen-v0", batch_size=8, num_iterations=2)
    base = env.unwrapped
    for name in BANDITS:  # one env for all three: its baseline is measured once
        agent = make_agent(name, env, seed=0, tensorboard_log=tmp_path, text_every=1)
        if getattr(base, "action_dim_keep", None) is not None:
            free = [i for i, k in enumerate(base.action_dim_keep) if k is None]
            assert agent.arm_dims == free
        agent.learn(2, tb_log_name=name)
        tags = set(read_events(tmp_path / f"{name}_1").Tags()["scalars"])
        assert {"datagen/metric", "datagen/template", "rollout/ep_rew_mean", "bandit/arm"} <= tags
        action, _ = agent.predict(env.reset(seed=1)[0], deterministic=True)
        assert env.action_space.contains(np.asarray(action, dtype=env.action_space.dtype))
