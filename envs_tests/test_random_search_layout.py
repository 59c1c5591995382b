"""The random search reads its settings layout from the env (``action_dim_names``,
``action_dim_keep``, ``action_dim_info_keys``) instead of recognising DataGen's action space.

The recorded runs below were produced by the agent as it was before that change (which
recognised ``MultiDiscrete([3, 3, n])`` by shape and the continuous ``Box`` by env id): on
DataGen's default 3-dim layout the proposals, reverts and RNG draws must stay bit-identical.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from test_agents import N_TEMPLATES, FakeDataGenEnv  # envs_tests/ is on sys.path

from agents import RandomSearchAgent

# (case, actions of 60 steps, deterministic prediction after them, counters), three digits per
# action: the MultiDiscrete action, or for the Box (delta0 + 1, delta1 + 1, template argmax).
HEAD_RUNS = [
    (
        {"mode": "discrete", "seed": 0, "p_template": 0.3, "carry": True, "iters": 7},
        "000220020200220220220020200005220001220000200200200020220220000200000220"
        "220220000220000220000220008220227028200200206226026206220000220000220220"
        "220020200000220220000220200020200000",
        "220",
        {"proposals": 40, "accepted": 17, "reverted": 23},
    ),
    (
        {"mode": "discrete", "seed": 5, "p_template": 1.0, "carry": False, "iters": 9},
        "223001223000223022213009223027200224200025200228000221204201002221208021"
        "003221229205029205027205007225229005029200008220008220007220026208029208"
        "004228223000223026223200024200026200",
        "113",
        {"proposals": 38, "accepted": 12, "reverted": 26},
    ),
    (
        {"mode": "discrete", "seed": 11, "p_template": 0.5, "carry": True, "iters": 60},
        "221025211021211221006221201021201221001223225013226013228013200023029213"
        "003003223201023004223023203202023009223225003003223202023005223008223003"
        "223201023229003027203020203222003221",
        "213",
        {"proposals": 33, "accepted": 5, "reverted": 28},
    ),
    (
        {"mode": "continuous", "seed": 2, "p_template": 0.4, "carry": True, "iters": 8},
        "200027200202206022202022222003023203227003223225022202022202222222202202"
        "202207222022202022202008222022212005222026212002002222202222222002222002"
        "225205020205005225020205007222022202",
        "202",
        {"proposals": 40, "accepted": 16, "reverted": 24},
    ),
]


def _full_action(code: str, continuous: bool) -> np.ndarray:
    digits = [int(c) for c in code]
    if not continuous:
        return np.asarray(digits)
    action = np.full(2 + N_TEMPLATES, -1.0)
    action[0], action[1] = digits[0] - 1, digits[1] - 1
    action[2 + digits[2]] = 1.0
    return action


@pytest.mark.parametrize("case, actions, exploit, counters", HEAD_RUNS)
def test_default_layout_is_bit_identical_to_the_old_agent(
    case: dict[str, Any], actions: str, exploit: str, counters: dict[str, int]
) -> None:
    continuous = case["mode"] == "continuous"
    env = FakeDataGenEnv(action_mode=case["mode"], num_iterations=case["iters"])
    agent = RandomSearchAgent(
        env, seed=case["seed"], p_template=case["p_template"], carry_template=case["carry"]
    )
    assert agent.mode == "settings"
    agent.learn(60)
    expected = [_full_action(actions[i : i + 3], continuous) for i in range(0, len(actions), 3)]
    assert len(env.actions) == len(expected) == 60
    for step, (got, want) in enumerate(zip(env.actions, expected, strict=True)):
        assert np.array_equal(got, want), f"step {step}: {got} != {want}"
    got_exploit = agent.predict(None, deterministic=True)[0]
    assert np.array_equal(got_exploit, _full_action(exploit, continuous))
    assert agent.counters == counters


def test_a_checkpoint_of_another_format_is_one_line_naming_it(tmp_path: Path) -> None:
    env = FakeDataGenEnv(num_iterations=5)
    agent = RandomSearchAgent(env, seed=0)
    agent.save(tmp_path)
    meta = json.loads((tmp_path / "agent.json").read_text())
    meta["format_version"] = 1  # written before the layout was stored
    (tmp_path / "agent.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"agent\.json.*format version 1; this agent reads 2"):
        RandomSearchAgent.load(tmp_path, env=env)


class FocusFakeEnv(FakeDataGenEnv):
    """The fake env with a second choice dimension (a focus, as DataGen's ``focus=True``)."""

    N_FOCUS = 4

    def __init__(self, num_iterations: int = 6) -> None:
        super().__init__(num_iterations=num_iterations)
        self.action_space = spaces.MultiDiscrete([3, 3, N_TEMPLATES, self.N_FOCUS])
        self.action_dim_names = ("temperature", "top_p", "template", "focus")
        self.action_dim_keep = (1, 1, None, None)
        self.action_dim_info_keys = ("temperature", "top_p", "template_index", "focus_index")
        self.focus = 0

    def _metric(self) -> float:
        return super()._metric() - 0.03 * (self.focus != 2)

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "focus_index": self.focus}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        self.focus = 0
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple:
        self.focus = int(np.asarray(action)[3])
        return super().step(action)


def test_several_choice_dimensions_switch_one_at_a_time() -> None:
    env = FocusFakeEnv()
    agent = RandomSearchAgent(env, seed=0, p_template=1.0)
    assert agent.mode == "settings" and agent.choice_sizes == [N_TEMPLATES, 4]
    obs, info = env.reset()
    agent.observe_reset(info)
    switched = set()
    for _ in range(80):
        action = np.asarray(agent.predict(obs)[0])
        assert env.action_space.contains(action)
        reference = np.asarray(agent._reference_choices())
        changed = np.flatnonzero(action[2:] != reference)
        if agent.phase == "propose":
            assert len(changed) == 1  # p_template=1: exactly one choice dimension switches
            switched.add(int(changed[0]))
            assert set(action[:2].tolist()) <= {0, 2}
        else:  # a revert restores the incumbent's choices
            assert len(changed) == 0
        obs, reward, _, truncated, info = env.step(action)
        agent.observe(action, reward, info)
        if truncated:
            obs, info = env.reset()
            agent.observe_reset(info)
            # carry_template: the new episode's incumbent takes the best's choices
            assert agent.incumbent["template_index"] == agent.best["template_index"]
            assert agent.incumbent["focus_index"] == agent.best["focus_index"]
    assert switched == {0, 1}
    best = agent.predict(obs, deterministic=True)[0]
    assert best[2:].tolist() == [agent.best["template_index"], agent.best["focus_index"]]


def test_several_choice_dimensions_save_and_load(tmp_path: Path) -> None:
    agent = RandomSearchAgent(FocusFakeEnv(), seed=3, p_template=0.5).learn(9)
    agent.save(tmp_path)
    meta = json.loads((tmp_path / "agent.json").read_text())
    assert meta["format_version"] == 2 and meta["layout"]["keep"] == [1, 1, None, None]
    loaded = RandomSearchAgent.load(tmp_path)  # no env: the layout comes from the file
    assert loaded.mode == "settings" and loaded.layout == agent.layout
    assert loaded.pending == agent.pending and loaded.best == agent.best
    runs = []
    for a in (agent, loaded):
        env = FocusFakeEnv()
        a.set_env(env)
        a.learn(15)
        runs.append([x.tolist() for x in env.actions])
    assert runs[0] == runs[1]


def test_the_declaration_decides_the_mode() -> None:
    assert RandomSearchAgent(FakeDataGenEnv(), mode="datagen").mode == "settings"  # alias
    # Read through wrappers (get_wrapper_attr).
    wrapped = gym.wrappers.TimeLimit(FakeDataGenEnv(), max_episode_steps=50)
    assert RandomSearchAgent(wrapped).mode == "settings"
    # The same action space without the declaration: generic random search.
    undeclared = FakeDataGenEnv()
    del undeclared.action_dim_info_keys
    assert RandomSearchAgent(undeclared).mode == "generic"
    with pytest.raises(ValueError, match="action space"):
        RandomSearchAgent(undeclared, mode="settings")
    # A layout that does not fit the action space.
    wrong = FakeDataGenEnv()
    wrong.action_dim_keep = (1, None, None)
    wrong.action_dim_names = wrong.action_dim_info_keys = ("a", "b")
    assert RandomSearchAgent(wrong).mode == "generic"
    # A Box with two choice blocks (block sizes unknown): not searched as settings.
    box = FakeDataGenEnv(action_mode="continuous")
    box.action_space = spaces.Box(-1.0, 1.0, (2 + N_TEMPLATES + 3,), np.float32)
    box.action_dim_names = ("temperature", "top_p", "template", "focus")
    box.action_dim_keep = (1, 1, None, None)
    box.action_dim_info_keys = ("temperature", "top_p", "template_index", "focus_index")
    assert RandomSearchAgent(box).mode == "generic"
    with pytest.raises(ValueError, match="at most one choice"):
        RandomSearchAgent(box, mode="settings")


def _cheap_target(records: list[dict[str, Any]]) -> dict[str, float]:
    short = sum(len(str(r.get("output", "")).split()) <= 3 for r in records)
    return {"accuracy": short / (len(records) + 1)}


@pytest.mark.parametrize(
    "action_mode, focus", [("discrete", False), ("continuous", False), ("discrete", True)]
)
def test_datagen_env_declares_the_layout(action_mode: str, focus: bool) -> None:
    from datagen.rl_tuning import RLTuner

    rl: dict[str, Any] = {"batch_size": 4, "num_iterations": 2, "seed": 0}
    rl["action_mode"] = action_mode
    if focus:
        rl.update(task="topic+spam", focus=True)
    tuner = RLTuner({"rl_tuning": rl}, target_model=None if focus else _cheap_target)
    env = tuner.env
    n = len(env.action_dim_names)
    assert len(env.action_dim_keep) == len(env.action_dim_info_keys) == n == 3 + focus
    assert tuner.agent.mode == "settings" and tuner.agent.layout["info_keys"] == list(
        env.action_dim_info_keys
    )
    _, info = env.reset(seed=0)
    _, _, _, _, step_info = env.step(np.asarray(tuner.agent.pending, env.action_space.dtype))
    for key in env.action_dim_info_keys:
        assert key in info and key in step_info
