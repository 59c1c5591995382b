from datagen_gym.envs.datagen_env import DataGenEnv, TargetModelError
from datagen_gym.envs.wrappers import BudgetExhausted, StepBudget

__all__ = ["BudgetExhausted", "DataGenEnv", "StepBudget", "TargetModelError"]
