"""RLTuner in Python: define a target, train, read the best settings, generate, save and load.

    python examples/quickstart.py [--algo random_search] [--steps 6] [--batch-size 16]

Runs on the embedded teacher LM (CPU, a few seconds per step at batch size 16).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    import datagen_gym  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(HERE.parent))

from datagen.rl_tuning import RLTuner  # noqa: E402
from datagen_gym import Config  # noqa: E402
from datagen_gym.results import read_jsonl  # noqa: E402
from datagen_gym.targets import make_validation_set  # noqa: E402


# 1. The target model: fine-tune on the records, evaluate on validation data, return metrics.
#    (examples/target_model_example.py shows a scikit-learn one written out in full.)
def make_target(validation):
    from datagen_gym.targets import SklearnClassifierTarget

    classifier = SklearnClassifierTarget(validation)  # TF-IDF + logistic regression

    def target_model(records: list[dict]) -> dict[str, float]:
        return classifier(records)  # {"accuracy": ..., "macro_f1": ..., "num_train": ...}

    return target_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="random_search")
    parser.add_argument("--steps", type=int, default=6, help="episode length")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help="total env steps (default: 1 episode for random search, 20 for learning agents)",
    )
    parser.add_argument("--tensorboard", default="runs")
    args = parser.parse_args(argv)

    # 2. The validation data: a list of {"instruction", "input", "output"} dicts.
    val_path = HERE / "validation_sentiment.jsonl"
    validation = (
        read_jsonl(val_path) if val_path.exists() else make_validation_set("sentiment", 100)
    )

    # 3. The configuration (the same fields as the YAML file's sections).
    config = Config.from_dict(
        {
            "rl_tuning": {
                "rl_algorithm": args.algo,
                "num_iterations": args.steps,
                "batch_size": args.batch_size,
                "reward_metric": "accuracy",
                "seed": 0,
            }
        }
    )

    # 4. Train.
    tuner = RLTuner(config, target_model=make_target(validation), validation_dataset=validation)
    history = tuner.train(total_timesteps=args.timesteps, tensorboard_log=args.tensorboard)
    print(f"\n{len(history)} steps; baseline accuracy {tuner.baseline_metric:.3f}")
    for h in history:
        print(
            f"  step {h['iteration']:>3}  T={h['temperature']:.2f} top_p={h['top_p']:.2f} "
            f"{h['template']:<30} accuracy={h['metric']:.3f} reward={h['reward']:+.3f}"
        )

    # 5. The best settings, and a dataset generated with them.
    best = tuner.best_params
    print(f"best: {best}")
    with tempfile.TemporaryDirectory() as tmp:
        data = tuner.generate_dataset(2 * args.batch_size, Path(tmp) / "data.jsonl")
        print(f"generated {len(data)} records with the best settings, e.g. {data[0]}")

        # 6. Save and load (e.g. to continue training later, or on another machine).
        tuner.save(Path(tmp) / "checkpoint")
        restored = RLTuner.load(
            Path(tmp) / "checkpoint",
            target_model=make_target(validation),
            validation_dataset=validation,
        )
        assert restored.best_params == best and len(restored.history) == len(history)
        print(f"saved and reloaded: {restored}")
    print(f"TensorBoard: tensorboard --logdir {args.tensorboard}")


if __name__ == "__main__":
    main()
