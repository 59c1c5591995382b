"""UCB1 (Auer, Cesa-Bianchi & Fischer 2002): optimism in the face of uncertainty.

Pull every arm once (in random order), then always the arm with the highest upper confidence
bound

    mean_i + c * span * sqrt(2 ln t / n_i)

where ``t`` is the number of pulls so far, ``n_i`` arm ``i``'s, and ``span`` the width of the
reward range. UCB1's bound assumes rewards in [0, 1]; DataGen's rewards (metric improvements)
are small signed numbers, so the bonus is scaled by the reward range: ``reward_range=(low,
high)`` when declared, else the observed min / max. That is exactly UCB1 run on rewards rescaled
to [0, 1]. ``c=1`` is the textbook constant; smaller exploits sooner.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.bandit.base import BanditAgent, checked_reward_range


class UCBAgent(BanditAgent):
    """UCB1 bandit.

    :param c: multiplier of the exploration bonus (1.0: UCB1 as published).
    :param reward_range: ``(low, high)`` of the rewards; None: the observed min / max.
    :param kwargs: arms, seeding and logging (see :class:`~agents.bandit.base.BanditAgent`).
    """

    agent_name = "ucb"

    def __init__(
        self,
        env: gym.Env | None,
        c: float = 1.0,
        reward_range: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(env, **kwargs)
        if c < 0:
            raise ValueError(f"c must be >= 0, got {c}")
        self.c = float(c)
        self.reward_range = None if reward_range is None else checked_reward_range(reward_range)

    def upper_bounds(self) -> np.ndarray:
        """Every arm's upper confidence bound (+inf for arms never pulled)."""
        t = max(int(self.counts.sum()), 1)
        n = np.maximum(self.counts, 1)
        bonus = self.c * self.reward_span() * np.sqrt(2.0 * np.log(t) / n)
        return np.where(self.counts > 0, self.means + bonus, np.inf)

    def _select_arm(self) -> int:
        untried = self._untried_arm()
        if untried is not None:
            return untried
        return self._argmax_random_tie(self.upper_bounds())

    def _hyperparameters(self) -> dict[str, Any]:
        return {"c": self.c, "reward_range": self.reward_range}
