"""The ``datagen`` command line: RL-tune generation settings, or generate with fixed ones.

::

    datagen rl-tune [--config FILE] [--algo NAME] [--timesteps N] [--tensorboard DIR]
                    [--output DIR] [--checkpoint-every K] [--resume] [--n N]
    datagen generate [--config FILE] [--checkpoint DIR] [--n N] [--temperature T] [--top-p P]
                     [--template NAME] [--seed S] --output FILE.jsonl

``rl_tune`` is accepted as an alias of ``rl-tune``. ``python -m datagen_gym.cli`` works too.
Relative paths inside a config file are taken relative to the config file's directory.

Exit codes: 0 success, 2 bad usage / config / input files, 1 a failure while running (the
target model raised, the backend failed), 130 interrupted. Errors are one line on stderr,
``datagen: error: ...``; set ``DATAGEN_DEBUG=1`` to get the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

PROG = "datagen"
DEFAULT_OUTPUT = "rl_tune_output"
DEFAULT_TENSORBOARD = "runs"


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
    parser = _Parser(prog=PROG, description="Synthetic instruction data generation, tuned by "
                     "reinforcement learning for your target model.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    tune = sub.add_parser(
        "rl-tune", aliases=["rl_tune"],
        help="learn the generation settings that make the target model best",
        description="Train an RL agent (random search, REINFORCE, PPO, DQN, ...) to choose the "
                    "teacher's temperature, top_p and prompt template; then generate a dataset "
                    "with the best settings found.")
    tune.add_argument("--config", metavar="FILE",
                      help="YAML config (default: the embedded default task and target)")
    tune.add_argument("--algo", metavar="NAME",
                      help="agent: random_search, reinforce, ppo, a2c, dqn, ... "
                           "(default: rl_tuning.rl_algorithm)")
    tune.add_argument("--timesteps", type=_positive_int, metavar="N",
                      help="total env steps of the run (default: one episode for random "
                           "search, 20 episodes for learning agents)")
    tune.add_argument("--num-iterations", type=_positive_int, metavar="N",
                      help="episode length (overrides rl_tuning.num_iterations)")
    tune.add_argument("--batch-size", type=_positive_int, metavar="N",
                      help="records generated per step (overrides rl_tuning.batch_size)")
    tune.add_argument("--seed", type=int, metavar="S", help="overrides rl_tuning.seed")
    tune.add_argument("--tensorboard", metavar="DIR", default=DEFAULT_TENSORBOARD,
                      help=f"TensorBoard log root (default: {DEFAULT_TENSORBOARD})")
    tune.add_argument("--no-tensorboard", action="store_true", help="do not log to TensorBoard")
    tune.add_argument("--output", metavar="DIR", default=DEFAULT_OUTPUT,
                      help=f"output directory: data.jsonl, checkpoint/, history.jsonl, "
                           f"summary.json (default: {DEFAULT_OUTPUT})")
    tune.add_argument("--checkpoint-every", type=_positive_int, metavar="K",
                      help="steps between checkpoints (default: one episode)")
    tune.add_argument("--resume", action="store_true",
                      help="continue from OUTPUT/checkpoint if it exists")
    tune.add_argument("--n", type=_positive_int, metavar="N",
                      help="records in the final data.jsonl (default: batch_size * "
                           "num_iterations)")
    tune.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    tune.set_defaults(func=cmd_rl_tune)

    gen = sub.add_parser(
        "generate", help="generate a dataset with fixed settings",
        description="Generate records with fixed sampling settings and template (those of a "
                    "tuning checkpoint with --checkpoint, else the config's).")
    gen.add_argument("--config", metavar="FILE", help="YAML config (default: embedded default)")
    gen.add_argument("--checkpoint", metavar="DIR",
                     help="an rl-tune checkpoint: start from its best settings (and its config "
                          "when --config is not given)")
    gen.add_argument("--n", type=_positive_int, metavar="N",
                     help="number of records (default: rl_tuning.batch_size)")
    gen.add_argument("--temperature", type=float, metavar="T")
    gen.add_argument("--top-p", type=float, metavar="P")
    gen.add_argument("--template", metavar="NAME",
                     help="prompt template name (e.g. self_instruct, evol_deepen)")
    gen.add_argument("--seed", type=int, metavar="S",
                     help="generation seed (default: rl_tuning.seed or 0)")
    gen.add_argument("--output", metavar="FILE.jsonl", required=True)
    gen.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    gen.set_defaults(func=cmd_generate)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# ---------------------------------------------------------------------------- shared pieces
def load_config(path: Optional[str]) -> Any:
    """The config of ``--config`` (relative paths resolved against its directory)."""
    from datagen_gym.config import Config
    from datagen_gym.rl_tuning import resolve_config_paths

    if path is None:
        return Config()
    config = Config.load(path)
    return resolve_config_paths(config, Path(path).resolve().parent)


def _override(config: Any, **rl_changes: Any) -> Any:
    changes = {k: v for k, v in rl_changes.items() if v is not None}
    return config.replace(rl_tuning=changes) if changes else config


def _fmt(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _write_json(path: Path, obj: Any) -> None:
    from agents.common.checkpoint import atomic_write_json
    atomic_write_json(path, obj)


# ---------------------------------------------------------------------------- rl-tune
def cmd_rl_tune(args: argparse.Namespace) -> int:
    """``datagen rl-tune``: train, checkpoint, generate the final dataset, summarise."""
    from agents.common.checkpoint import read_json
    from datagen_gym.config import Config
    from datagen_gym.results import write_jsonl_atomic
    from datagen_gym.rl_tuning import RLTuner, build_target, check_algorithm
    from datagen_gym.rl_tuning.rl_tuner import TUNER_FILE, checkpoint_path

    output = Path(args.output)
    ckpt_dir = output / "checkpoint"
    tensorboard = None if args.no_tensorboard else args.tensorboard
    resume_from = None
    if args.resume:
        try:
            resume_from = checkpoint_path(ckpt_dir)
        except FileNotFoundError:
            print(f"{PROG}: no checkpoint in {ckpt_dir}; starting a new run", file=sys.stderr)
        else:
            ignored = [flag for flag, value in (("--config", args.config), ("--algo", args.algo),
                                                ("--seed", args.seed)) if value is not None]
            if ignored:
                print(f"{PROG}: note: {', '.join(ignored)} ignored: a resumed run keeps the "
                      f"config it was started with", file=sys.stderr)

    # ---- setup: every failure here is a usage / input error (exit code 2)
    try:
        if resume_from is not None:
            # The run continues with the config it was started with (paths already resolved).
            config = Config.from_dict(read_json(resume_from / TUNER_FILE)["config"])
        else:
            config = load_config(args.config)
            algo = check_algorithm(args.algo) if args.algo else \
                check_algorithm(config.rl_tuning.rl_algorithm)
            config = _override(config, rl_algorithm=algo, seed=args.seed,
                               batch_size=args.batch_size, num_iterations=args.num_iterations)
        target, validation = build_target(config)
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError) as exc:
        raise CLIError(str(exc), 2) from exc

    from datagen_gym.backends.base import BackendError
    try:
        if resume_from is not None:
            tuner = RLTuner.load(resume_from, target, validation)
            print(f"{PROG}: resuming {tuner.algorithm} from {resume_from} at step "
                  f"{tuner.steps_done}/{tuner.total_planned}", file=sys.stderr)
        else:
            tuner = RLTuner(config, target, validation)
    except BackendError as exc:
        raise CLIError(str(exc), 1) from exc
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise CLIError(str(exc), 2) from exc

    # ---- training
    every = args.checkpoint_every or tuner.num_iterations
    if resume_from is None:
        total: Optional[int] = args.timesteps or tuner.default_timesteps()
    elif args.timesteps is not None:
        total = args.timesteps - tuner.steps_done  # --timesteps is the run's total
        total = total if total > 0 else 0
    elif tuner.steps_done < tuner.total_planned:
        total = None  # the unfinished run's remaining steps
    else:
        total = 0  # the run had finished: only regenerate the outputs
    if total != 0:
        tuner.train(num_iterations=args.num_iterations, batch_size=args.batch_size,
                    total_timesteps=total, tensorboard_log=tensorboard,
                    checkpoint_dir=ckpt_dir, checkpoint_every=every,
                    progress=not args.no_progress)
    elif resume_from is not None:
        print(f"{PROG}: the run in {resume_from} is complete "
              f"({tuner.steps_done} steps); writing its outputs", file=sys.stderr)
        if Path(resume_from) != ckpt_dir:
            tuner.save(ckpt_dir)

    # ---- outputs
    n = args.n or tuner.batch_size * tuner.num_iterations
    data_path, history_path = output / "data.jsonl", output / "history.jsonl"
    bar = _bar(n, "generate", args.no_progress)
    data = tuner.generate_dataset(n, data_path, on_batch=lambda b: bar.update(len(b)))
    bar.close()
    if len(data) < n:
        print(f"{PROG}: warning: only {len(data)} of {n} records passed the filters (the "
              f"teacher stopped producing new instructions)", file=sys.stderr)
    write_jsonl_atomic(history_path, tuner.history)
    summary = tuner.summary()
    tb_dir = tuner.tensorboard_dir if tensorboard is not None else None
    summary.update({
        "data_path": str(data_path), "num_records": len(data),
        "checkpoint_path": str(ckpt_dir), "history_path": str(history_path),
        "tensorboard_log": tensorboard, "tensorboard_run": tb_dir,
        "config": tuner.config.to_dict(),
    })
    _write_json(output / "summary.json", summary)
    _print_summary(summary, tuner.env.reward_metric, output)
    return 0


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
        f"{delta})" + (f" at step {best['iteration']}" if best.get("iteration") else ""),
        f"  best settings: temperature={best['temperature']:.2f} top_p={best['top_p']:.2f} "
        f"template={best['template']}",
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
    """``datagen generate``: records with fixed settings, saved as JSONL."""
    from agents.common.checkpoint import read_json
    from datagen_gym.config import Config
    from datagen_gym.generators import prompts
    from datagen_gym.rl_tuning.rl_tuner import TUNER_FILE, checkpoint_path, \
        generate_with_settings
    from datagen_gym.sampler import TEMPERATURE_RANGE, TOP_P_RANGE

    try:
        settings: dict[str, Any] = {}
        if args.checkpoint:
            state = read_json(checkpoint_path(args.checkpoint) / TUNER_FILE)
            config = load_config(args.config) if args.config else \
                Config.from_dict(state["config"])
            best = state.get("best") or {}
            settings = {k: best[k] for k in ("temperature", "top_p", "template") if k in best}
        else:
            config = load_config(args.config)
        temperature = args.temperature if args.temperature is not None else \
            settings.get("temperature", config.sampling.temperature)
        top_p = args.top_p if args.top_p is not None else \
            settings.get("top_p", config.sampling.top_p)
        template = args.template or settings.get("template") or config.generation.template
        for name, value, (lo, hi) in (("--temperature", temperature, TEMPERATURE_RANGE),
                                      ("--top-p", top_p, TOP_P_RANGE)):
            if not lo <= value <= hi:
                raise ValueError(f"{name}={value} is out of range; allowed: [{lo}, {hi}]")
        prompts.get_template(template)
        seed = args.seed if args.seed is not None else \
            (config.rl_tuning.seed if config.rl_tuning.seed is not None else 0)
        n = args.n or config.rl_tuning.batch_size
        output = Path(args.output)
        if output.is_dir():
            raise ValueError(f"--output {output} is a directory; expected a .jsonl file path")
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise CLIError(str(exc), 2) from exc

    bar = _bar(n, "generate", args.no_progress)
    results = generate_with_settings(config, n, temperature, top_p, template, seed=seed,
                                     on_batch=lambda b: bar.update(len(b)))
    bar.close()
    results.save(output)
    print(f"generated {len(results)} records (temperature={temperature:.2f} top_p={top_p:.2f} "
          f"template={template}; {results.num_kept} of {results.num_candidates} candidate "
          f"instructions passed the filters) -> {output}")
    if len(results) < n:
        print(f"{PROG}: warning: only {len(results)} of {n} records passed the filters",
              file=sys.stderr)
    return 0


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``datagen`` command; returns the exit code (the console script exits with it)."""
    debug = os.environ.get("DATAGEN_DEBUG", "") not in ("", "0")
    _quiet_libraries()
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
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
