"""Loading the user's target model and validation data named in a config.

``rl_tuning.target_model_path`` names a Python file defining either

* ``make_target_model(validation_dataset) -> target_model`` (preferred: it receives the records
  of ``rl_tuning.validation_data_path``), or
* ``target_model(records) -> dict[str, float]``.

``rl_tuning.validation_data_path`` names a JSONL file of ``instruction`` / ``input`` /
``output`` records. With validation data but no target file, the built-in scikit-learn target
(:class:`~datagen_gym.targets.SklearnClassifierTarget`) is scored on that data.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from datagen_gym.config import Config, ConfigError
from datagen_gym.results import read_jsonl

TargetModel = Callable[[list[dict[str, Any]]], dict[str, float]]

#: Config fields holding file paths that are resolved relative to the config file's directory.
PATH_FIELDS = (
    ("rl_tuning", "target_model_path"),
    ("rl_tuning", "validation_data_path"),
    ("generation", "seed_tasks_path"),
    ("sampling", "model_path"),
    ("rl_tuning", "replay_cache"),
)


class TargetFileError(ValueError):
    """The target file cannot be imported or does not define a usable target model."""


def resolve_config_paths(config: Config, base_dir: str | os.PathLike) -> Config:
    """A copy of ``config`` whose relative file paths are taken relative to ``base_dir``."""
    data = config.to_dict()
    for section, key in PATH_FIELDS:
        value = data[section].get(key)
        if not value:
            continue
        try:
            path = Path(value).expanduser()
            data[section][key] = str(
                path if path.is_absolute() else (Path(base_dir) / path).resolve()
            )
        except (RuntimeError, ValueError, OSError) as exc:  # ~unknown_user, a NUL byte, ...
            raise ConfigError(f"{section}.{key}={value!r} is not a usable path ({exc})") from None
    return Config.from_dict(data)


def load_validation_data(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read validation records (JSONL); each needs ``instruction`` and ``output``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"validation data file not found: {path} (rl_tuning.validation_data_path)"
        )
    try:
        rows = read_jsonl(path)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"validation data file {path} is not UTF-8 text (byte {exc.start}); expected JSON Lines"
        ) from None
    if not rows:
        raise ConfigError(f"validation data file {path} holds no records")
    for i, row in enumerate(rows, start=1):
        missing = [k for k in ("instruction", "output") if k not in row]
        if missing:
            raise ConfigError(f"{path}:{i}: validation record lacks {missing}")
        if row.get("input") is None:
            row["input"] = ""
        for key in ("instruction", "input", "output"):
            # Targets compare and tokenise these as text; a number or list would fail later,
            # inside the user's target, with no file named.
            if not isinstance(row[key], str):
                raise ConfigError(
                    f"{path}:{i}: {key!r} must be a string, got "
                    f"{type(row[key]).__name__} {row[key]!r}"
                )
    return rows


def load_target_file(
    path: str | os.PathLike, validation_dataset: Sequence[dict[str, Any]] | None = None
) -> TargetModel:
    """Import the user's target file and return its target model (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"target model file not found: {path} (rl_tuning.target_model_path)"
        )
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    name = f"datagen_user_target_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetFileError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up there
    sys.path.insert(0, str(path.parent.resolve()))  # let it import its sibling files
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise TargetFileError(
            f"importing target file {path} failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        try:
            sys.path.remove(str(path.parent.resolve()))
        except ValueError:
            pass
    factory = getattr(module, "make_target_model", None)
    if factory is not None:
        if not callable(factory):
            raise TargetFileError(f"{path}: make_target_model is not a function")
        try:
            target = factory(list(validation_dataset) if validation_dataset is not None else None)
        except Exception as exc:
            raise TargetFileError(
                f"{path}: make_target_model(validation_dataset) raised {type(exc).__name__}: {exc}"
            ) from exc
    elif hasattr(module, "target_model"):
        target = module.target_model
    else:
        raise TargetFileError(
            f"{path} defines neither `target_model(records) -> dict` nor "
            f"`make_target_model(validation_dataset)`"
        )
    if not callable(target):
        raise TargetFileError(
            f"{path}: the target model is a {type(target).__name__}, not a "
            f"function `target_model(records) -> dict`"
        )
    return target


def load_user_task(
    config: Config,
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """The validation records and the seed tasks split off them (see :func:`build_target`)."""
    from datagen_gym.task import split_seed_records, uses_task_seeds

    rl = config.rl_tuning
    validation = load_validation_data(rl.validation_data_path) if rl.validation_data_path else None
    if validation is None or not uses_task_seeds(config) or config.generation.seed_tasks_path:
        return validation, None
    try:
        seeds, validation = split_seed_records(validation, config.generation.num_seed_records)
    except ValueError as exc:
        raise ConfigError(f"{rl.validation_data_path}: {exc}") from None
    return validation, seeds


def build_target(
    config: Config,
) -> tuple[TargetModel | None, list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """The target model, validation data and seed tasks a config names (``(None, None, None)``:
    the built-in target, whose seeds the env picks).

    When generation follows the user's task (``generation.task_mode``, see
    :mod:`datagen_gym.task`) and no ``generation.seed_tasks_path`` is given, a few seed tasks
    are split off the validation file first (:func:`~datagen_gym.task.split_seed_records`):
    the target is built on, and scores, the rest only, so no seed is ever scored."""
    validation, seeds = load_user_task(config)
    if config.rl_tuning.target_model_path:
        return load_target_file(config.rl_tuning.target_model_path, validation), validation, seeds
    if validation is not None:
        from datagen_gym.targets import SklearnClassifierTarget

        return SklearnClassifierTarget(validation), validation, seeds
    return None, None, None
