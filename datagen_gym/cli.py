"""Deprecated path of :mod:`datagen.cli` (the ``datagen`` command lives in the application).

``python -m datagen_gym.cli ...`` still runs the command, with a deprecation warning.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from datagen_gym import _deprecated_application_import

    value = _deprecated_application_import(f"datagen_gym.cli.{name}", "datagen.cli", name)
    globals()[name] = value  # warn once per name
    return value


if __name__ == "__main__":
    import sys

    from datagen_gym import _deprecated_application_import

    sys.exit(_deprecated_application_import("python -m datagen_gym.cli", "datagen.cli", "main")())
