"""Target models: ``target_model(data: list[dict]) -> dict[str, float]``."""

from datagen_gym.targets.builtin_tasks import (
    make_builtin_target,
    make_test_set,
    make_validation_set,
    task_skills,
)
from datagen_gym.targets.sklearn_target import SklearnClassifierTarget

__all__ = [
    "SklearnClassifierTarget",
    "make_builtin_target",
    "make_test_set",
    "make_validation_set",
    "task_skills",
]
