"""Deprecated path of :mod:`datagen.rl_tuning.rl_tuner` (imports the application)."""

import warnings

from datagen.rl_tuning.rl_tuner import *  # noqa: F401,F403

warnings.warn(
    "datagen_gym.rl_tuning.rl_tuner moved to datagen.rl_tuning.rl_tuner; the old "
    "path will be removed",
    DeprecationWarning,
    stacklevel=2,
)
