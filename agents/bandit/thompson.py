"""Thompson sampling with a Gaussian reward model (Normal-inverse-gamma posterior per arm).

Each arm's rewards are modelled as Normal(mu_i, sigma_i^2) with both unknown. Each step draws one
plausible (mu_i, sigma_i^2) per arm from its posterior and pulls the arm whose draw is largest, so
an arm is pulled as often as it is probably the best.

The conjugate prior is worth ``prior_strength`` pseudo-pulls of mean ``m0`` and variance ``v0``:
kappa0 = n0, alpha0 = n0 / 2, beta0 = n0 * v0 / 2. Rewards have no known scale (DataGen's are
metric improvements of a few hundredths), so ``m0`` and ``v0`` are the mean and variance of all
rewards observed so far (empirical Bayes); a fixed prior of, say, unit variance would keep a
DataGen bandit exploring for hundreds of steps. Every arm is pulled once first (in random
order), which gives the prior its scale. With n pulls of mean x and sum of squared deviations S:

    kappa = n0 + n,  mean = (n0 m0 + n x) / kappa,  alpha = alpha0 + n / 2,
    beta  = beta0 + S / 2 + n0 n (x - m0)^2 / (2 kappa),
    sigma^2 ~ InvGamma(alpha, beta),  mu ~ Normal(mean, sigma^2 / kappa).

Draws come from the agent's RNG, so a seed makes runs repeatable.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.bandit.base import BanditAgent

_MIN_VAR = 1e-12  # identical rewards so far: a tiny prior variance keeps the draws defined


class ThompsonAgent(BanditAgent):
    """Gaussian Thompson-sampling bandit.

    :param prior_strength: the prior's weight in pseudo-pulls (n0 > 0); larger shrinks every
        arm's estimate toward the overall mean for longer.
    :param kwargs: arms, seeding and logging (see :class:`~agents.bandit.base.BanditAgent`).
    """

    agent_name = "thompson"

    def __init__(self, env: gym.Env | None, prior_strength: float = 1.0, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        if not prior_strength > 0:
            raise ValueError(f"prior_strength must be > 0, got {prior_strength}")
        self.prior_strength = float(prior_strength)

    def sample_means(self) -> np.ndarray:
        """One posterior draw of every arm's mean reward."""
        n0, n = self.prior_strength, self.counts.astype(np.float64)
        m0, v0 = self.pooled_mean_var()
        v0 = max(v0, _MIN_VAR)
        kappa = n0 + n
        mean = (n0 * m0 + n * self.means) / kappa
        alpha = n0 / 2.0 + n / 2.0
        beta = n0 * v0 / 2.0 + self.m2 / 2.0 + n0 * n * (self.means - m0) ** 2 / (2.0 * kappa)
        sigma2 = beta / self.np_random.gamma(alpha)  # InvGamma(alpha, beta) = beta / Gamma(alpha)
        return mean + np.sqrt(sigma2 / kappa) * self.np_random.standard_normal(self.n_arms)

    def _select_arm(self) -> int:
        untried = self._untried_arm()
        if untried is not None:
            return untried
        return self._argmax_random_tie(self.sample_means())

    def _hyperparameters(self) -> dict[str, Any]:
        return {"prior_strength": self.prior_strength}
