"""Tests of the agents package on tiny envs (no DataGen env, no LM needed; < 60 s on 2 cores).

``FakeDataGenEnv`` mimics DataGen-v0's spaces and ``info`` keys with a closed-form metric, so
the DataGen-specific code paths (random-search accept/revert, TensorBoard tags) are exercised
without the real env.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents import (
    EXP3Agent,
    RandomSearchAgent,
    ReinforceAgent,
    SB3Agent,
    ThompsonAgent,
    UCBAgent,
    list_agents,
    load_agent,
    make_agent,
)
from agents.common.checkpoint import read_json
from agents.common.tensorboard import examples_markdown, info_log_spec, info_scalars
from agents.common.wrappers import MultiDiscreteToDiscrete
from datagen_gym.envs.datagen_env import INFO_LOG

torch.set_num_threads(1)  # the test machine has 2 cores and shares them with a training job

N_TEMPLATES = 10


# ----------------------------------------------------------------------------- test envs
class BanditEnv(gym.Env):
    """One-step episodes, constant observation, reward = ``reward_fn(action)``."""

    def __init__(self, action_space: spaces.Space, reward_fn: Any, horizon: int = 1) -> None:
        self.action_space = action_space
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.reward_fn = reward_fn
        self.horizon = horizon
        self.t = 0

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        assert self.action_space.contains(
            np.asarray(action, dtype=self.action_space.dtype)
            if not isinstance(self.action_space, spaces.Discrete)
            else int(action)
        )
        self.t += 1
        return (
            np.zeros(2, np.float32),
            float(self.reward_fn(action)),
            False,
            self.t >= self.horizon,
            {},
        )


class FakeDataGenEnv(gym.Env):
    """DataGen-v0 look-alike: same action spaces, info keys and TensorBoard declaration, a
    closed-form metric.

    ``metric = 1 - (T - 1)^2 - (top_p - 0.8)^2 - 0.05 [template != 3]``; the reward is the
    metric's improvement over the previous step, unless ``reward_script`` dictates rewards.
    """

    metadata = {"render_modes": [], "info_log": INFO_LOG}

    def __init__(
        self,
        action_mode: str = "discrete",
        num_iterations: int = 5,
        reward_script: list[float] | None = None,
        delta: float = 0.1,
    ) -> None:
        self.action_mode = action_mode
        if action_mode == "discrete":
            self.action_space = spaces.MultiDiscrete([3, 3, N_TEMPLATES])
        else:
            self.action_space = spaces.Box(-1.0, 1.0, (2 + N_TEMPLATES,), np.float32)
        # DataGenEnv's action layout declaration (read by the random search and the bandits).
        self.action_dim_names = ("temperature", "top_p", "template")
        self.action_dim_keep = (1, 1, None)
        self.action_dim_info_keys = ("temperature", "top_p", "template_index")
        self.observation_space = spaces.Box(0.0, 1.0, (4,), np.float32)
        self.num_iterations = num_iterations
        self.reward_script = list(reward_script or [])
        self.delta = delta
        self.actions: list[np.ndarray] = []
        self.total_steps = 0

    def action_masks(self) -> np.ndarray:
        """sb3-contrib's convention: the last template is never allowed."""
        nvec = [3, 3, N_TEMPLATES]
        mask = np.ones(sum(nvec), dtype=bool)
        mask[-1] = False
        return mask

    def _metric(self) -> float:
        return (
            1.0
            - (self.temperature - 1.0) ** 2
            - (self.top_p - 0.8) ** 2
            - 0.05 * (self.template != 3)
        )

    def _obs(self) -> np.ndarray:
        return np.array(
            [
                self.temperature / 2.0,
                self.top_p,
                max(self._metric(), 0.0),
                self.t / self.num_iterations,
            ],
            dtype=np.float32,
        )

    def _settings(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "template_index": self.template,
            "template": f"template_{self.template}",
        }

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t, self.temperature, self.top_p, self.template = 0, 0.7, 0.9, 0
        self.prev_metric = self.best_metric = self.baseline = self._metric()
        return self._obs(), self._settings()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = np.asarray(action)
        self.actions.append(a.copy())
        if self.action_mode == "discrete":
            dt, dp, template = int(a[0]) - 1, int(a[1]) - 1, int(a[2])
        else:
            dt, dp, template = (
                float(np.clip(a[0], -1, 1)),
                float(np.clip(a[1], -1, 1)),
                int(np.argmax(a[2:])),
            )
        self.temperature = float(np.clip(round(self.temperature + dt * self.delta, 6), 0.1, 2.0))
        self.top_p = float(np.clip(round(self.top_p + dp * self.delta, 6), 0.1, 1.0))
        self.template = template
        self.t += 1
        metric = self._metric()
        reward = self.reward_script.pop(0) if self.reward_script else metric - self.prev_metric
        self.prev_metric = metric
        self.best_metric = max(self.best_metric, metric)
        self.total_steps += 1
        info = {
            **self._settings(),
            "metric": metric,
            "reward_metric": "fake_score",
            "baseline_metric": self.baseline,
            "best_metric": self.best_metric,
            "method": "self_instruct" if template < 4 else "evol_instruct",
            "num_kept": 7,
            "kept_fraction": 0.7,
            "unique_ratio": 0.9,
            "correctness": float("nan") if self.total_steps % 2 else 0.8,  # nan must be skipped
            "all_filtered": False,
            "time_generation_s": 0.01,
            "time_target_s": 0.02,
            "examples": [
                {"instruction": f"Task {i} | with pipe", "input": "", "output": f"answer\n{i}"}
                for i in range(3)
            ],
        }
        return self._obs(), float(reward), False, self.t >= self.num_iterations, info


def md_bandit() -> BanditEnv:
    best = np.array([2, 0, 3])
    return BanditEnv(
        spaces.MultiDiscrete([3, 3, 4]), lambda a: float(np.mean(np.asarray(a) == best))
    )


OBS0 = np.zeros(2, np.float32)


# ----------------------------------------------------------------------------- REINFORCE
def test_reinforce_learns_multidiscrete_bandit() -> None:
    env = md_bandit()
    agent = ReinforceAgent(env, seed=0, n_episodes=8, learning_rate=1e-2)
    best = np.array([2, 0, 3])
    p_before = math.exp(agent.action_log_prob(OBS0, best))
    assert p_before == pytest.approx(1 / 36, rel=0.05)  # starts near uniform
    agent.learn(800)
    p_after = math.exp(agent.action_log_prob(OBS0, best))
    assert p_after > 0.5, p_after  # chance is 1/36
    action, state = agent.predict(OBS0, deterministic=True)
    assert state is None and action.tolist() == best.tolist()


def test_reinforce_learns_discrete_bandit() -> None:
    env = BanditEnv(spaces.Discrete(5), lambda a: float(int(a) == 3))
    agent = ReinforceAgent(env, seed=1, n_episodes=8)
    agent.learn(400)
    assert math.exp(agent.action_log_prob(OBS0, 3)) > 0.8  # chance is 0.2
    assert int(agent.predict(OBS0, deterministic=True)[0]) == 3


def test_reinforce_learns_box_bandit() -> None:
    target = np.array([0.5, -0.5])
    env = BanditEnv(
        spaces.Box(-1.0, 1.0, (2,), np.float32),
        lambda a: -float(np.sum((np.asarray(a) - target) ** 2)),
    )
    agent = ReinforceAgent(env, seed=0, n_episodes=8, learning_rate=1e-2)
    start = agent.predict(OBS0, deterministic=True)[0]
    agent.learn(1600)
    end = agent.predict(OBS0, deterministic=True)[0]
    assert env.action_space.contains(end)
    assert np.linalg.norm(end - target) < 0.25 < np.linalg.norm(start - target), (start, end)
    assert agent.policy.log_std.exp().max().item() < 0.5  # it became confident


def test_reinforce_gradient_flows_after_one_update() -> None:
    env = FakeDataGenEnv(num_iterations=5)
    agent = ReinforceAgent(env, seed=0)
    before = {k: v.detach().clone() for k, v in agent.policy.named_parameters()}
    obs = torch.zeros(3, 4)
    log_prob, entropy = agent.policy.evaluate_actions(obs, torch.tensor([[0, 1, 2]] * 3))
    assert log_prob.requires_grad and entropy.requires_grad  # in the autograd graph
    agent.learn(5)  # exactly one episode -> exactly one update
    changed = {k for k, v in agent.policy.named_parameters() if not torch.equal(v, before[k])}
    assert any(k.startswith("actor.") for k in changed), changed
    assert any(k.startswith("critic.") for k in changed), changed
    assert agent.num_timesteps == 5 and agent.num_episodes == 1


def test_reinforce_seed_is_repeatable_and_mean_baseline_works() -> None:
    runs = []
    for _ in range(2):
        env = FakeDataGenEnv(num_iterations=4)
        agent = ReinforceAgent(env, seed=7, baseline="mean", n_episodes=2).learn(16)
        runs.append((np.stack(env.actions), agent.predict(env.reset()[0], deterministic=True)[0]))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


def test_reinforce_continuous_datagen_and_batched_predict() -> None:
    env = FakeDataGenEnv(action_mode="continuous", num_iterations=4)
    agent = ReinforceAgent(env, seed=0).learn(8)
    obs = np.stack([env.reset()[0]] * 3)
    actions, _ = agent.predict(obs)
    assert actions.shape == (3, 2 + N_TEMPLATES) and all(
        env.action_space.contains(a) for a in actions
    )


# ----------------------------------------------------------------------------- random search
def test_random_search_reverts_a_worse_change() -> None:
    # Proposal gets -1 -> revert; the revert's reward is ignored; next proposal gets +1 -> keep.
    env = FakeDataGenEnv(num_iterations=50, reward_script=[-1.0, 0.3, 1.0, -0.5, 0.0])
    agent = RandomSearchAgent(env, seed=3, p_template=1.0)  # always switch template: visible revert
    assert agent.mode == "settings"
    agent.learn(5)
    a = [x.tolist() for x in env.actions]
    # step 0 was a perturbation (+-d on both, template switched away from the initial 0)
    assert a[0][0] in (0, 2) and a[0][1] in (0, 2) and a[0][2] != 0
    # step 1 reverts: opposite deltas, previous template
    assert a[1] == [2 - a[0][0], 2 - a[0][1], 0]
    # step 2 is a fresh proposal; it is rewarded +1 and kept, so step 3 builds on its template
    assert a[2][0] in (0, 2) and a[2][1] in (0, 2)
    assert agent.counters == {"proposals": 3, "accepted": 1, "reverted": 2}
    # step 3 was rejected (-0.5), so step 4 reverts to the incumbent = the settings after step 2
    assert a[4][:2] == [2 - a[3][0], 2 - a[3][1]] and a[4][2] == a[2][2]
    assert agent.incumbent["template_index"] == a[2][2]


def test_random_search_carries_the_best_template_into_the_next_episode() -> None:
    env = FakeDataGenEnv(num_iterations=3)
    for carry, expected in ((True, 2), (False, 0)):
        agent = RandomSearchAgent(env, seed=1, p_template=0.0, carry_template=carry)
        agent.learn(3)  # one episode
        agent.best.update(metric=2.0, template_index=2)  # as if template 2 had paid best
        _, info = env.reset()  # every episode starts at template 0
        agent.observe_reset(info)
        # p_template=0: the first proposal keeps the incumbent's template
        assert agent.incumbent["template_index"] == expected
        assert int(agent.predict(None)[0][2]) == expected


def test_random_search_revert_uses_actual_settings_at_a_bound() -> None:
    env = FakeDataGenEnv(num_iterations=50, reward_script=[-1.0])
    agent = RandomSearchAgent(env, seed=0, p_template=0.0)
    obs, info = env.reset()
    env.top_p = 1.0  # at the upper bound: +d is clipped away, so there is nothing to undo
    info["top_p"] = 1.0
    agent.observe_reset(info)
    proposal = np.array([2, 2, 0])  # +d on both
    _, reward, _, _, info = env.step(proposal)
    agent.observe(proposal, reward, info)
    revert, _ = agent.predict(None)
    assert revert.tolist() == [0, 1, 0]  # temperature back down, top_p unchanged


def test_random_search_generic_keeps_best_action() -> None:
    env = BanditEnv(spaces.Discrete(6), lambda a: float(int(a) == 4))
    agent = RandomSearchAgent(env, seed=0)
    assert agent.mode == "generic"
    agent.learn(40)
    assert int(agent.predict(OBS0, deterministic=True)[0]) == 4
    box_env = gym.make("Pendulum-v1")
    box_agent = RandomSearchAgent(box_env, seed=0).learn(30)
    assert box_env.action_space.contains(
        box_agent.predict(box_env.reset(seed=0)[0], deterministic=True)[0]
    )


# ----------------------------------------------------------------------------- factory / SB3
SMALL = {
    "ppo": {"n_steps": 16},
    "a2c": {"n_steps": 5},
    "trpo": {"n_steps": 16},
    "recurrent_ppo": {"n_steps": 16},
    "ppo_lstm": {"n_steps": 16},
    "maskable_ppo": {"n_steps": 16},
    "maskableppo": {"n_steps": 16},
    "ppo_mask": {"n_steps": 16},
    "dqn": {"learning_starts": 10},
    "qrdqn": {"learning_starts": 10},
    "sac": {"learning_starts": 10},
    "td3": {"learning_starts": 10},
    "ddpg": {"learning_starts": 10},
    "ars": {"n_delta": 2},
}


@pytest.mark.parametrize("name", list_agents())
def test_factory_builds_and_runs_every_agent(name: str) -> None:
    continuous = name in ("sac", "td3", "ddpg")
    env = FakeDataGenEnv(action_mode="continuous" if continuous else "discrete", num_iterations=5)
    agent = make_agent(name.upper(), env, seed=0, **SMALL.get(name, {}))
    expected = {
        "random": RandomSearchAgent,
        "random_search": RandomSearchAgent,
        "reinforce": ReinforceAgent,
        "ucb": UCBAgent,
        "thompson": ThompsonAgent,
        "exp3": EXP3Agent,
    }
    assert isinstance(agent, expected.get(name, SB3Agent))
    agent.learn(30)
    assert env.total_steps >= 30
    obs, _ = env.reset()
    action, _ = agent.predict(obs, deterministic=True)
    assert env.action_space.contains(np.asarray(action, dtype=env.action_space.dtype))
    if isinstance(agent, SB3Agent):
        assert agent.model is not None
        assert agent.flatten == (name in ("dqn", "qrdqn", "ars"))
        if agent.spec.masked:  # the fake env masks its last template
            assert all(int(a[2]) != N_TEMPLATES - 1 for a in env.actions)


def test_factory_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="valid names: .*reinforce"):
        make_agent("a3c", FakeDataGenEnv())
    with pytest.raises(ValueError, match="action_mode='continuous'"):
        make_agent("sac", FakeDataGenEnv(action_mode="discrete"))
    with pytest.raises(ValueError, match="action_mode='discrete'"):
        make_agent("dqn", FakeDataGenEnv(action_mode="continuous"))


def test_multidiscrete_to_discrete_round_trip() -> None:
    wrapped = MultiDiscreteToDiscrete(FakeDataGenEnv())
    assert wrapped.action_space == spaces.Discrete(3 * 3 * N_TEMPLATES)
    for idx in (0, 7, 45, 89):
        assert wrapped.reverse_action(wrapped.action(idx)) == idx
    assert wrapped.action(np.array([0, 89])).tolist() == [[0, 0, 0], [2, 2, 9]]


def test_sb3_on_cartpole_and_pendulum() -> None:
    cart = make_agent("dqn", gym.make("CartPole-v1"), seed=0, learning_starts=10).learn(40)
    assert int(cart.predict(np.zeros(4, np.float32))[0]) in (0, 1)
    pend = make_agent("td3", gym.make("Pendulum-v1"), seed=0, learning_starts=10).learn(30)
    assert pend.predict(np.zeros(3, np.float32))[0].shape == (1,)


# ----------------------------------------------------------------------------- TensorBoard
SHARED_TAGS = {
    "datagen/metric",
    "datagen/reward",
    "datagen/temperature",
    "datagen/top_p",
    "datagen/template",
    "datagen/kept_fraction",
    "datagen/correctness",
    "rollout/ep_rew_mean",
    "rollout/ep_len_mean",
}


def read_events(run_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_tags_hand_rolled(tmp_path: Path) -> None:
    env = FakeDataGenEnv(num_iterations=5)
    ReinforceAgent(env, seed=0, tensorboard_log=tmp_path, text_every=4).learn(
        20, tb_log_name="reinforce"
    )
    acc = read_events(tmp_path / "reinforce_1")
    tags = set(acc.Tags()["scalars"])
    assert SHARED_TAGS <= tags, SHARED_TAGS - tags
    assert {"train/policy_loss", "train/entropy"} <= tags
    assert len(acc.Scalars("datagen/metric")) == 20
    assert len(acc.Scalars("datagen/correctness")) == 10  # the nan half was skipped
    assert len(acc.Scalars("rollout/ep_rew_mean")) == 4
    texts = acc.Tensors("datagen/examples/text_summary")
    assert len(texts) == 5  # steps 1, 5, 9, 13, 17
    table = texts[0].tensor_proto.string_val[0].decode()
    assert "| # | instruction | input | output |" in table and "Task 0 \\| with pipe" in table


def test_tensorboard_tags_sb3_overlay(tmp_path: Path) -> None:
    env = FakeDataGenEnv(num_iterations=5)
    agent = make_agent("ppo", env, seed=0, tensorboard_log=str(tmp_path), n_steps=16, text_every=4)
    agent.learn(32, tb_log_name="ppo")
    acc = read_events(tmp_path / "ppo_1")
    tags = set(acc.Tags()["scalars"])
    assert SHARED_TAGS <= tags, SHARED_TAGS - tags
    steps = [e.step for e in acc.Scalars("datagen/metric")]
    assert steps == list(range(1, 33))  # one point per env step, on the same x-axis as ours
    assert "datagen/examples/text_summary" in acc.Tags()["tensors"]


def test_tensorboard_helpers_tolerate_missing_keys() -> None:
    assert info_scalars({"metric": 0.5}, 1.0, None) == {}  # an env that declares no tags
    assert info_scalars({}, 1.0, INFO_LOG) == {"datagen/reward": 1.0}
    assert info_scalars(
        {"metric": float("nan"), "top_p": None, "temperature": 0.5}, 0.1, INFO_LOG
    ) == {"datagen/temperature": 0.5, "datagen/reward": 0.1}
    assert info_scalars({"skill_metrics": {"a": 0.25, "b": None}}, None, INFO_LOG) == {
        "datagen/skill/a": 0.25
    }
    assert examples_markdown({"metric": 0.3}, 1, INFO_LOG) is None
    assert examples_markdown({"examples": [{"instruction": "x"}]}, 1, None) is None


def test_tags_come_from_the_env_declaration(tmp_path: Path) -> None:
    """The agents know no env: a plain gymnasium env gets rollout/* only, one that declares
    its own tags in metadata["info_log"] gets those."""
    plain = BanditEnv(spaces.Discrete(3), lambda a: float(a))
    assert info_log_spec(plain) is None
    ReinforceAgent(plain, seed=0, tensorboard_log=tmp_path).learn(8, tb_log_name="plain")
    tags = set(read_events(tmp_path / "plain_1").Tags()["scalars"])
    assert not any(t.startswith("datagen/") for t in tags) and "rollout/ep_rew_mean" in tags

    class Declared(BanditEnv):
        metadata = {"info_log": {"scalars": {"bandit/arm": "arm"}, "reward": "bandit/reward"}}

        def step(self, action):
            obs, r, term, trunc, info = super().step(action)
            return obs, r, term, trunc, {**info, "arm": int(action)}

    env = Declared(spaces.Discrete(3), lambda a: float(a))
    for name in ("reinforce", "ppo"):
        make_agent(name, env, seed=0, tensorboard_log=tmp_path, **SMALL.get(name, {})).learn(
            16, tb_log_name=f"declared_{name}"
        )
        tags = set(read_events(tmp_path / f"declared_{name}_1").Tags()["scalars"])
        assert {"bandit/arm", "bandit/reward"} <= tags, (name, tags)


def test_random_search_writes_shared_tags(tmp_path: Path) -> None:
    RandomSearchAgent(FakeDataGenEnv(), seed=0, tensorboard_log=tmp_path).learn(10)
    tags = set(read_events(tmp_path / "run_1").Tags()["scalars"])
    assert SHARED_TAGS <= tags


# ----------------------------------------------------------------------------- save / load
def only_json_and_safetensors(path: Path) -> None:
    files = sorted(p.name for p in path.iterdir())
    assert files and all(f.endswith((".json", ".safetensors")) for f in files), files
    for f in path.iterdir():
        assert f.read_bytes()[:1] != b"\x80", f"{f} looks like a pickle"


def test_reinforce_save_load_round_trip(tmp_path: Path) -> None:
    env = FakeDataGenEnv(num_iterations=5)
    agent = ReinforceAgent(env, seed=0, n_episodes=2).learn(20)
    agent.save(tmp_path / "ckpt")
    only_json_and_safetensors(tmp_path / "ckpt")
    assert read_json(tmp_path / "ckpt" / "agent.json")["action_space"]["nvec"] == [
        3,
        3,
        N_TEMPLATES,
    ]

    loaded = ReinforceAgent.load(tmp_path / "ckpt", env=FakeDataGenEnv(num_iterations=5))
    generic = load_agent(tmp_path / "ckpt")  # predict-only, no env
    assert isinstance(generic, ReinforceAgent) and loaded.num_timesteps == 20
    rng = np.random.default_rng(0)
    obs = rng.uniform(0, 1, size=(16, 4)).astype(np.float32)
    for o in obs:
        assert np.array_equal(
            agent.predict(o, deterministic=True)[0], loaded.predict(o, deterministic=True)[0]
        )
        # the sampling RNG is part of the checkpoint, so stochastic actions match too
        assert np.array_equal(agent.predict(o)[0], loaded.predict(o)[0])
    for name, p in agent.policy.state_dict().items():
        assert torch.equal(p, loaded.policy.state_dict()[name])
    # the optimizer moments survived: one more identical update gives identical weights
    agent.set_env(FakeDataGenEnv(num_iterations=5))
    agent.set_random_seed(5)
    loaded.set_random_seed(5)
    agent.learn(5)
    loaded.learn(5)
    for name, p in agent.policy.state_dict().items():
        assert torch.allclose(p, loaded.policy.state_dict()[name])


def test_random_search_save_load_round_trip(tmp_path: Path) -> None:
    agent = RandomSearchAgent(FakeDataGenEnv(), seed=0).learn(7)
    agent.save(tmp_path / "rs")
    only_json_and_safetensors(tmp_path / "rs")
    loaded = load_agent(tmp_path / "rs", env=FakeDataGenEnv())
    assert isinstance(loaded, RandomSearchAgent)
    for deterministic in (False, True):
        assert np.array_equal(
            agent.predict(None, deterministic=deterministic)[0],
            loaded.predict(None, deterministic=deterministic)[0],
        )
    info = {"temperature": 0.8, "top_p": 0.9, "template_index": 2, "metric": 0.5}
    for _ in range(4):  # same feedback -> same future moves (the RNG state was restored)
        a1, a2 = agent.predict(None)[0], loaded.predict(None)[0]
        assert np.array_equal(a1, a2)
        agent.observe(a1, -0.1, info)
        loaded.observe(a2, -0.1, info)


def test_sb3_save_load_round_trip(tmp_path: Path) -> None:
    env = FakeDataGenEnv()
    agent = make_agent("dqn", env, seed=0, learning_starts=10).learn(20)
    agent.save(tmp_path / "dqn")
    assert sorted(p.name for p in (tmp_path / "dqn").iterdir()) == ["agent.json", "model.zip"]
    loaded = load_agent(tmp_path / "dqn")
    obs = np.random.default_rng(1).uniform(0, 1, size=(8, 4)).astype(np.float32)
    a1, _ = agent.predict(obs, deterministic=True)
    a2, _ = loaded.predict(obs, deterministic=True)
    assert a1.shape == (8, 3) and np.array_equal(a1, a2)  # un-flattened back to MultiDiscrete


def test_maskable_ppo_save_load_round_trip_keeps_the_masked_policy(tmp_path: Path) -> None:
    env = FakeDataGenEnv()
    agent = make_agent("maskable_ppo", env, seed=0, n_steps=16).learn(32)
    agent.save(tmp_path / "mppo")
    loaded = load_agent(tmp_path / "mppo")  # predict-only: spaces from agent.json
    obs = np.random.default_rng(1).uniform(0, 1, size=(8, 4)).astype(np.float32)
    masks = np.tile(env.action_masks(), (8, 1))
    a1, _ = agent.predict(obs, deterministic=True, action_masks=masks)
    a2, _ = loaded.predict(obs, deterministic=True, action_masks=masks)
    assert np.array_equal(a1, a2) and (a1[:, 2] != N_TEMPLATES - 1).all()
    with pytest.raises(ValueError, match="only read by masked algorithms"):
        make_agent("ppo", env, seed=0).predict(obs[0], action_masks=masks[0])


# ----------------------------------------------------------------------------- callbacks
def test_hand_rolled_callback_sees_infos_and_can_stop() -> None:
    seen: list[float] = []

    def stop_after_seven(locals_: dict, globals_: dict) -> bool:
        seen.append(locals_["infos"][0]["metric"])  # same key names as SB3's locals
        return locals_["num_timesteps"] < 7

    for name in ("reinforce", "random_search"):
        seen.clear()
        env = FakeDataGenEnv()
        agent = make_agent(name, env, seed=0).learn(
            50, callback=stop_after_seven, progress_bar=True
        )
        assert agent.num_timesteps == 7 and env.total_steps == 7 and len(seen) == 7


def test_sb3_accepts_function_callback_and_vec_env() -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    calls: list[int] = []
    vec = VecMonitor(DummyVecEnv([lambda: FakeDataGenEnv(), lambda: FakeDataGenEnv()]))
    agent = make_agent("a2c", vec, seed=0)
    agent.learn(40, callback=lambda locals_, globals_: calls.append(1) or True)
    assert len(calls) == 20  # one call per vectorised step
    actions, _ = agent.predict(np.zeros((2, 4), np.float32))
    assert actions.shape == (2, 3)


# ----------------------------------------------------------------------------- the real env
def _real_env_available() -> bool:
    try:
        import datagen_gym  # noqa: F401
        from datagen_gym.backends import EMBEDDED_TEACHER
    except Exception:  # the env package is optional for these tests
        return False
    return (Path(EMBEDDED_TEACHER) / "config.json").exists()


@pytest.mark.skipif(not _real_env_available(), reason="DataGen-v0 or its embedded teacher absent")
@pytest.mark.parametrize("name", ["random_search", "reinforce", "dqn"])
def test_agents_on_real_datagen_env(tmp_path: Path, name: str) -> None:
    env = gym.make("DataGen-v0", batch_size=4, num_iterations=2)
    kwargs = {"learning_starts": 1} if name == "dqn" else {}
    agent = make_agent(name, env, seed=0, tensorboard_log=tmp_path, text_every=1, **kwargs)
    if isinstance(agent, RandomSearchAgent):
        assert agent.mode == "settings"
    agent.learn(4)
    tags = set(read_events(tmp_path / "run_1").Tags()["scalars"])
    assert {"datagen/metric", "datagen/temperature", "datagen/template"} <= tags
    obs, _ = env.reset(seed=1)
    action, _ = agent.predict(obs, deterministic=True)
    assert env.action_space.contains(np.asarray(action, dtype=env.action_space.dtype))
