"""A scikit-learn text classifier as the target model: TF-IDF features + logistic regression."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score


def record_text(record: dict[str, Any]) -> str:
    """What the classifier reads: the instruction and the input."""
    return f"{record.get('instruction', '')} {record.get('input', '')}"


class SklearnClassifierTarget:
    """``target(data) -> {"accuracy", "macro_f1", "num_train"}``: fit on ``data``, score on the
    validation set.

    The classifier learns ``output`` from instruction + input, so every generated record is a
    training example, whatever its task; records of the validation task with correct labels
    help, wrong labels and off-task outputs compete with them. Deterministic for given data.

    Args:
        validation_dataset: records with ``instruction``, ``input`` and the gold ``output``.
        C: inverse regularisation strength of the logistic regression.
        max_features: TF-IDF vocabulary cap (keeps the fit fast on large datasets).
    """

    def __init__(self, validation_dataset: Sequence[dict[str, Any]], C: float = 10.0,
                 max_features: int = 20000) -> None:
        if not validation_dataset:
            raise ValueError("validation_dataset is empty; the target needs records to score")
        self.validation = list(validation_dataset)
        self.val_texts = [record_text(r) for r in self.validation]
        self.val_labels = np.array([str(r["output"]).strip() for r in self.validation])
        self.C = C
        self.max_features = max_features

    def __call__(self, data: Sequence[dict[str, Any]]) -> dict[str, float]:
        labels = [str(r.get("output", "")).strip() for r in data]
        if len(set(labels)) < 2:
            # Nothing to discriminate: the model can only answer its one label (or nothing).
            pred = np.array([labels[0] if labels else ""] * len(self.val_labels))
        else:
            vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                                  max_features=self.max_features)
            x = vec.fit_transform([record_text(r) for r in data])
            clf = LogisticRegression(C=self.C, max_iter=300)
            clf.fit(x, labels)
            pred = clf.predict(vec.transform(self.val_texts))
        acc = float(accuracy_score(self.val_labels, pred))
        f1 = float(f1_score(self.val_labels, pred, average="macro", zero_division=0))
        return {"accuracy": acc, "macro_f1": f1 if math.isfinite(f1) else 0.0,
                "num_train": float(len(data))}
