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
