"""Wrappers every caller of the env shares (the tuner, the benchmarks, your scripts)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym


class BudgetExhausted(RuntimeError):
    """A step was asked for after the step budget was spent."""


class StepBudget(gym.Wrapper):
    """Counts the steps taken through it (each a generation and a target evaluation) and refuses
    the one past ``budget`` with :class:`BudgetExhausted`, before it runs.

    ``budget=None`` counts without a limit; the budget may change between steps (the tuner sets
    it per ``train`` call). A subclass that takes some steps for free (replaying recorded steps
    after a resume) says so in :meth:`_counts`.
    """

    def __init__(self, env: gym.Env, budget: int | None = None) -> None:
        super().__init__(env)
        self.budget = budget
        self.steps = 0

    def _counts(self) -> bool:
        """Whether the next step counts against the budget."""
        return True

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        counted = self._counts()
        if counted and self.budget is not None and self.steps >= self.budget:
            raise BudgetExhausted(f"the budget of {self.budget} steps is spent")
        out = self.env.step(action)
        if counted:
            self.steps += 1
        return out


def _checks_retried_after_failure() -> None:
    """Make Gymnasium's ``PassiveEnvChecker`` (which ``gym.make`` wraps around every env) check
    the next ``reset`` / ``step`` again when its first, checked one raised, for DataGenEnv.

    Why: the wrapper marks its first reset as checked *before* calling the env, and keeps that
    reset's ``(obs, info)`` to compare with the first step's (the data-reuse check of Gymnasium
    1.x). When that reset raises (a target failing at the baseline), it keeps ``None``, the
    next reset is not checked, and every step after it raises ``TypeError: cannot unpack
    non-iterable NoneType object`` from ``env_data_reuse_passive_checker``: the env could not
    be used again after ``reset()``, as the README promises. The env cannot reach the wrapper
    around it, so the fix is here: a first reset or step that raises leaves its check to the
    next call. Other envs keep Gymnasium's behaviour.
    """
    from gymnasium.wrappers.common import PassiveEnvChecker

    from datagen_gym.envs.datagen_env import DataGenEnv

    if getattr(PassiveEnvChecker, "_datagen_retries_checks", False):
        return  # already patched (a re-import)
    checked_reset, checked_step = PassiveEnvChecker.reset, PassiveEnvChecker.step

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        first = not self.checked_reset
        try:
            return checked_reset(self, seed=seed, options=options)
        except BaseException:
            if first and isinstance(self.unwrapped, DataGenEnv):
                self.checked_reset = False
            raise

    def step(self, action: Any):
        first = not self.checked_step
        try:
            return checked_step(self, action)
        except BaseException:
            if first and isinstance(self.unwrapped, DataGenEnv):
                self.checked_step = False
            raise

    reset.__doc__, step.__doc__ = checked_reset.__doc__, checked_step.__doc__
    PassiveEnvChecker.reset, PassiveEnvChecker.step = reset, step
    PassiveEnvChecker._datagen_retries_checks = True


_checks_retried_after_failure()
