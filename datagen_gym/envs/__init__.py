from datagen_gym.envs.datagen_env import DataGenEnv, TargetModelError

__all__ = ["DataGenEnv", "TargetModelError"]
