"""An example target model file for ``datagen rl-tune`` (``rl_tuning.target_model_path``).

The RL tuner calls ``target_model(records)`` once per step with the synthetic records generated
so far (plus the human seed tasks). The function must train ("fine-tune") the user's model on
them, evaluate it on held-out validation data and return a dict of metrics; the config's
``rl_tuning.reward_metric`` (here ``accuracy``) is the reward signal.

Here the "model" is a small scikit-learn text classifier (TF-IDF + logistic regression) that
learns to answer the validation task (sentiment) from the generated instruction / input /
output records. For an LLM you would fine-tune a copy of the same base checkpoint on the records
(e.g. a LoRA for a few hundred steps) and score it on the validation set, in the same function.

Rules of thumb for a target:

* Start from the same base model on every call, so that metrics of different steps compare.
* Be deterministic (fixed seeds): the reward must reflect the data, not the noise.
* Be fast: it runs once per env step. Subsample or cap training steps if needed.

The CLI looks for ``make_target_model(validation_dataset)`` first (it receives the records of
``rl_tuning.validation_data_path``), then for a plain ``target_model(records)`` function.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline

HERE = Path(__file__).resolve().parent
OTHER = "other"  # the class of every record that is not a validation-task answer


def _text(record: dict[str, Any]) -> str:
    return f"{record.get('instruction', '')} {record.get('input', '')}"


def make_target_model(validation_dataset: Sequence[dict[str, Any]] | None = None):
    """Build ``target_model(records) -> {"accuracy", "macro_f1", "num_train"}``.

    ``validation_dataset``: records with ``instruction``, ``input`` and the gold ``output``;
    ``None`` reads ``validation_sentiment.jsonl`` next to this file.
    """
    if validation_dataset is None:
        with open(HERE / "validation_sentiment.jsonl", encoding="utf-8") as fh:
            validation_dataset = [json.loads(line) for line in fh if line.strip()]
    val_texts = [_text(r) for r in validation_dataset]
    val_labels = [str(r["output"]).strip() for r in validation_dataset]
    label_set = sorted(set(val_labels))

    def target_model(records: list[dict[str, Any]]) -> dict[str, float]:
        # 1. Training data: every record; answers outside the label set teach "other".
        texts = [_text(r) for r in records]
        labels = [str(r.get("output", "")).strip() for r in records]
        labels = [y if y in label_set else OTHER for y in labels]
        # 2. "Fine-tune": fit a fresh classifier (same start every call).
        if len(set(labels)) < 2:
            predictions = [labels[0] if labels else OTHER] * len(val_texts)
        else:
            model = make_pipeline(
                TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                LogisticRegression(C=10.0, max_iter=1000),
            )
            model.fit(texts, labels)
            predictions = list(model.predict(val_texts))
        # 3. Evaluate on the held-out validation set.
        return {
            "accuracy": float(accuracy_score(val_labels, predictions)),
            "macro_f1": float(
                f1_score(
                    val_labels, predictions, labels=label_set, average="macro", zero_division=0
                )
            ),
            "num_train": float(len(records)),
        }

    return target_model


if __name__ == "__main__":
    # Sanity check: train on the first half of the validation file, score on all of it.
    target = make_target_model()
    with open(HERE / "validation_sentiment.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    print(target(rows[:50]))
