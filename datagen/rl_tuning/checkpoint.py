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
#: Config fields a resumed run may change: how the teacher is reached, not what it generates.
#: Everything else (seed, templates, sizes, ...) would change the results.
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

#: Fields a checkpoint records but never supplies. Each chooses code to import (the target
#: file, a local model directory), a file to read or write, a backend, a host to contact or an
#: environment variable to read, so a checkpoint from someone else could turn it into a program
#: or a connection. A resumed run (and ``datagen generate --checkpoint``) takes them from its
#: own invocation (``--config`` / ``--set``, or ``config_changes``), the defaults where that
#: names none; the saved values are only compared with them.
INVOCATION_FIELDS = (
    ("rl_tuning", "target_model_path"),
    ("rl_tuning", "validation_data_path"),
    ("rl_tuning", "replay_cache"),
    ("generation", "seed_tasks_path"),
    ("sampling", "backend"),
    ("sampling", "teacher"),
    ("sampling", "model_path"),
    ("sampling", "base_url"),
    ("sampling", "model"),
    ("sampling", "api_key_env"),
)
#: File fields a resume may point elsewhere (a moved run or project): the command's file is the
#: one read; setting or clearing one would change the results and is refused.
FILE_FIELDS = frozenset(
    {
        ("rl_tuning", "target_model_path"),
        ("rl_tuning", "validation_data_path"),
        ("rl_tuning", "replay_cache"),
        ("generation", "seed_tasks_path"),
    }
)
#: The fields of :data:`INVOCATION_FIELDS` that choose the teacher and how it is reached.
CONNECTION_FIELDS = frozenset(f for f in INVOCATION_FIELDS if f[0] == "sampling")


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
    try:
        state["config"] = Config.from_dict(state["config"]).to_dict()
    except ConfigError as exc:
        raise CheckpointError(f"{file}: its config is invalid: {exc}") from None
    _check_positions(file, state)
    return state


#: The most steps, episodes or learn calls a checkpoint may count (a run is far shorter; a
#: larger number is a tampered or corrupt file, not a long run).
MAX_COUNT = 10**9


def _check_positions(file: Path, state: dict[str, Any]) -> None:
    """Counters, env position, generator settings and history must describe one real run:
    the numbers a resume trusts (ranges, counts that agree with each other), so a tampered
    file fails here, before any step, instead of half-way through a resumed run."""
    from datagen_gym.generators import prompts
    from datagen_gym.sampler import TEMPERATURE_RANGE, TOP_P_RANGE

    def bad(where: str, value: Any, expected: str) -> CheckpointError:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return CheckpointError(f"{file}: {where}={shown}; expected {expected}")

    history, counters, env = state["history"], state["counters"], state["env"]
    for key in ("steps_done", "total_planned", "learn_calls"):
        if not 0 <= counters[key] <= MAX_COUNT:
            raise bad(f"counters.{key}", counters[key], f"an integer in [0, {MAX_COUNT}]")
    if counters["steps_done"] != len(history):
        raise CheckpointError(
            f"{file}: counters.steps_done={counters['steps_done']} does not "
            f"match the {len(history)} history entries"
        )
    steps = counters["steps_done"]
    if not 0 <= env["episode"] <= steps + 1:
        raise bad("env.episode", env["episode"], f"an integer in [0, {steps + 1}] (steps + 1)")
    num_iterations = state["config"]["rl_tuning"]["num_iterations"]
    if not 0 <= env["episode_step"] <= num_iterations or env["episode_step"] != len(env["actions"]):
        raise bad(
            "env.episode_step",
            env["episode_step"],
            f"the number of env.actions ({len(env['actions'])}), at most "
            f"rl_tuning.num_iterations ({num_iterations})",
        )
    ranges = {"temperature": TEMPERATURE_RANGE, "top_p": TOP_P_RANGE}
    for key, (lo, hi) in ranges.items():
        value = state["generator"][key]
        if not lo <= value <= hi:
            raise bad(f"generator.{key}", value, f"a number in [{lo}, {hi}]")
    if not _finite_or_none(state["baseline_metric"]):
        raise bad("baseline_metric", state["baseline_metric"], "a finite number or null")
    for i, entry in enumerate(history):
        problem = _history_problem(entry, i + 1, ranges, prompts.TEMPLATE_NAMES, num_iterations)
        if problem is not None:
            raise CheckpointError(f"{file}: history[{i}] {problem}")
        if i and entry["episode"] < history[i - 1]["episode"]:
            raise CheckpointError(f"{file}: history[{i}].episode goes back from the step before")
    if history and history[-1]["episode"] > env["episode"]:
        raise bad("env.episode", env["episode"], "at least the last history entry's episode")
    best = state["best"]
    if best is not None and (best not in history or best["metric"] is None):
        raise CheckpointError(f"{file}: 'best' is not one of the scored history entries")


#: What :meth:`RLTuner.load` and the outputs read of every history entry, and its JSON types.
_NUMBER = (int, float)
_HISTORY_TYPES: dict[str, tuple[type, ...]] = {
    "iteration": (int,),
    "episode": (int,),
    "episode_step": (int,),
    "temperature": _NUMBER,
    "top_p": _NUMBER,
    "template": (str,),
    "focus": (str, type(None)),
    "metric": (*_NUMBER, type(None)),
    "test_metric": (*_NUMBER, type(None)),
    "reward": _NUMBER,
    "best_metric": (*_NUMBER, type(None)),
    "baseline_metric": (*_NUMBER, type(None)),
    "metrics": (dict,),
    "all_filtered": (bool,),
}


def _finite_or_none(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _history_problem(
    entry: Any,
    iteration: int,
    ranges: dict[str, tuple[float, float]],
    templates: Any,
    num_iterations: int,
) -> str | None:
    """What is wrong with one history entry (None: nothing)."""
    if not isinstance(entry, dict):
        return "is not an object"
    for key, types in _HISTORY_TYPES.items():
        if key not in entry:
            return f"lacks the key {key!r}"
        value = entry[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"{key} has the wrong type ({type(value).__name__})"
        if isinstance(value, float) and not np.isfinite(value):
            return f"{key} is not finite"
    if entry["iteration"] != iteration:
        return f"iteration={entry['iteration']!r}; expected {iteration} (the entries in order)"
    if not 1 <= entry["episode"] <= iteration:
        return f"episode={entry['episode']!r}; expected an integer in [1, {iteration}]"
    if not 1 <= entry["episode_step"] <= num_iterations:
        return f"episode_step={entry['episode_step']!r}; expected [1, {num_iterations}]"
    for key, (lo, hi) in ranges.items():
        if not lo <= entry[key] <= hi:
            return f"{key}={entry[key]!r}; expected a number in [{lo}, {hi}]"
    if entry["template"] not in templates:
        return f"template {entry['template'][:40]!r} is not a template of this version"
    return None


def _check_section(file: Path, name: str, value: dict[str, Any], spec: dict[str, Any]) -> None:
    for key, types in spec.items():
        if key not in value:
            raise CheckpointError(f"{file}: {name!r} lacks the key {key!r}")
        item = value[key]
        if not isinstance(item, types) or (isinstance(item, bool) and types is not bool):
            raise CheckpointError(
                f"{file}: {name}.{key} has the wrong type ({type(item).__name__})"
            )


class MissingInvocationSettings(ConfigError):
    """A run needs settings that a checkpoint may record but never supply
    (:data:`INVOCATION_FIELDS`); the message names the fields and the options to pass."""


def config_from_checkpoint(
    saved: Config, supplied: dict[str, dict[str, Any]] | None, *, source: str = "the checkpoint"
) -> tuple[Config, list[tuple[str, str, Any, Any]]]:
    """``saved`` with every :data:`INVOCATION_FIELDS` field taken from ``supplied`` (what this
    invocation names), the default where it names none: a checkpoint never picks code, files,
    hosts or environment variables.

    Returns the config and the ``(section, key, new, saved)`` fields whose value differs from the
    saved run's. A field the saved run set (not the default) that ``supplied`` does not name
    raises :class:`MissingInvocationSettings`, one line naming the options to pass.
    """
    supplied = supplied or {}
    defaults = Config().to_dict()
    data = saved.to_dict()
    missing, differing = [], []
    # The teacher is one choice: naming any of its fields makes it the command's whole teacher
    # (``--set sampling.backend=embedded`` alone replaces a saved server).
    teacher_named = any((s, k) in CONNECTION_FIELDS for s, keys in supplied.items() for k in keys)
    for section, key in INVOCATION_FIELDS:
        old = data[section][key]
        named = key in supplied.get(section, {})
        if teacher_named and (section, key) in CONNECTION_FIELDS:
            named = True
            new = supplied.get(section, {}).get(key, defaults[section][key])
            if new != old:
                differing.append((section, key, new, old))
            data[section][key] = new
            continue
        new = supplied[section][key] if named else defaults[section][key]
        if not named and old != new:
            missing.append(f"{section}.{key}")
        elif new != old:
            differing.append((section, key, new, old))
        data[section][key] = new
    if missing:
        sets = " ".join(f"--set {name}=..." for name in missing)
        raise MissingInvocationSettings(
            f"{source} was made with {', '.join(missing)} set; a checkpoint never chooses code "
            f"to import, a file to open, a host to contact or an environment variable to read, "
            f"so pass them with this command: --config FILE (the run's config) or {sets}"
        )
    try:
        return Config.from_dict(data), differing
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def resume_config(
    saved: Config, changes: dict[str, dict[str, Any]] | None
) -> tuple[Config, list[str]]:
    """The config of a resumed run: ``saved`` (a checkpoint's config), with the
    :data:`INVOCATION_FIELDS` taken from ``changes`` (see :func:`config_from_checkpoint`) and the
    other ``changes`` (``{"sampling": {"timeout_s": 120}}``) applied.

    Returns the new config and what changed, as ``"sampling.base_url=new (was old)"``. Changes of
    fields outside :data:`RESUME_SAFE_FIELDS` raise ``ValueError`` naming them: a resumed run
    must produce what the uninterrupted one would have.
    """
    changes = changes or {}
    current = saved.to_dict()
    for section, values in changes.items():
        if section not in current:
            raise ConfigError(
                f"unknown config section {section!r}; valid sections: {sorted(current)}"
            )
        for key in values:
            if key not in current[section]:
                raise ConfigError(
                    f"unknown key '{section}.{key}' in section '{section}'; "
                    f"valid keys: {sorted(current[section])}"
                )
    invocation = set(INVOCATION_FIELDS)
    base, differing = config_from_checkpoint(saved, changes, source="the run being resumed")
    applied: list[tuple[str, str, Any, Any]] = []
    refused: list[str] = []
    for section, key, value, old in differing:
        moved = (section, key) in FILE_FIELDS and bool(value) and bool(old)
        if moved or (section, key) in RESUME_SAFE_FIELDS:
            applied.append((section, key, value, old))
        else:
            refused.append(f"{section}.{key} ({old!r} -> {value!r})")
    for section, values in changes.items():
        for key, value in values.items():
            old = current[section][key]
            if (section, key) in invocation or value == old:
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
    others = [a for a in applied if (a[0], a[1]) not in invocation]
    new = base
    if others:
        try:
            new = base.replace(
                **{s: {k: v for s2, k, v, _ in others if s2 == s} for s in {a[0] for a in others}}
            )
        except (TypeError, OverflowError) as exc:  # e.g. an int too large for a float field
            names = ", ".join(f"{s}.{k}" for s, k, _, _ in others)
            raise ConfigError(f"{names}: not a valid value ({exc})") from None
    return new, [f"{s}.{k}={v!r} (was {old!r})" for s, k, v, old in applied]
