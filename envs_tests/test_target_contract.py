"""The target-model contract of DataGen-v0 (issue 21): what a user's target gets (copies), what
it may return (a finite real reward metric; other keys filtered), that the env is usable after
a target failure under gym.make's wrappers, and that both env checkers pass with a user
function as the target."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from support.sizes import SMALL

import datagen_gym  # noqa: F401 - registers DataGen-v0
from datagen_gym.envs import DataGenEnv, TargetModelError

KEEP = np.array([1, 1, 0])


def size_metric(data):
    """A deterministic user target: the reward grows with the training set."""
    return {"accuracy": len(data) / 1000}


class FailingCalls:
    """A target that raises on the given (1-based) calls and scores like size_metric else."""

    def __init__(self, *failing: int) -> None:
        self.failing, self.calls = set(failing), 0

    def __call__(self, data):
        self.calls += 1
        if self.calls in self.failing:
            raise RuntimeError(f"call {self.calls} failed")
        return size_metric(data)


# ------------------------------------------------------------------ 1: the target gets copies
def test_target_that_empties_its_list_keeps_the_seeds():
    seen = []

    def clearing(data):
        seen.append(len(data))
        data.clear()
        return size_metric(seen)

    env = DataGenEnv(target_model=clearing, **SMALL)
    n_seeds = len(env.seed_records)
    env.reset(seed=0)
    _, _, _, _, info = env.step(KEEP)
    assert len(env.seed_records) == n_seeds > 0
    # The step's call trained on every seed again, plus the batch.
    assert seen == [n_seeds, n_seeds + info["num_records"]]


def test_target_that_edits_records_changes_nothing_in_the_env():
    def vandal(data):
        score = size_metric(data)
        for r in data:
            r.pop("instruction", None)
            r["output"] = "edited"
        data.append({"junk": True})
        return score

    def run(target):
        env = DataGenEnv(target_model=target, **SMALL)
        seeds = [dict(r) for r in env.seed_records]
        env.reset(seed=4)
        steps = [env.step(a) for a in (KEEP, np.array([2, 1, 4]), KEEP)]
        assert env.seed_records == seeds
        return [s[1] for s in steps], [s[4]["examples"] for s in steps], env.dataset

    # The same rewards, examples and records as with a target that leaves its input alone,
    # and no KeyError from the examples (the vandal removed "instruction").
    assert run(vandal) == run(size_metric)


def test_every_call_gets_a_fresh_list_of_fresh_records():
    seen = []

    def keeping(data):
        seen.append(data)  # holds them, so no id is reused while the test looks
        return size_metric(data)

    env = DataGenEnv(target_model=keeping, **SMALL)
    env.reset(seed=0)
    env.step(KEEP)
    env.step(KEEP)
    env.reset(seed=0, options={"remeasure_baseline": True})
    assert len(seen) == 4
    assert len({id(d) for d in seen}) == 4
    given = [id(r) for d in seen for r in d]
    assert len(set(given)) == len(given)
    owned = {id(r) for r in env.seed_records} | {id(r) for r in env.dataset}
    assert owned.isdisjoint(given)


# ------------------------------------------------------------------ 2: usable after a failure
@pytest.mark.parametrize(
    "first_reset",
    [
        pytest.param({"options": None}, id="baseline-fails"),
        pytest.param({"options": {"no_such_option": 1}}, id="bad-option"),
    ],
)
def test_reset_then_step_work_under_gym_make_after_a_failed_first_reset(first_reset):
    target = FailingCalls(1) if first_reset["options"] is None else FailingCalls()
    env = gym.make("DataGen-v0", target_model=target, **SMALL)
    with pytest.raises((TargetModelError, ValueError)):
        env.reset(seed=0, options=first_reset["options"])
    _, info = env.reset(seed=0)
    # Two steps: the passive checker compares the first step's data with the reset's, and the
    # second with the first (the TypeError came from the first comparison).
    _, r1, _, _, _ = env.step(KEEP)
    _, r2, _, _, info = env.step(KEEP)
    assert r1 > 0 and r2 > 0 and info["dataset_size"] > 0


def test_reset_then_step_work_under_gym_make_after_a_failed_step():
    env = gym.make("DataGen-v0", target_model=FailingCalls(2), **SMALL)
    env.reset(seed=0)
    with pytest.raises(TargetModelError, match="call 2 failed"):
        env.step(KEEP)
    env.reset(seed=0)
    env.step(KEEP)
    _, _, _, _, info = env.step(KEEP)
    assert info["dataset_size"] > 0


def test_a_failed_reset_mid_episode_needs_a_reset():
    env = DataGenEnv(target_model=FailingCalls(3), **SMALL)
    env.reset(seed=0)
    env.step(KEEP)
    with pytest.raises(TargetModelError, match="call 3 failed"):
        env.reset(seed=1, options={"remeasure_baseline": True})
    # The generator was already reseeded for the new episode: the old one must not go on.
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(KEEP)
    env.reset(seed=1, options={"remeasure_baseline": True})
    env.step(KEEP)


# ------------------------------------------------------------------ 3: what a target returns
@pytest.mark.parametrize(
    "value, shown",
    [
        ("0.75", "accuracy='0.75' (str)"),
        (True, "accuracy=True (bool)"),
        (np.bool_(True), "(bool)"),
        (None, "accuracy=None (NoneType)"),
        ([0.5], "accuracy=[0.5] (list)"),
    ],
)
def test_reward_metric_must_be_a_real_number(value, shown):
    env = DataGenEnv(target_model=lambda data: {"accuracy": value}, **SMALL)
    with pytest.raises(TargetModelError, match="expected a number") as caught:
        env.reset(seed=0)
    assert shown in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [math.inf, -math.inf, np.float32("nan"), 10**400],
    ids=["inf", "-inf", "nan32", "1e400"],
)
def test_reward_metric_must_be_finite(value):
    env = DataGenEnv(target_model=lambda data: {"accuracy": value}, **SMALL)
    with pytest.raises(TargetModelError, match="accuracy=.*expected a finite number"):
        env.reset(seed=0)


@pytest.mark.parametrize("value", [1, np.float32(0.5), np.float64(0.5), np.int64(1)])
def test_reward_metric_accepts_numpy_and_int(value):
    env = DataGenEnv(target_model=lambda data: {"accuracy": value}, **SMALL)
    _, info = env.reset(seed=0)
    assert info["metric"] == float(value) and type(info["metric"]) is float


def test_extra_metrics_that_are_not_finite_numbers_are_dropped():
    def target(data):
        return {
            "accuracy": 0.5,
            "loss": math.nan,
            "perplexity": math.inf,
            "note": "warm start",
            "converged": True,
            "f32": np.float32(0.25),
            "skill/a": math.nan,
            "skill/b": 0.75,
            "test/accuracy": math.inf,
            "test/f1": 0.5,
        }

    env = DataGenEnv(target_model=target, **SMALL)
    _, reset_info = env.reset(seed=0)
    _, _, _, _, step_info = env.step(KEEP)
    for info in (reset_info, step_info):
        assert info["metrics"] == {"accuracy": 0.5, "f32": 0.25, "skill/b": 0.75}
        assert info["skill_metrics"] == {"b": 0.75}
        assert info["test_metrics"] == {"f1": 0.5}
        assert info["test_metric"] is None  # test/accuracy was inf


# ------------------------------------------------------------------ 4: env checkers
def test_check_env_passes_with_a_user_function_target():
    env = gym.make("DataGen-v0", target_model=size_metric, **SMALL)
    with warnings.catch_warnings():
        # check_env says the wrapped env is not the unwrapped one; that is the point here.
        warnings.filterwarnings("ignore", message=".*different from the unwrapped")
        check_env(env.unwrapped, skip_render_check=True)
        check_env(env, skip_render_check=True)
    _, info = env.reset(seed=0)
    assert info["test_metric"] is None  # no test split: None, which compares equal to itself


def test_sb3_check_env_passes_with_a_user_function_target():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(DataGenEnv(target_model=size_metric, **SMALL), warn=True)
