"""Write ``examples/validation_sentiment.jsonl``: 100 held-out sentiment records with gold labels.

    python examples/make_validation_data.py [--task sentiment] [--n 100] [--output FILE]

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

from datagen_gym.results import write_jsonl_atomic  # noqa: E402
from datagen_gym.targets import make_validation_set  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sentiment", help="a built-in classification task")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--output", default=str(HERE / "validation_sentiment.jsonl"))
    args = parser.parse_args(argv)
    rows = make_validation_set(args.task, args.n)
    write_jsonl_atomic(args.output, rows)
    print(f"wrote {len(rows)} {args.task} validation records to {args.output}")


if __name__ == "__main__":
    main()
