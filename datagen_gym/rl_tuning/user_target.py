"""Deprecated path of :mod:`datagen.rl_tuning.user_target` (imports the application)."""

import warnings

from datagen.rl_tuning.user_target import *  # noqa: F401,F403

warnings.warn(
    "datagen_gym.rl_tuning.user_target moved to datagen.rl_tuning.user_target; the old "
    "path will be removed",
    DeprecationWarning,
    stacklevel=2,
)
