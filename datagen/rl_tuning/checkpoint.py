"""An RLTuner checkpoint on disk: where it is, what ``tuner.json`` must hold, and which config
changes a resumed run may make. Everything here is plain JSON; nothing is unpickled."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from datagen_gym.atomic_io import CheckpointError, read_json_object
from datagen_gym.config import Config, ConfigError

PathLike = str | os.PathLike

TUNER_FILE = "tuner.json"
AGENT_DIR = "agent"
FORMAT_VERSION = 1
#: Config fields a resumed run may change: where and how the teacher is reached, not what it
#: generates. Everything else (seed, templates, target, sizes, ...) would change the results.
RESUME_SAFE_FIELDS = frozenset(
    {
        ("sampling", "base_url"),
        ("sampling", "model"),
        ("sampling", "api_key_env"),
        ("sampling", "max_concurrency"),
        ("sampling", "timeout_s"),
        ("sampling", "max_retries"),
        ("sampling", "num_threads"),
        ("rl_tuning", "enable_rl_tuning"),
    }
)


_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _jsonable(value: Any) -> Any:
    """Plain JSON types; NaN / inf become ``None`` (strict JSON has no spelling for them)."""
    from datagen_gym.atomic_io import to_jsonable

    return to_jsonable(value)


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return _jsonable(rng.bit_generator.state)


def _rng_from_state(state: dict[str, Any]) -> np.random.Generator:
    # The name comes from a file: only numpy's bit generators, never any other attribute.
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown bit generator {name!r}")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


_GENERATOR_KEYS = {"temperature": (int, float), "top_p": (int, float), "template": str}


_COUNTER_KEYS = {"steps_done": int, "total_planned": int, "learn_calls": int}


_ENV_KEYS = {
    "episode": int,
    "episode_step": int,
    "episode_done": bool,
    "reset_done": bool,
    "episode_seed": (int, type(None)),
    "episode_rng_state": (dict, type(None)),
    "rng_state": dict,
    "actions": list,
}


def checkpoint_path(path: PathLike) -> Path:
    """The directory :meth:`RLTuner.load` reads for ``path``.

    Normally ``path`` itself; if a crash fell between the two renames of a save, ``path`` is
    missing and the previous checkpoint sits in a ``.<name>.old-*`` sibling, which is returned.
    """
    path = Path(path)
    if (path / TUNER_FILE).is_file():
        return path
    backups = sorted(
        (p for p in path.parent.glob(f".{path.name}.old-*") if (p / TUNER_FILE).is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    if backups and not path.exists():
        return backups[-1]
    raise FileNotFoundError(f"no RLTuner checkpoint at {path} (expected {path / TUNER_FILE})")


#: tuner.json's keys and JSON types (the structure :meth:`RLTuner.load` relies on).
_STATE_KEYS: dict[str, Any] = {
    "format_version": int,
    "config": dict,
    "algorithm": str,
    "agent": dict,
    "history": list,
    "best": (dict, type(None)),
    "baseline_metric": (int, float, type(None)),
    "generator": dict,
    "counters": dict,
    "env": dict,
}


def read_state(path: PathLike) -> dict[str, Any]:
    """The validated ``tuner.json`` of the checkpoint directory ``path``.

    Raises :class:`CheckpointError` naming the file and the first thing wrong (not JSON, a
    missing key, a wrong type, another format version, an invalid config), so a truncated or
    foreign file never surfaces as a ``KeyError`` deep in :meth:`RLTuner.load`.
    """

    file = Path(path) / TUNER_FILE
    state = read_json_object(file, {"format_version": (int, float, str, type(None))})
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{file} has format_version {state['format_version']!r}; this "
            f"version of datagen-gym reads {FORMAT_VERSION}"
        )
    read_json_object(file, _STATE_KEYS)  # key presence and types, one message per problem
    for key, spec in (
        ("generator", _GENERATOR_KEYS),
        ("counters", _COUNTER_KEYS),
        ("env", _ENV_KEYS),
    ):
        _check_section(file, key, state[key], spec)
    if not all(isinstance(h, dict) for h in state["history"]):
        raise CheckpointError(f"{file}: 'history' must be a list of objects")
    counters = state["counters"]
    if not 0 <= counters["steps_done"] == len(state["history"]) or counters["total_planned"] < 0:
        raise CheckpointError(
            f"{file}: counters.steps_done={counters['steps_done']} does not "
            f"match the {len(state['history'])} history entries"
        )
    try:
        state["config"] = Config.from_dict(state["config"]).to_dict()
    except ConfigError as exc:
        raise CheckpointError(f"{file}: its config is invalid: {exc}") from None
    return state


def _check_section(file: Path, name: str, value: dict[str, Any], spec: dict[str, Any]) -> None:
    for key, types in spec.items():
        if key not in value:
            raise CheckpointError(f"{file}: {name!r} lacks the key {key!r}")
        item = value[key]
        if not isinstance(item, types) or (isinstance(item, bool) and types is not bool):
            raise CheckpointError(
                f"{file}: {name}.{key} has the wrong type ({type(item).__name__})"
            )


def resume_config(
    saved: Config, changes: dict[str, dict[str, Any]] | None
) -> tuple[Config, list[str]]:
    """``saved`` with ``changes`` (``{"sampling": {"base_url": ...}}``) applied for a resume.

    Returns the new config and what changed, as ``"sampling.base_url=new (was old)"``. Fields
    outside :data:`RESUME_SAFE_FIELDS` whose value differs raise ``ValueError`` naming them: a
    resumed run must produce what the uninterrupted one would have.
    """
    if not changes:
        return saved, []
    current = saved.to_dict()
    refused, applied = [], []
    for section, values in changes.items():
        if section not in current:
            raise ConfigError(
                f"unknown config section {section!r}; valid sections: {sorted(current)}"
            )
        for key, value in values.items():
            if key not in current[section]:
                raise ConfigError(
                    f"unknown key '{section}.{key}' in section '{section}'; "
                    f"valid keys: {sorted(current[section])}"
                )
            old = current[section][key]
            if value == old:
                continue
            if (section, key) in RESUME_SAFE_FIELDS:
                applied.append((section, key, value, old))
            else:
                refused.append(f"{section}.{key} ({old!r} -> {value!r})")
    if refused:
        safe = ", ".join(sorted(f"{s}.{k}" for s, k in RESUME_SAFE_FIELDS))
        raise ValueError(
            f"a resumed run cannot change {', '.join(refused)}: that would change "
            f"its results; start a new run (another --output) instead. A resume "
            f"may change the run length and {safe}"
        )
    if not applied:
        return saved, []
    try:
        new = saved.replace(
            **{s: {k: v for s2, k, v, _ in applied if s2 == s} for s in {a[0] for a in applied}}
        )
    except (TypeError, OverflowError) as exc:  # e.g. an int too large for a float field
        names = ", ".join(f"{s}.{k}" for s, k, _, _ in applied)
        raise ConfigError(f"{names}: not a valid value ({exc})") from None
    return new, [f"{s}.{k}={v!r} (was {old!r})" for s, k, v, old in applied]
