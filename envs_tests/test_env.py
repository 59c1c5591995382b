"""DataGen-v0: API checks, determinism and every bad-input path."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from support.sizes import SMALL

import datagen_gym
from datagen_gym.envs import DataGenEnv, TargetModelError
from datagen_gym.generators.prompts import TEMPLATES


def _make(**kw):
    return gym.make("DataGen-v0", **{**SMALL, **kw})


def test_registered_both_ways():
    env = gym.make("datagen_gym:DataGen-v0", **SMALL)
    assert isinstance(env.unwrapped, DataGenEnv)
    assert env.action_space == gym.spaces.MultiDiscrete([3, 3, len(TEMPLATES)])


def test_gymnasium_env_checker():
    from gymnasium.utils.env_checker import check_env

    env = DataGenEnv(**SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    assert not [w for w in caught if "space" in str(w.message).lower()], [
        str(w.message) for w in caught
    ]


@pytest.mark.parametrize("mode", ["discrete", "continuous"])
def test_sb3_env_checker(mode):
    from stable_baselines3.common.env_checker import check_env

    env = DataGenEnv(action_mode=mode, **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, warn=True)
    assert not [w for w in caught if "space" in str(w.message).lower()], [
        str(w.message) for w in caught
    ]


def test_step_info_and_episode_end():
    env = _make()
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["metric"] == info["baseline_metric"]
    total, metric0 = 0.0, info["metric"]
    for t in range(3):
        obs, reward, terminated, truncated, info = env.step(np.array([2, 1, 1]))
        total += reward
        assert env.observation_space.contains(obs)
        assert not terminated and truncated == (t == 2)
        for key in (
            "metric",
            "metrics",
            "best_metric",
            "temperature",
            "top_p",
            "template",
            "kept_fraction",
            "unique_ratio",
            "correctness",
            "num_kept",
            "all_filtered",
            "examples",
        ):
            assert key in info
        assert "time_generation_s" not in info  # measurements stay out of the compared info
        assert info["template"] == "self_instruct_classification"
        assert info["temperature"] == pytest.approx(1.0 + 0.05 * (t + 1))
        assert 0.0 <= info["correctness"] <= 1.0
        seconds = env.unwrapped.last_step_seconds
        assert seconds["time_generation_s"] > 0 and seconds["time_target_s"] > 0
    # Rewards telescope: the return is the final metric minus the baseline.
    assert total == pytest.approx(info["metric"] - metric0)
    assert info["dataset_size"] == len(env.unwrapped.dataset) > 0
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.step(np.array([1, 1, 0]))


def test_same_seed_same_actions_same_rewards():
    actions = [np.array([2, 0, 1]), np.array([1, 1, 4]), np.array([0, 2, 9])]

    def run(seed):
        env = DataGenEnv(**SMALL)
        env.reset(seed=seed)
        out = [env.step(a)[1:2] + (env.unwrapped.dataset,) for a in actions]
        return [o[0] for o in out], out[-1][1]

    r1, d1 = run(3)
    r2, d2 = run(3)
    assert r1 == r2 and d1 == d2
    _, d3 = run(4)
    assert d3 != d1


def test_continuous_mode_and_batch_mode():
    env = _make(action_mode="continuous", data_mode="batch")
    env.reset(seed=0)
    a = np.zeros(2 + len(TEMPLATES), dtype=np.float32)
    a[0], a[1], a[2 + 3] = -1.0, 0.5, 1.0
    _, _, _, _, info = env.step(a)
    assert info["temperature"] == pytest.approx(0.95)
    assert info["top_p"] == pytest.approx(0.925)
    assert info["template"] == TEMPLATES[3].name
    _, _, _, _, info2 = env.step(a)
    assert len(env.unwrapped.dataset) == info["num_records"] + info2["num_records"]  # recorded
    seeds = len(env.unwrapped.seed_records)
    # batch mode trains on the seeds and this step's batch only, at every step
    assert info["metrics"]["num_train"] == seeds + info["num_records"]
    assert info2["metrics"]["num_train"] == seeds + info2["num_records"]
    episode = _make(action_mode="continuous", data_mode="episode")
    episode.reset(seed=0)
    episode.step(a)
    _, _, _, _, both = episode.step(a)
    assert both["metrics"]["num_train"] == seeds + both["dataset_size"]


def test_invalid_action_is_a_clear_error():
    env = _make()
    env.reset(seed=0)
    for bad in ([3, 1, 0], [1, 1, len(TEMPLATES)], [1, 1], [-1, 1, 0], [0.5, 1, 0]):
        with pytest.raises(ValueError, match="invalid action"):
            env.unwrapped.step(np.array(bad))
    env.unwrapped.step(np.array([1, 1, 0]))  # still usable


@pytest.mark.parametrize(
    "target, needle",
    [
        (lambda data: 1 / 0, "target_model raised ZeroDivisionError"),
        (lambda data: {"accuracy": math.nan}, "expected a finite number"),
        (lambda data: {"f1": 0.5}, "no 'accuracy'"),
        (lambda data: 0.5, "returned float; expected a dict"),
        (lambda data: {"accuracy": "high"}, "expected a number"),
    ],
)
def test_bad_target_is_a_clear_error_and_env_recovers(target, needle):
    calls = {"n": 0}

    def flaky(data):
        calls["n"] += 1
        return {"accuracy": 0.5} if calls["n"] == 1 else target(data)

    env = DataGenEnv(target_model=flaky, **SMALL)
    env.reset(seed=0)  # baseline call succeeds
    with pytest.raises(TargetModelError, match=needle):
        env.step(np.array([1, 1, 1]))
    assert env.dataset == []  # a failed step adds nothing
    env.target_model = lambda data: {"accuracy": 0.6}
    env.reset(seed=0)
    _, reward, *_ = env.step(np.array([1, 1, 1]))
    assert reward == pytest.approx(0.1)


def test_target_failing_at_reset():
    env = DataGenEnv(target_model=lambda d: {}, **SMALL)
    with pytest.raises(TargetModelError, match="no 'accuracy'"):
        env.reset(seed=0)


def test_all_filtered_batch_is_a_valid_step():
    cfg = {"generation": {"min_instruction_words": 500}}  # every instruction is "too short"
    calls = []
    env = DataGenEnv(
        config=cfg, target_model=lambda d: calls.append(len(d)) or {"accuracy": 0.5}, **SMALL
    )
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.array([1, 1, 0]))
    assert reward == 0.0 and info["all_filtered"] and info["num_records"] == 0
    assert info["correctness"] is None and len(calls) == 1  # only the baseline
    assert env.observation_space.contains(obs)


def test_bad_kwargs():
    with pytest.raises(datagen_gym.ConfigError, match="rl_tuning.batch_size"):
        DataGenEnv(batch_size=0)
    with pytest.raises(datagen_gym.ConfigError, match="action_mode"):
        DataGenEnv(action_mode="box")
    with pytest.raises(ValueError, match="unknown built-in task"):
        DataGenEnv(task="poetry")
    with pytest.raises(TypeError, match="target_model must be callable"):
        DataGenEnv(target_model="model.pt")


def test_user_target_receives_records():
    seen = []

    def target(data):
        seen.append(data)
        return {"accuracy": len(data) / 1000}

    env = DataGenEnv(
        target_model=target,
        validation_dataset=[{"instruction": "x", "input": "", "output": "y"}],
        **SMALL,
    )
    env.reset(seed=1)
    env.step(np.array([1, 1, 0]))
    assert len(seen[1]) > len(seen[0])
    assert all({"instruction", "input", "output"} <= set(r) for r in seen[1])


def test_render_ansi():
    env = DataGenEnv(render_mode="ansi", **SMALL)
    env.reset(seed=0)
    assert "T=1.00" in env.render()


def test_step_budget_refuses_the_step_past_it_before_running_it():
    from datagen_gym.envs import BudgetExhausted, StepBudget

    env = StepBudget(_make(), budget=2)
    env.reset(seed=0)
    env.step(np.array([1, 1, 0]))
    env.step(np.array([1, 1, 0]))
    before = len(env.unwrapped.dataset)
    with pytest.raises(BudgetExhausted, match="budget of 2 steps"):
        env.step(np.array([1, 1, 0]))
    assert env.steps == 2 and len(env.unwrapped.dataset) == before  # nothing was generated
    env.budget = None  # unlimited from here
    env.step(np.array([1, 1, 0]))
    assert env.steps == 3
