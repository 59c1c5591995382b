"""A scikit-learn text classifier as the target model: TF-IDF features + logistic regression."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_limits


def record_text(record: dict[str, Any]) -> str:
    """What the classifier reads: the instruction and the input."""
    return f"{record.get('instruction', '')} {record.get('input', '')}"


OTHER = "__other__"


def _label(record: dict[str, Any], label_set: set[str]) -> str:
    out = str(record.get("output", "")).strip()
    return out if out in label_set else OTHER


class SklearnClassifierTarget:
    """``target(data) -> {"accuracy", "macro_f1", "num_train"}``: fit on ``data``, score on the
    validation set.

    The classifier learns ``output`` from instruction + input over the validation set's labels
    plus one ``other`` class: every generated record is a training example, whatever its task.
    Records of the validation task with correct labels help; wrong labels, off-task records and
    answers in another format (``POSITIVE``, ``Answer: positive``) teach the wrong class or
    ``other``, which always counts as a miss. Deterministic for given data.

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
        self.label_set = set(self.val_labels.tolist())
        self.C = C
        self.max_features = max_features

    def __call__(self, data: Sequence[dict[str, Any]]) -> dict[str, float]:
        # Small fits gain nothing from BLAS threads, and threads that share cores with the
        # teacher (or other envs) stall: one thread was ~5x faster under load here.
        with threadpool_limits(limits=1):
            return self._fit_and_score(data)

    def _fit_and_score(self, data: Sequence[dict[str, Any]]) -> dict[str, float]:
        labels = [_label(r, self.label_set) for r in data]
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
        pred = np.where(pred == OTHER, "", pred)  # an "other" answer never matches a gold label
        acc = float(accuracy_score(self.val_labels, pred))
        f1 = float(f1_score(self.val_labels, pred, average="macro", zero_division=0))
        return {"accuracy": acc, "macro_f1": f1 if math.isfinite(f1) else 0.0,
                "num_train": float(len(data))}
