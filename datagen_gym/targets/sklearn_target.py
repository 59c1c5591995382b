"""A scikit-learn text classifier as the target model: TF-IDF features + logistic regression."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_limits


def record_text(record: dict[str, Any]) -> str:
    """What the classifier reads: the instruction and the input."""
    return f"{record.get('instruction', '')} {record.get('input', '')}"


OTHER = "__other__"
# How the classifier reads text: word uni- and bigrams, lower-cased (TfidfVectorizer's defaults).
_TFIDF_ANALYSIS = {"ngram_range": (1, 2)}
_NGRAM_CACHE_SIZE = 100_000


def _label(record: dict[str, Any], label_set: set[str]) -> str:
    out = str(record.get("output", "")).strip()
    return out if out in label_set else OTHER


class SklearnClassifierTarget:
    """``target(data) -> metrics``: fit on ``data``, score on the validation (and test) set.

    The classifier learns ``output`` from instruction + input over the scored sets' labels plus
    one ``other`` class: every generated record is a training example, whatever its task.
    Records of the validation task with correct labels help; wrong labels, off-task records and
    answers in another format (``POSITIVE``, ``Answer: positive``) teach the wrong class or
    ``other``, which always counts as a miss. Deterministic for given data.

    Returned keys (the env's documented scheme): ``accuracy``, ``macro_f1``, ``num_train``,
    ``skill/<name>`` (accuracy on the records of each skill, when the scored records carry a
    ``skill`` field), and the same under ``test/`` for the test set. With skills, ``accuracy``
    is the mean over skills, so every skill weighs the same whatever its number of records.

    Args:
        validation_dataset: records with ``instruction``, ``input``, the gold ``output`` and
            optionally ``skill``.
        test_dataset: the same for a held-out test split (scored, never the reward).
        C: inverse regularisation strength of the logistic regression.
        max_features: TF-IDF vocabulary cap (keeps the fit fast on large datasets).
    """

    def __init__(
        self,
        validation_dataset: Sequence[dict[str, Any]],
        test_dataset: Sequence[dict[str, Any]] | None = None,
        C: float = 10.0,
        max_features: int = 20000,
    ) -> None:
        if not validation_dataset:
            raise ValueError("validation_dataset is empty; the target needs records to score")
        self.splits = {"": _ScoredSet(validation_dataset)}
        if test_dataset:
            self.splits["test/"] = _ScoredSet(test_dataset)
        self.label_set = set().union(*(s.labels.tolist() for s in self.splits.values()))
        self.C = C
        self.max_features = max_features
        # The scored sets and the episode's growing training data are re-read on every call;
        # their n-grams are computed once (the features, and so every metric, are unchanged).
        self._analyze = TfidfVectorizer(**_TFIDF_ANALYSIS).build_analyzer()
        self._ngrams: dict[str, list[str]] = {}

    @property
    def skills(self) -> tuple[str, ...]:
        """The skills of the validation set, in first-seen order."""
        return self.splits[""].skills

    def __call__(self, data: Sequence[dict[str, Any]]) -> dict[str, float]:
        # Small fits gain nothing from BLAS threads, and threads that share cores with the
        # teacher (or other envs) stall: one thread was ~5x faster under load here.
        with threadpool_limits(limits=1):
            return self._fit_and_score(data)

    def _fit_and_score(self, data: Sequence[dict[str, Any]]) -> dict[str, float]:
        labels = [_label(r, self.label_set) for r in data]
        if len(set(labels)) < 2:
            # Nothing to discriminate: the model can only answer its one label (or nothing).
            def predict(texts: list[str]) -> np.ndarray:
                return np.array([labels[0] if labels else ""] * len(texts))
        else:
            vec = TfidfVectorizer(
                analyzer=self._cached_ngrams, sublinear_tf=True, max_features=self.max_features
            )
            x = vec.fit_transform([record_text(r) for r in data])
            clf = LogisticRegression(C=self.C, max_iter=300)
            clf.fit(x, labels)

            def predict(texts: list[str]) -> np.ndarray:
                return clf.predict(vec.transform(texts))

        out = {"num_train": float(len(data))}
        for prefix, scored in self.splits.items():
            pred = np.where((p := predict(scored.texts)) == OTHER, "", p)  # "other" never matches
            out.update({prefix + k: v for k, v in scored.score(pred).items()})
        return out

    def _cached_ngrams(self, text: str) -> list[str]:
        ngrams = self._ngrams.get(text)
        if ngrams is None:
            if len(self._ngrams) >= _NGRAM_CACHE_SIZE:  # a long run's texts: start afresh
                self._ngrams.clear()
            ngrams = self._ngrams[text] = self._analyze(text)
        return ngrams


class _ScoredSet:
    """One scored split: texts, gold labels and the skill of each record."""

    def __init__(self, records: Sequence[dict[str, Any]]) -> None:
        self.texts = [record_text(r) for r in records]
        self.labels = np.array([str(r["output"]).strip() for r in records])
        tags = [r.get("skill") for r in records]
        self.skills = tuple(dict.fromkeys(str(t) for t in tags if t))
        self.skill_of = np.array([str(t) if t else "" for t in tags])

    def score(self, pred: np.ndarray) -> dict[str, float]:
        f1 = float(f1_score(self.labels, pred, average="macro", zero_division=0))
        out = {
            "accuracy": float(accuracy_score(self.labels, pred)),
            "macro_f1": f1 if math.isfinite(f1) else 0.0,
        }
        if self.skills:
            per_skill = {
                s: float(np.mean(pred[self.skill_of == s] == self.labels[self.skill_of == s]))
                for s in self.skills
            }
            out.update({f"skill/{s}": v for s, v in per_skill.items()})
            out["accuracy"] = float(np.mean(list(per_skill.values())))
        return out
