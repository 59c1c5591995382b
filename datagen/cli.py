"""The ``datagen`` command line: RL-tune generation settings, or generate with fixed ones.

::

    datagen rl-tune [--config FILE] [--algo NAME] [--timesteps N] [--tensorboard DIR]
                    [--output DIR] [--checkpoint-every K] [--resume | --overwrite]
                    [--set SECTION.KEY=VALUE ...] [--n N]
    datagen generate [--config FILE] [--checkpoint DIR] [--n N] [--temperature T] [--top-p P]
                     [--template NAME] [--seed S] [--timesteps N]
                     [--layout alpaca|messages] --output FILE.jsonl|FILE.parquet

``rl_tune`` is accepted as an alias of ``rl-tune``. ``python -m datagen.cli`` works too.
Relative paths inside a config file are taken relative to the config file's directory.

Exit codes: 0 success, 2 bad usage / config / input files / output paths / checkpoints, 1 a
failure while running (the target model raised, the backend failed), 130 interrupted. Errors
are one line on stderr, ``datagen: error: ...``, naming the option, file or component; set
``DATAGEN_DEBUG=1`` to get the traceback instead.

``rl-tune`` checks its output and TensorBoard directories before the first step, holds the
output directory's lock for the whole run (a second run on it is refused, naming the holder),
refuses to replace a previous run's checkpoint unless ``--overwrite``, and when a run fails or
is interrupted part-way still writes ``history.jsonl`` and ``summary.json`` (``"complete":
false``) for the finished steps, plus the records generated since the last checkpoint (and the
final dataset's records so far), then says how to resume.

A checkpoint is data: on ``--resume`` and ``generate --checkpoint`` the target file, the data
files and the teacher's connection (:data:`~datagen.rl_tuning.checkpoint.INVOCATION_FIELDS`)
come from this command's ``--config`` / ``--set``, never from the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROG = "datagen"
DEFAULT_OUTPUT = "rl_tune_output"
DEFAULT_TENSORBOARD = "runs"
CHECKPOINT_DIR = "checkpoint"
#: Records generated after the last checkpoint of a failed run (a resume redoes those steps).
UNSAVED_RECORDS_FILE = "generated_since_checkpoint.jsonl"
#: What ``--overwrite`` removes from the output directory: one run's outputs.
RUN_OUTPUTS = ("data.jsonl", "history.jsonl", "summary.json", UNSAVED_RECORDS_FILE)


class CLIError(Exception):
    """An error to report as one line, with the exit code to return."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one ``datagen: error:`` line (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(f"{message} (see '{self.prog} --help')", 2)


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The ``datagen`` argument parser (subcommands ``rl-tune`` and ``generate``)."""
    parser = _Parser(
        prog=PROG,
        description="Synthetic instruction data generation, tuned by "
        "reinforcement learning for your target model.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    tune = sub.add_parser(
        "rl-tune",
        aliases=["rl_tune"],
        help="learn the generation settings that make the target model best",
        description="Train an RL agent (random search, REINFORCE, PPO, DQN, ...) to choose the "
        "teacher's temperature, top_p and prompt template; then generate a dataset "
        "with the best settings found.",
    )
    tune.add_argument(
        "--config",
        metavar="FILE",
        help="YAML config (default: the embedded default task and target)",
    )
    tune.add_argument(
        "--algo",
        metavar="NAME",
        help="agent: random_search, reinforce, ppo, a2c, dqn, ... "
        "(default: rl_tuning.rl_algorithm)",
    )
    tune.add_argument(
        "--timesteps",
        type=_positive_int,
        metavar="N",
        help="total env steps of the run (default: one episode for random "
        "search, 20 episodes for learning agents)",
    )
    tune.add_argument(
        "--num-iterations",
        type=_positive_int,
        metavar="N",
        help="episode length (overrides rl_tuning.num_iterations)",
    )
    tune.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="records generated per step (overrides rl_tuning.batch_size)",
    )
    tune.add_argument("--seed", type=int, metavar="S", help="overrides rl_tuning.seed")
    tune.add_argument(
        "--tensorboard",
        metavar="DIR",
        default=DEFAULT_TENSORBOARD,
        help=f"TensorBoard log root (default: {DEFAULT_TENSORBOARD})",
    )
    tune.add_argument("--no-tensorboard", action="store_true", help="do not log to TensorBoard")
    tune.add_argument(
        "--output",
        metavar="DIR",
        default=DEFAULT_OUTPUT,
        help=f"output directory: data.jsonl, checkpoint/, history.jsonl, "
        f"summary.json (default: {DEFAULT_OUTPUT})",
    )
    tune.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        metavar="K",
        help="steps between checkpoints (default: one episode)",
    )
    tune.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUTPUT/checkpoint if it exists; pass the run's --config (or its "
        "--set / --replay) again: a checkpoint never supplies the target, files or teacher "
        "connection. --timesteps, --checkpoint-every, --n and connection settings (--set "
        "sampling.base_url=...) may change, settings that change results may not",
    )
    tune.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in OUTPUT (its checkpoint and outputs)",
    )
    tune.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        dest="set_fields",
        type=_assignment,
        help="set a config field (YAML value), e.g. --set "
        "sampling.base_url=http://host:8000/v1; repeatable",
    )
    tune.add_argument(
        "--replay",
        metavar="CACHE",
        help="replay tier: answer generation from this replay cache (misses are "
        "generated live and stored); same as --set "
        "rl_tuning.replay_cache=CACHE",
    )
    tune.add_argument(
        "--n",
        type=_positive_int,
        metavar="N",
        help="records in the final data.jsonl (default: batch_size * num_iterations)",
    )
    tune.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    tune.set_defaults(func=cmd_rl_tune)

    gen = sub.add_parser(
        "generate",
        help="generate a dataset with fixed settings",
        description="Generate records with fixed sampling settings, template and focus: those "
        "of a tuning checkpoint with --checkpoint; else, when the config sets "
        "rl_tuning.enable_rl_tuning, the best ones of a tuning run done first "
        "(rl_tuning section: algorithm, target, budget); else the config's.",
    )
    gen.add_argument("--config", metavar="FILE", help="YAML config (default: embedded default)")
    gen.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="an rl-tune checkpoint: start from its best settings (and its config "
        "when --config is not given)",
    )
    gen.add_argument(
        "--n",
        type=_positive_int,
        metavar="N",
        help="number of records (default: rl_tuning.batch_size)",
    )
    gen.add_argument("--temperature", type=float, metavar="T")
    gen.add_argument("--top-p", type=float, metavar="P")
    gen.add_argument(
        "--template", metavar="NAME", help="prompt template name (e.g. self_instruct, evol_deepen)"
    )
    gen.add_argument(
        "--seed", type=int, metavar="S", help="generation seed (default: rl_tuning.seed or 0)"
    )
    gen.add_argument(
        "--timesteps",
        type=_positive_int,
        metavar="N",
        help="target evaluations of the tuning run that rl_tuning.enable_rl_tuning "
        "asks for (default: as rl-tune)",
    )
    gen.add_argument(
        "--output",
        metavar="FILE",
        required=True,
        help="output file; its suffix picks the format: .jsonl (JSON Lines) or "
        ".parquet (needs the 'hf' extra: pip install \"datagen-gym[hf]\")",
    )
    gen.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        dest="set_fields",
        type=_assignment,
        help="set a config field (YAML value); with --checkpoint and no --config, the "
        "teacher's connection (sampling.backend, sampling.base_url, ...) and the files "
        "the run used, which a checkpoint never supplies; repeatable",
    )
    gen.add_argument(
        "--layout",
        choices=("alpaca", "messages"),
        default="alpaca",
        help="record layout: alpaca (instruction, input, output columns) or "
        "messages (TRL's chat format: user and assistant turns); both keep "
        "the metadata columns (default: alpaca)",
    )
    gen.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    gen.set_defaults(func=cmd_generate)

    build = sub.add_parser(
        "replay-build",
        add_help=False,
        help="fill a replay cache with real teacher batches for a grid of settings",
        description="python -m datagen_gym.replay.build; see `datagen replay-build --help`.",
    )
    build.add_argument("build_args", nargs=argparse.REMAINDER)
    build.set_defaults(func=cmd_replay_build)
    return parser


def _assignment(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` -> ``(section, key, value)``, the value parsed as YAML."""
    import yaml

    from datagen_gym.config import load_yaml

    name, sep, raw = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise argparse.ArgumentTypeError(
            f"expected SECTION.KEY=VALUE (e.g. sampling.base_url=http://host:8000/v1), got {text!r}"
        )
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # not YAML: take it as a string
    return section, key, value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# ---------------------------------------------------------------------------- shared pieces
def load_config(path: str | None) -> Any:
    """The config of ``--config`` (relative paths resolved against its directory)."""
    from datagen.rl_tuning import resolve_config_paths
    from datagen_gym.config import Config, ConfigError

    if path is None:
        return Config()
    try:
        config = Config.load(path)
    except ConfigError:
        raise
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        # Config's checks assume string keys and float-sized numbers; YAML allows more.
        raise ConfigError(
            f"config file {path} is not a valid config: {type(exc).__name__}: {_one_line(exc)}"
        ) from None
    return resolve_config_paths(config, Path(path).resolve().parent)


def _override(config: Any, **rl_changes: Any) -> Any:
    changes = {k: v for k, v in rl_changes.items() if v is not None}
    return config.replace(rl_tuning=changes) if changes else config


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _write_json(path: Path, obj: Any) -> None:
    from datagen_gym.atomic_io import atomic_write_json

    atomic_write_json(path, obj)


def _sections(assignments: Sequence[tuple[str, str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for section, key, value in assignments:
        out.setdefault(section, {})[key] = value
    return out


def _absolute_paths(sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``--set`` file paths made absolute (relative to the current directory), as a config
    file's are made absolute relative to it: the saved config must work from anywhere."""
    from datagen.rl_tuning.user_target import PATH_FIELDS
    from datagen_gym.config import ConfigError

    for section, key in PATH_FIELDS:
        value = sections.get(section, {}).get(key)
        if isinstance(value, str) and value:
            try:
                sections[section][key] = str(Path(value).expanduser().resolve())
            except (RuntimeError, ValueError, OSError) as exc:
                raise ConfigError(
                    f"--set {section}.{key}={value!r} is not a usable path ({exc})"
                ) from None
    return sections


def _check_writable_dir(option: str, path: Path) -> None:
    """Create ``path`` if needed and prove it writable, or raise a one-line usage error.

    Run before the first env step: a bad ``--output`` / ``--tensorboard`` must not cost a run.
    """
    from datagen_gym.atomic_io import ensure_writable_dir

    try:
        ensure_writable_dir(path)
    except NotADirectoryError as exc:
        raise CLIError(f"{option} {path}: {exc.strerror} (or lies under a file)", 2) from exc
    except OSError as exc:
        raise CLIError(
            f"{option} {path}: cannot create or write to the directory ({exc.strerror or exc})", 2
        ) from exc


def _existing_run(ckpt_dir: Path) -> str | None:
    """A description of the checkpoint in ``ckpt_dir``, or None if there is none."""
    from datagen.rl_tuning.checkpoint import checkpoint_path, read_state

    try:
        found = checkpoint_path(ckpt_dir)
    except FileNotFoundError:
        return None
    try:
        state = read_state(found)
        return f"{found}, {state['counters']['steps_done']} steps of {state['algorithm']}"
    except ValueError:
        return f"{found}, unreadable"


def _remove_previous_run(output: Path, ckpt_dir: Path) -> None:
    """``--overwrite``: delete the previous run's checkpoint and outputs (nothing else)."""
    for stale in [ckpt_dir, *output.glob(f".{ckpt_dir.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    for name in RUN_OUTPUTS:
        (output / name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- rl-tune
def cmd_rl_tune(args: argparse.Namespace) -> int:
    """``datagen rl-tune``: train, checkpoint, generate the final dataset, summarise."""
    output = Path(args.output)
    ckpt_dir = output / CHECKPOINT_DIR
    tensorboard = None if args.no_tensorboard else args.tensorboard
    if args.resume and args.overwrite:
        raise CLIError(
            "--resume and --overwrite exclude each other: continue the run in "
            f"{output}, or replace it",
            2,
        )

    # ---- paths first: nothing below may run into a bad output path after a long run
    _check_writable_dir("--output", output)
    if tensorboard is not None:
        _check_writable_dir("--tensorboard", Path(tensorboard))
    # ---- one run per output directory, taken before anything of the run is written
    from datagen.run_lock import OutputInUse, RunLock
    from datagen_gym.atomic_io import remove_stale_temps

    lock = RunLock(output)
    try:
        lock.acquire()
    except OutputInUse as exc:
        raise CLIError(str(exc), 2) from None
    try:
        # Temporary files of a run that was killed mid-write: no writer is left (we hold the
        # lock), so they are garbage now.
        remove_stale_temps(output)
        return _rl_tune_locked(args, output, ckpt_dir, tensorboard)
    finally:
        lock.release()


def _rl_tune_locked(
    args: argparse.Namespace, output: Path, ckpt_dir: Path, tensorboard: str | None
) -> int:
    """``rl-tune`` once this process holds the output directory."""
    from datagen.rl_tuning import RLTuner, build_target, check_algorithm
    from datagen.rl_tuning.checkpoint import checkpoint_path, read_state, resume_config
    from datagen_gym.backends.base import BackendError
    from datagen_gym.config import Config
    from datagen_gym.replay.cache import ReplayCacheError

    previous = _existing_run(ckpt_dir)
    resume_from = None
    if args.resume:
        if previous is None:
            print(f"{PROG}: no checkpoint in {ckpt_dir}; starting a new run", file=sys.stderr)
        else:
            resume_from = checkpoint_path(ckpt_dir)
    elif previous is not None and not args.overwrite:
        raise CLIError(
            f"--output {output} already holds a run ({previous}); add --resume to "
            f"continue it or --overwrite to replace it",
            2,
        )

    # ---- setup: every failure here is a usage / input error (exit code 2)
    applied: list[str] = []
    if args.replay:
        args.set_fields.append(("rl_tuning", "replay_cache", args.replay))
    try:
        requested = _absolute_paths(_sections(args.set_fields))
        if resume_from is not None:
            saved = Config.from_dict(read_state(resume_from)["config"])
            # What the command line asks for, in the same form as for a new run; only the
            # fields it names are compared with the saved run (resume_config refuses those
            # that would change the results).
            if args.config:
                requested = _merge(load_config(args.config).to_dict(), requested)
            flags = {
                "rl_algorithm": args.algo and check_algorithm(args.algo),
                "seed": args.seed,
                "batch_size": args.batch_size,
                "num_iterations": args.num_iterations,
            }
            requested.setdefault("rl_tuning", {}).update(
                {k: v for k, v in flags.items() if v is not None}
            )
            config, applied = resume_config(saved, requested)
        else:
            config = load_config(args.config)
            algo = (
                check_algorithm(args.algo)
                if args.algo
                else check_algorithm(config.rl_tuning.rl_algorithm)
            )
            if requested:
                config = _replace(config, requested)
            config = _override(
                config,
                rl_algorithm=algo,
                seed=args.seed,
                batch_size=args.batch_size,
                num_iterations=args.num_iterations,
            )
        target, validation, seeds = build_target(config)
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError) as exc:
        raise CLIError(str(exc), 2) from exc

    if previous is not None and resume_from is None:
        _remove_previous_run(output, ckpt_dir)
        print(f"{PROG}: --overwrite: removed the previous run ({previous})", file=sys.stderr)
    try:
        if resume_from is not None:
            tuner = RLTuner.load(
                resume_from, target, validation, config_changes=requested, seed_tasks=seeds
            )
        else:
            tuner = RLTuner(config, target, validation, seed_tasks=seeds)
    except BackendError as exc:
        raise CLIError(f"{_component(exc, config)} failed while starting: {exc}", 1) from exc
    except (ValueError, TypeError, FileNotFoundError, ReplayCacheError) as exc:
        raise CLIError(str(exc), 2) from exc

    # ---- training
    every = args.checkpoint_every or tuner.num_iterations
    if resume_from is None:
        total: int | None = args.timesteps or tuner.default_timesteps()
    else:
        total = _resume_budget(args, tuner, resume_from, applied)
    resume_cmd = _resume_command(args)
    if total != 0:
        try:
            tuner.train(
                total_timesteps=total,
                tensorboard_log=tensorboard,
                checkpoint_dir=ckpt_dir,
                checkpoint_every=every,
                progress=not args.no_progress,
            )
        except KeyboardInterrupt:
            print(
                f"{PROG}: {_write_partial(tuner, output, ckpt_dir, 'interrupted', resume_cmd)}",
                file=sys.stderr,
            )
            raise
        except Exception as exc:  # noqa: BLE001 - report which component failed, keep the work
            where = f"{_component(exc, tuner.config)} failed at step {tuner.steps_done + 1}"
            message = f"{where}: {type(exc).__name__}: {_one_line(exc)}"
            code = 2 if isinstance(exc, ReplayCacheError) else 1  # an unreadable file, as elsewhere
            line = _write_partial(tuner, output, ckpt_dir, message, resume_cmd)
            raise CLIError(line, code) from exc
    elif resume_from is not None and Path(resume_from) != ckpt_dir:
        tuner.save(ckpt_dir)

    # ---- outputs
    n = args.n or tuner.batch_size * tuner.num_iterations
    data_path, history_path = output / "data.jsonl", output / "history.jsonl"
    from datagen_gym.atomic_io import atomic_write_jsonl

    atomic_write_jsonl(history_path, tuner.history)
    bar = _bar(n, "generate", args.no_progress)
    finished: list[dict[str, Any]] = []  # the final dataset's records so far

    def on_batch(batch: Any) -> None:
        finished.extend(batch.data)
        bar.update(len(batch))

    try:
        data = tuner.generate_dataset(n, data_path, on_batch=on_batch)
    except BaseException as exc:
        bar.close()
        if isinstance(exc, KeyboardInterrupt):
            message = "interrupted while generating the final dataset"
        elif isinstance(exc, Exception):
            message = (
                f"{_component(exc, tuner.config)} failed while generating the final "
                f"dataset: {type(exc).__name__}: {_one_line(exc)}"
            )
        else:
            raise
        line = _write_partial(
            tuner, output, ckpt_dir, message, resume_cmd, final_records=finished, n=n
        )
        if isinstance(exc, KeyboardInterrupt):
            print(f"{PROG}: {line}", file=sys.stderr)
            raise
        raise CLIError(line, 1) from exc
    bar.close()
    if len(data) < n:
        print(
            f"{PROG}: warning: only {len(data)} of {n} records: {data.stages()}",
            file=sys.stderr,
        )
    summary = tuner.summary()
    tb_dir = tuner.tensorboard_dir if tensorboard is not None else None
    summary.update(
        {
            "data_path": str(data_path),
            "num_records": len(data),
            "checkpoint_path": str(ckpt_dir),
            "history_path": str(history_path),
            "tensorboard_log": tensorboard,
            "tensorboard_run": tb_dir,
            "resume_changes": applied,
            "config": tuner.config.to_dict(),
        }
    )
    _write_json(output / "summary.json", summary)
    _print_summary(summary, tuner.env.reward_metric, output)
    return 0


def _replace(config: Any, sections: dict[str, dict[str, Any]]) -> Any:
    """``config.replace(**sections)`` for ``--set``; every failure is a ConfigError."""
    from datagen_gym.config import ConfigError

    try:
        return config.replace(**sections)
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        names = ", ".join(f"{s}.{k}" for s, keys in sections.items() for k in keys)
        raise ConfigError(f"--set {names}: not a valid value ({_one_line(exc)})") from None


def _without_invocation(sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``sections`` less the fields a checkpoint never supplies (those go through
    :func:`~datagen.rl_tuning.checkpoint.config_from_checkpoint`)."""
    from datagen.rl_tuning.checkpoint import INVOCATION_FIELDS

    return {
        s: {k: v for k, v in keys.items() if (s, k) not in INVOCATION_FIELDS}
        for s, keys in sections.items()
    }


def _merge(
    base: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    return {s: {**base.get(s, {}), **extra.get(s, {})} for s in {*base, *extra}}


def _resume_budget(
    args: argparse.Namespace, tuner: Any, resume_from: Path, applied: list[str]
) -> int | None:
    """Steps still to run on a resume (None: the saved plan's rest); reports what it applied."""
    done, planned = tuner.steps_done, tuner.total_planned
    if args.timesteps is not None and args.timesteps != planned:
        applied.append(f"--timesteps {args.timesteps} (was {planned})")
    notes = f"; applied: {', '.join(applied)}" if applied else ""
    print(
        f"{PROG}: resuming {tuner.algorithm} from {resume_from} at step {done}/"
        f"{args.timesteps if args.timesteps is not None else planned}{notes}",
        file=sys.stderr,
    )
    if args.timesteps is not None:
        if args.timesteps <= done:
            print(
                f"{PROG}: --timesteps {args.timesteps}: the run already has {done} steps; "
                f"no training, writing its outputs",
                file=sys.stderr,
            )
            return 0
        return args.timesteps - done  # --timesteps is the run's total
    if done < planned:
        return None  # the unfinished run's remaining steps
    print(
        f"{PROG}: the run in {resume_from} is complete ({done} steps); writing its outputs "
        f"(a larger --timesteps continues it)",
        file=sys.stderr,
    )
    return 0


def _component(exc: BaseException, config: Any) -> str:
    """Which part of the run ``exc`` came from, in the user's terms."""
    from datagen_gym.backends.base import BackendError
    from datagen_gym.envs.datagen_env import TargetModelError

    seen: BaseException | None = exc
    while seen is not None:  # the cause chain: an env may wrap the backend's error
        if isinstance(seen, TargetModelError):
            path = config.rl_tuning.target_model_path
            return f"the target model ({path})" if path else "the built-in target model"
        if isinstance(seen, BackendError):
            sampling = config.sampling
            where = f" at {sampling.base_url}" if sampling.base_url else ""
            return f"the teacher backend ({sampling.backend}{where})"
        seen = seen.__cause__
    return "the run"


def _resume_command(args: argparse.Namespace) -> str:
    parts = [PROG, "rl-tune", "--output", args.output, "--resume"]
    if args.no_tensorboard:
        parts.append("--no-tensorboard")
    elif args.tensorboard != DEFAULT_TENSORBOARD:
        parts += ["--tensorboard", args.tensorboard]
    # A checkpoint never supplies the target, files or connection: the resume names them again.
    if args.config:
        parts += ["--config", str(Path(args.config).resolve())]
    for section, key, value in args.set_fields:
        text = value if isinstance(value, str) else json.dumps(value)
        parts += ["--set", f"{section}.{key}={text}"]
    return " ".join(shlex.quote(str(p)) for p in parts)


def _write_partial(
    tuner: Any,
    output: Path,
    ckpt_dir: Path,
    error: str,
    resume_cmd: str,
    final_records: list[dict[str, Any]] | None = None,
    n: int | None = None,
) -> str:
    """After a failure: history, an incomplete summary and the unsaved records (and, when the
    final generation was cut short, the ``final_records`` it had finished, of ``n`` asked for,
    in ``data.jsonl``); returns the one-line error for the user (what failed, what was kept,
    how to go on)."""
    from datagen.rl_tuning.checkpoint import checkpoint_path, read_state
    from datagen_gym.atomic_io import atomic_write_jsonl

    history_path = output / "history.jsonl"
    kept = [f"{len(tuner.history)} finished steps in {history_path}"]
    try:
        saved_steps: int | None = read_state(checkpoint_path(ckpt_dir))["counters"]["steps_done"]
    except (FileNotFoundError, ValueError):
        saved_steps = None
    summary = {
        **tuner.summary(),
        "complete": False,
        "error": error,
        "history_path": str(history_path),
        "config": tuner.config.to_dict(),
        "checkpoint_path": str(ckpt_dir) if saved_steps is not None else None,
        "checkpoint_steps": saved_steps,
    }
    try:
        atomic_write_jsonl(history_path, tuner.history)
        records = tuner.records_since_checkpoint()
        if records:
            atomic_write_jsonl(output / UNSAVED_RECORDS_FILE, records)
            summary["records_since_checkpoint_path"] = str(output / UNSAVED_RECORDS_FILE)
            kept.append(
                f"{len(records)} records generated since the checkpoint in "
                f"{output / UNSAVED_RECORDS_FILE}"
            )
        if final_records is not None:
            data_path = output / "data.jsonl"
            atomic_write_jsonl(data_path, final_records)
            summary.update(
                data_path=str(data_path), num_records=len(final_records), data_complete=False
            )
            kept.append(f"{len(final_records)} of {n} final records in {data_path}")
        _write_json(output / "summary.json", summary)
    except OSError as exc:  # the disk may be what failed: still report the original error
        kept = [f"writing the partial outputs failed too ({exc.strerror or exc})"]
    if saved_steps is None:
        how = "no checkpoint was reached; rerun the command (with --overwrite) to start over"
    else:
        how = f"resume from the checkpoint at step {saved_steps} with: {resume_cmd}"
    return f"{error}; kept: {', '.join(kept)}; {how}"


def _bar(total: int, desc: str, disabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="rec", disable=disabled, dynamic_ncols=True)


def _print_summary(s: dict[str, Any], metric: str, output: Path) -> None:
    best = s["best_params"]
    improvement = s.get("improvement")
    delta = "" if improvement is None else f", {improvement:+.4f}"
    lines = [
        f"RL tuning done: {s['steps_done']} steps ({s['episodes']} "
        f"episode{'' if s['episodes'] == 1 else 's'} of {s['num_iterations']}) "
        f"with {s['algorithm']}",
        f"  best {metric}:  {_fmt(s['best_metric'])} (baseline {_fmt(s['baseline_metric'])}"
        f"{delta})"
        + (f" at step {best['iteration']}" if best.get("iteration") else "")
        + ("" if best.get("test_metric") is None else f"; test split {_fmt(best['test_metric'])}"),
        f"  best settings: temperature={best['temperature']:.2f} top_p={best['top_p']:.2f} "
        f"template={best['template']}" + (f" focus={best['focus']}" if best.get("focus") else ""),
        f"  data:        {s['data_path']} ({s['num_records']} records)",
        f"  checkpoint:  {s['checkpoint_path']}",
        f"  history:     {s['history_path']}",
        f"  summary:     {output / 'summary.json'}",
    ]
    if s.get("tensorboard_log"):
        run = s.get("tensorboard_run") or s["tensorboard_log"]
        lines.append(f"  tensorboard: {run}  (tensorboard --logdir {s['tensorboard_log']})")
    print("\n".join(lines))


# ---------------------------------------------------------------------------- generate
def cmd_generate(args: argparse.Namespace) -> int:
    """``datagen generate``: records with fixed settings, saved as JSONL or Parquet (by the
    ``--output`` suffix) in the Alpaca or TRL messages ``--layout``."""
    from datagen.rl_tuning.checkpoint import checkpoint_path, config_from_checkpoint, read_state
    from datagen.rl_tuning.generation import generate_with_settings
    from datagen_gym.config import Config
    from datagen_gym.generators import prompts
    from datagen_gym.results import format_for_path, import_datasets
    from datagen_gym.sampler import TEMPERATURE_RANGE, TOP_P_RANGE

    output = Path(args.output)
    if output.is_dir():
        raise CLIError(
            f"--output {output} is a directory; expected a .jsonl or .parquet file path", 2
        )
    try:
        output_format = format_for_path(output)
    except ValueError as exc:
        raise CLIError(f"--output {exc}", 2) from exc
    if output_format == "parquet":
        try:  # before the generation (and any tuning run), not after
            import_datasets()
        except ImportError as exc:
            raise CLIError(f"--output {output}: {exc}", 2) from exc
    try:
        settings: dict[str, Any] = {}
        requested = _absolute_paths(_sections(args.set_fields))
        if args.checkpoint:
            found = checkpoint_path(args.checkpoint)
            state = read_state(found)
            if args.config:
                config = _replace(load_config(args.config), requested)
            else:  # the run's settings; its target, files and connection from this command
                saved = _replace(Config.from_dict(state["config"]), _without_invocation(requested))
                config, _ = config_from_checkpoint(saved, requested, source=f"the run in {found}")
            best = state.get("best") or {}
            settings = {
                k: best[k] for k in ("temperature", "top_p", "template", "focus") if k in best
            }
        else:
            config = _replace(load_config(args.config), requested)
            if config.rl_tuning.enable_rl_tuning:  # the design's switch: tune, then generate
                _check_writable_dir("--output", output.parent)  # before the tuning run
                settings = _tune_for_generate(config, args)
        temperature = (
            args.temperature
            if args.temperature is not None
            else settings.get("temperature", config.sampling.temperature)
        )
        top_p = (
            args.top_p if args.top_p is not None else settings.get("top_p", config.sampling.top_p)
        )
        template = args.template or settings.get("template") or config.generation.template
        for name, value, (lo, hi) in (
            ("--temperature", temperature, TEMPERATURE_RANGE),
            ("--top-p", top_p, TOP_P_RANGE),
        ):
            if not lo <= value <= hi:
                raise ValueError(f"{name}={value} is out of range; allowed: [{lo}, {hi}]")
        prompts.get_template(template)
        seed = (
            args.seed
            if args.seed is not None
            else (config.rl_tuning.seed if config.rl_tuning.seed is not None else 0)
        )
        n = args.n or config.rl_tuning.batch_size
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise CLIError(str(exc), 2) from exc
    _check_writable_dir("--output", output.parent)  # before the generation, not after

    task = _generation_task(config)
    bar = _bar(n, "generate", args.no_progress)
    results = generate_with_settings(
        config,
        n,
        temperature,
        top_p,
        template,
        seed=seed,
        focus=settings.get("focus"),
        seed_tasks=task.seed_tasks if task else None,
        label_space=task.label_space if task else None,
        on_batch=lambda b: bar.update(len(b)),
    )
    bar.close()
    results.save(output, format=output_format, layout=args.layout)
    focus = f" focus={settings['focus']}" if settings.get("focus") else ""
    print(
        f"generated {len(results)} records (temperature={temperature:.2f} top_p={top_p:.2f} "
        f"template={template}{focus}; {results.num_kept} of {results.num_candidates} candidate "
        f"instructions passed the filters) -> {output} ({args.layout} layout)"
    )
    if len(results) < n:
        print(
            f"{PROG}: warning: only {len(results)} of {n} records: {results.stages()}",
            file=sys.stderr,
        )
    return 0


def _generation_task(config: Any) -> Any:
    """The task ``datagen generate`` follows (:mod:`datagen_gym.task`): seeds and labels of the
    validation file (never importing the target file) or of the built-in task; None: world."""
    from datagen.rl_tuning.user_target import load_user_task
    from datagen_gym.task import resolve_task

    try:
        validation, seeds = load_user_task(config)
        builtin = None if validation is not None else config.rl_tuning.task
        if validation is None:
            from datagen_gym.targets import make_validation_set

            validation = make_validation_set(builtin)
        return resolve_task(config, validation, builtin_task=builtin, seed_tasks=seeds)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc), 2) from exc


def _tune_for_generate(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    """``rl_tuning.enable_rl_tuning``: an in-memory tuning run with the config's algorithm,
    target and budget; returns its best settings (no checkpoint: ``rl-tune`` keeps one)."""
    from datagen.rl_tuning import RLTuner, build_target, check_algorithm
    from datagen_gym.backends.base import BackendError
    from datagen_gym.envs.datagen_env import TargetModelError

    check_algorithm(config.rl_tuning.rl_algorithm)
    target, validation, seeds = build_target(config)
    tuner = RLTuner(config, target, validation, seed_tasks=seeds)
    total = args.timesteps or tuner.default_timesteps()
    print(
        f"{PROG}: rl_tuning.enable_rl_tuning is set: tuning with "
        f"{tuner.algorithm} for {total} target evaluations first",
        file=sys.stderr,
    )
    try:
        tuner.train(total_timesteps=total, progress=not args.no_progress)
    except (BackendError, TargetModelError) as exc:
        raise CLIError(
            f"{_component(exc, config)} failed while tuning: {_one_line(exc)}", 1
        ) from exc
    best = tuner.best_params
    print(
        f"{PROG}: tuned: {tuner.env.reward_metric} {best['metric']:.4f} (baseline "
        f"{tuner.summary()['baseline_metric']:.4f}) with temperature={best['temperature']:.2f} "
        f"top_p={best['top_p']:.2f} template={best['template']}"
        + (f" focus={best['focus']}" if best.get("focus") else ""),
        file=sys.stderr,
    )
    return {k: best[k] for k in ("temperature", "top_p", "template", "focus") if k in best}


# ---------------------------------------------------------------------------- entry point
def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _quiet_libraries() -> None:
    """Hide transformers' warnings and weight-loading bar (unless TRANSFORMERS_VERBOSITY is
    set): the CLI shows its own progress, and errors must stay one line."""
    if os.environ.get("TRANSFORMERS_VERBOSITY"):
        return
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


# ---------------------------------------------------------------------------- replay-build
def cmd_replay_build(args: argparse.Namespace) -> int:
    """``datagen replay-build ...``: :mod:`datagen_gym.replay.build` with the same arguments."""
    from datagen_gym.replay import build

    try:
        return int(build.main(args.build_args) or 0)
    except SystemExit as exc:  # the build reports a bad argument with SystemExit(message)
        if isinstance(exc.code, str):
            raise CLIError(exc.code, 2) from None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``datagen`` command; returns the exit code (the console script exits with it)."""
    debug = os.environ.get("DATAGEN_DEBUG", "") not in ("", "0")
    _quiet_libraries()
    parser = build_parser()
    argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        if argv[:1] == ["replay-build"]:  # every argument (--help too) belongs to the build
            return cmd_replay_build(argparse.Namespace(build_args=argv[1:]))
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except CLIError as exc:
        if debug and exc.__cause__ is not None:
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return exc.code
    except Exception as exc:  # noqa: BLE001 - the CLI reports, it does not crash
        if debug:
            raise
        from datagen_gym.config import ConfigError

        code = 2 if isinstance(exc, (ConfigError, FileNotFoundError)) else 1
        kind = "" if code == 2 else f"{type(exc).__name__}: "
        print(f"{PROG}: error: {kind}{_one_line(exc)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
