"""Write ``examples/validation_<task>.jsonl``: 100 held-out records of a task with gold labels.

    python examples/make_validation_data.py [--task sentiment] [--n 100] [--output FILE]

The default, ``--task sentiment``, writes ``validation_sentiment.jsonl``, the file
``rl_config.yaml`` uses; ``--task topic`` writes ``validation_topic.jsonl``, and so on.

Each line is ``{"instruction": ..., "input": ..., "output": <label>}``, the format
``rl_tuning.validation_data_path`` expects. Your own validation data goes in the same format.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    import datagen_gym  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(HERE.parent))

from agents.common.checkpoint import atomic_write_jsonl  # noqa: E402
from datagen_gym.targets import make_validation_set  # noqa: E402


def default_output(task: str) -> Path:
    """Where ``--task`` writes without ``--output``: named after the task, next to this file."""
    return HERE / f"validation_{task}.jsonl"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sentiment", help="a built-in classification task")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--output", help="default: examples/validation_<task>.jsonl")
    args = parser.parse_args(argv)
    try:
        rows = make_validation_set(args.task, args.n)
    except (KeyError, ValueError) as exc:
        parser.error(str(exc).strip("'\""))
    output = args.output or default_output(args.task)
    atomic_write_jsonl(output, rows)
    print(f"wrote {len(rows)} {args.task} validation records to {output}")


if __name__ == "__main__":
    main()
