"""Deprecated path of :mod:`datagen.rl_tuning` (the application layer moved out of the library).

``from datagen_gym.rl_tuning import RLTuner`` still works and warns; nothing here is imported
until a name is asked for, so the library never imports the application.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from datagen_gym import _deprecated_application_import

    value = _deprecated_application_import(
        f"datagen_gym.rl_tuning.{name}", "datagen.rl_tuning", name
    )
    globals()[name] = value  # warn once per name
    return value
