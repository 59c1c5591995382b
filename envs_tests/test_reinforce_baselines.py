"""REINFORCE baselines under advantage normalisation (fast: a few tiny updates, CPU only).

Regression tests for a bug where ``normalize_advantage=True`` centred the advantages on their
batch mean for every baseline, which cancels any constant baseline: ``baseline="mean"`` and
``baseline="none"`` gave bit-identical updates. Now only ``"value"`` is centred (unchanged,
PPO-style); ``"mean"`` and ``"none"`` are only scaled by the batch std.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from agents import ReinforceAgent

torch.set_num_threads(1)  # the test machine has 2 cores and shares them with a training job

OBS_SPACE = spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT_SPACE = spaces.MultiDiscrete([3, 4])
# Three episodes of lengths 2, 3 and 1, rewards with a constant offset around 5 (so a running
# mean of the returns is far from zero) and some spread.
REWARDS = [5.0, 4.0, 6.5, 5.0, 3.0, 7.0]
DONES = [False, True, False, False, True, True]
RUNNING_MEAN = 6.0


def make_agent(baseline: str, **kwargs: Any) -> ReinforceAgent:
    """Same seed, so the actors start identical (the critic, if any, is built after them)."""
    params: dict[str, Any] = {
        "seed": 0,
        "baseline": baseline,
        "hidden_sizes": (16,),
        "normalize_obs": "none",
        "ent_coef": 0.0,  # pure policy gradient ...
        "max_grad_norm": 1e9,  # ... unclipped, so gradients can be compared by formula
        **kwargs,
    }
    return ReinforceAgent(None, observation_space=OBS_SPACE, action_space=ACT_SPACE, **params)


def batch() -> tuple[list[torch.Tensor], list[torch.Tensor], list[float], list[bool]]:
    rng = np.random.default_rng(0)
    n = len(REWARDS)
    obs = [torch.as_tensor(rng.normal(size=3), dtype=torch.float32) for _ in range(n)]
    acts = [torch.as_tensor([rng.integers(3), rng.integers(4)]) for _ in range(n)]
    return obs, acts, list(REWARDS), list(DONES)


def actor_grads(agent: ReinforceAgent) -> list[torch.Tensor]:
    """Gradients left by ``_update`` (clipping with a huge max norm leaves them unchanged)."""
    return [p.grad.detach().clone() for p in agent.policy.actor.parameters()]


def actor_params(agent: ReinforceAgent) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.policy.actor.parameters()]


def update_grads(agent: ReinforceAgent) -> list[torch.Tensor]:
    agent._update(*batch())
    return actor_grads(agent)


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(x, y, rtol=1e-5, atol=1e-7) for x, y in zip(a, b, strict=True))


def hand_policy_grads(agent: ReinforceAgent, advantages: torch.Tensor) -> list[torch.Tensor]:
    """Gradient of ``-(log pi(a|s) * A).mean()`` for the given advantages, by autograd."""
    obs, acts, _, _ = batch()
    log_prob, _ = agent.policy.evaluate_actions(torch.stack(obs), torch.stack(acts))
    agent.policy.zero_grad()
    (-(log_prob * advantages).mean()).backward()
    return actor_grads(agent)


def returns() -> torch.Tensor:
    return torch.as_tensor(make_agent("none")._discounted_returns(REWARDS, DONES))


# ----------------------------------------------------------------------------- the update
def test_none_mean_and_value_updates_differ() -> None:
    none, mean, value = make_agent("none"), make_agent("mean"), make_agent("value")
    assert same(actor_params(none), actor_params(mean))  # identical starting actors
    mean.baseline_mean = RUNNING_MEAN
    g_none, g_mean, g_value = update_grads(none), update_grads(mean), update_grads(value)
    assert not same(g_none, g_mean)  # failed before the fix: centring cancelled the running mean
    assert not same(g_none, g_value) and not same(g_mean, g_value)


def test_none_is_plain_reinforce_scaled_by_the_batch_std() -> None:
    agent = make_agent("none")
    got = update_grads(agent)
    g = returns()
    expected = hand_policy_grads(make_agent("none"), g / (g.std() + 1e-8))  # no centring
    assert same(got, expected)
    # With the batch mean subtracted it would be a different update (the old behaviour).
    centred = hand_policy_grads(make_agent("none"), (g - g.mean()) / (g.std() + 1e-8))
    assert not same(got, centred)


def test_mean_equals_none_on_returns_minus_the_running_mean() -> None:
    mean = make_agent("mean", baseline_decay=0.9)
    mean.baseline_mean = RUNNING_MEAN
    g_mean = update_grads(mean)

    none = make_agent("none")
    original = none._discounted_returns
    none._discounted_returns = lambda r, d: original(r, d) - RUNNING_MEAN  # type: ignore
    g_none = update_grads(none)
    assert same(g_mean, g_none)
    # Parameters after the Adam step agree as well.
    for p, q in zip(mean.policy.parameters(), none.policy.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-7)
    # The running mean used the previous value and was then updated with this batch's mean.
    assert mean.baseline_mean == pytest.approx(0.9 * RUNNING_MEAN + 0.1 * float(returns().mean()))


def test_first_mean_batch_is_centred_on_its_own_mean() -> None:
    mean = make_agent("mean")  # no running mean yet -> the batch mean is the baseline
    g = returns()
    got = update_grads(mean)
    expected = hand_policy_grads(make_agent("mean"), (g - g.mean()) / (g.std() + 1e-8))
    assert same(got, expected)
    assert mean.baseline_mean == pytest.approx(float(g.mean()))


def old_value_update(
    agent: ReinforceAgent,
    obs_buf: list[torch.Tensor],
    act_buf: list[torch.Tensor],
    rew_buf: list[float],
    done_buf: list[bool],
) -> None:
    """``_update`` as it was before the fix, for ``baseline="value"`` (verbatim formula)."""
    obs = torch.stack(obs_buf)
    actions = torch.stack(act_buf)
    returns = torch.as_tensor(agent._discounted_returns(rew_buf, done_buf), device=agent.device)
    log_prob, entropy = agent.policy.evaluate_actions(obs, actions)
    values = agent.policy.value(obs)
    advantages = returns - values.detach()
    value_loss = 0.5 * (returns - values).pow(2).mean()
    if agent.normalize_advantage and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = -(log_prob * advantages).mean()
    entropy_loss = -entropy.mean()
    loss = policy_loss + agent.ent_coef * entropy_loss + agent.vf_coef * value_loss
    agent.optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(agent.policy.parameters(), agent.max_grad_norm)
    agent.optimizer.step()


def test_value_baseline_update_is_bit_identical_to_the_old_formula() -> None:
    # Default hyper-parameters (entropy bonus, gradient clipping), two steps so Adam's moments
    # are exercised too.
    defaults = {"ent_coef": 0.01, "max_grad_norm": 0.5}
    new, old = make_agent("value", **defaults), make_agent("value", **defaults)
    for step in range(2):
        rewards = [r + step for r in REWARDS]
        obs, acts, _, dones = batch()
        new._update(obs, acts, rewards, dones)
        old_value_update(old, obs, acts, rewards, dones)
    for (name, p), q in zip(new.policy.named_parameters(), old.policy.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_scale_only_normalisation_leaves_a_batch_without_spread_unscaled() -> None:
    agent = make_agent("none")
    flat = torch.full((4,), 3.0)
    assert torch.equal(agent._normalize_advantages(flat), flat)  # not 3 / 1e-8
    zeros = torch.zeros(4)
    assert torch.equal(agent._normalize_advantages(zeros), zeros)
    spread = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert torch.allclose(agent._normalize_advantages(spread), spread / spread.std())


# ----------------------------------------------------------------------------- through learn
class OffsetBandit(gym.Env):
    """One-step episodes, constant observation, reward ``offset + [action == 1]``."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = self.offset + float(int(action) == 1)
        return np.zeros(2, np.float32), reward, False, True, {}


def learned_actor(baseline: str, offset: float) -> list[torch.Tensor]:
    # decay 0.5 and rewards in {8, 9}: the running mean is a short dyadic number, so the
    # advantages G - mean are computed exactly and the offset cancels bit for bit.
    env = OffsetBandit(offset)
    agent = ReinforceAgent(
        env, seed=3, baseline=baseline, baseline_decay=0.5, n_episodes=4, hidden_sizes=(8,)
    )
    agent.learn(24)
    return actor_params(agent)


def test_learn_mean_baseline_cancels_a_reward_offset_and_none_does_not() -> None:
    mean_8, mean_0 = learned_actor("mean", 8.0), learned_actor("mean", 0.0)
    none_8, none_0 = learned_actor("none", 8.0), learned_actor("none", 0.0)
    assert all(torch.equal(a, b) for a, b in zip(mean_8, mean_0, strict=True))
    assert not same(none_8, none_0)  # without a baseline the offset matters ...
    assert not same(none_8, mean_8)  # ... and "none" is not "mean" (it was, before the fix)
