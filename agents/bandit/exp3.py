"""EXP3 (Auer, Cesa-Bianchi, Freund & Schapire 2002): exponential weights for adversarial bandits.

Unlike UCB1 and Thompson sampling, EXP3 assumes nothing about how rewards are generated (they
may drift, as DataGen's do while an episode's data accumulates). It keeps a weight per arm and
pulls from

    p_i = (1 - gamma) * w_i / sum_j w_j + gamma / K

then updates only the pulled arm with an importance-weighted estimate of its reward x in [0, 1]:

    w_i <- w_i * exp(gamma * x / (p_i K)).

Rewards are rescaled to [0, 1] by ``reward_range=(low, high)`` when declared, else by the
observed min / max so far (clipped; 0.5 until two different rewards were seen). The weights are
kept as logarithms so they never overflow. ``gamma`` is the exploration share: the textbook
choice for a known horizon T is min(1, sqrt(K ln K / ((e - 1) T))), about 0.25 for 10 arms and
200 pulls; the default 0.1 suits a few hundred pulls of a handful of arms.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.bandit.base import BanditAgent, checked_reward_range


class EXP3Agent(BanditAgent):
    """EXP3 bandit.

    :param gamma: exploration share in (0, 1].
    :param reward_range: ``(low, high)`` of the rewards; None: the observed min / max.
    :param kwargs: arms, seeding and logging (see :class:`~agents.bandit.base.BanditAgent`).
    """

    agent_name = "exp3"

    def __init__(
        self,
        env: gym.Env | None,
        gamma: float = 0.1,
        reward_range: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(env, **kwargs)
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        self.gamma = float(gamma)
        self.reward_range = None if reward_range is None else checked_reward_range(reward_range)
        self.log_weights = np.zeros(self.n_arms, dtype=np.float64)

    def probabilities(self) -> np.ndarray:
        """The distribution the next arm is drawn from."""
        w = np.exp(self.log_weights - self.log_weights.max())
        return (1.0 - self.gamma) * w / w.sum() + self.gamma / self.n_arms

    def _select_arm(self) -> int:
        return int(self.np_random.choice(self.n_arms, p=self.probabilities()))

    def observe(self, arm: int, reward: float) -> None:
        """Update the statistics, then the pulled arm's weight."""
        p = self.probabilities()[arm]  # the probability the arm was drawn with
        super().observe(arm, reward)
        if np.isfinite(reward):
            x = self.rescale(float(reward))
            self.log_weights[arm] += self.gamma * x / (p * self.n_arms)

    def _hyperparameters(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "reward_range": self.reward_range}

    def _algo_state(self) -> dict[str, Any]:
        return {"log_weights": self.log_weights}

    def _set_algo_state(self, state: dict[str, Any]) -> None:
        self.log_weights = np.asarray(state["log_weights"], dtype=np.float64)
