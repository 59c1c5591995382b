"""A scikit-learn text classifier as the target model: TF-IDF features + logistic regression."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize
from threadpoolctl import ThreadpoolController


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


@functools.cache
def _threadpools() -> ThreadpoolController:
    """The process's BLAS / OpenMP libraries, found once (at the first fit, when they are
    loaded): finding them reads the process's memory map, which took a tenth of a fit. Kept
    out of the target, which must stay picklable for subprocess envs."""
    return ThreadpoolController()


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
        for scored in self.splits.values():
            scored.count_ngrams(self._cached_ngrams)

    @property
    def skills(self) -> tuple[str, ...]:
        """The skills of the validation set, in first-seen order."""
        return self.splits[""].skills

    def __call__(self, data: Sequence[dict[str, Any]]) -> dict[str, float]:
        # Small fits gain nothing from BLAS threads, and threads that share cores with the
        # teacher (or other envs) stall: one thread was ~5x faster under load here.
        with _threadpools().limit(limits=1):
            return self._fit_and_score(data)

    def _fit_and_score(self, data: Sequence[dict[str, Any]]) -> dict[str, float]:
        labels = [_label(r, self.label_set) for r in data]
        if len(set(labels)) < 2:
            # Nothing to discriminate: the model can only answer its one label (or nothing).
            def predict(scored: _ScoredSet) -> np.ndarray:
                return np.array([labels[0] if labels else ""] * len(scored.texts))
        else:
            vec = TfidfVectorizer(
                analyzer=self._cached_ngrams, sublinear_tf=True, max_features=self.max_features
            )
            x = vec.fit_transform([record_text(r) for r in data])
            clf = LogisticRegression(C=self.C, max_iter=300)
            clf.fit(x, labels)

            def predict(scored: _ScoredSet) -> np.ndarray:
                return clf.predict(scored.features(vec))

        out = {"num_train": float(len(data))}
        for prefix, scored in self.splits.items():
            pred = np.where((p := predict(scored)) == OTHER, "", p)  # "other" never matches
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
    """One scored split: texts, gold labels and the skill of each record.

    Its texts are the same at every call, so their n-gram counts are computed once
    (:meth:`count_ngrams`) and each fit's features are those counts moved onto the fitted
    vocabulary (:meth:`features`): what ``TfidfVectorizer.transform`` returns, without
    re-reading the texts.
    """

    def __init__(self, records: Sequence[dict[str, Any]]) -> None:
        self.texts = [record_text(r) for r in records]
        self.labels = np.array([str(r["output"]).strip() for r in records])
        tags = [r.get("skill") for r in records]
        self.skills = tuple(dict.fromkeys(str(t) for t in tags if t))
        self.skill_of = np.array([str(t) if t else "" for t in tags])
        self.counts: sp.csr_matrix | None = None
        self.ngrams: list[str] = []

    def count_ngrams(self, analyzer) -> None:
        counter = CountVectorizer(analyzer=analyzer)
        try:
            self.counts = counter.fit_transform(self.texts).tocsr()
        except ValueError:  # no text has a word: every feature row is empty
            self.counts = sp.csr_matrix((len(self.texts), 0), dtype=np.int64)
            return
        self.ngrams = counter.get_feature_names_out().tolist()

    def features(self, vec: TfidfVectorizer) -> sp.csr_matrix:
        """``vec.transform(self.texts)``: the counts of the n-grams in ``vec``'s vocabulary,
        then sublinear tf, idf and l2 normalisation as ``TfidfTransformer.transform``
        applies them (the same operations in the same order, so the same numbers)."""
        vocabulary = vec.vocabulary_
        column = np.fromiter(
            (vocabulary.get(g, -1) for g in self.ngrams), dtype=np.int64, count=len(self.ngrams)
        )
        known = np.flatnonzero(column >= 0)
        move = sp.csr_matrix(
            (np.ones(len(known), dtype=np.int64), (known, column[known])),
            shape=(len(self.ngrams), len(vocabulary)),
        )
        x = (self.counts @ move).astype(np.float64).tocsr()
        x.sort_indices()
        np.log(x.data, x.data)
        x.data += 1.0
        x.data *= vec.idf_[x.indices]
        return normalize(x, norm="l2", copy=False)

    def score(self, pred: np.ndarray) -> dict[str, float]:
        """Accuracy and macro F1 (``sklearn.metrics.f1_score(average="macro",
        zero_division=0)``: per label of the gold and predicted labels, 2 tp / (gold +
        predicted), averaged), and per-skill accuracy; computed directly, since sklearn's
        input checks cost more than the sums on a few hundred labels."""
        hits = pred == self.labels
        classes, codes = np.unique(np.concatenate([self.labels, pred]), return_inverse=True)
        gold, predicted = codes[: len(pred)], codes[len(pred) :]
        k = len(classes)
        tp = np.bincount(gold[hits], minlength=k)
        f1 = 2 * tp / (np.bincount(gold, minlength=k) + np.bincount(predicted, minlength=k))
        out = {"accuracy": float(np.mean(hits)), "macro_f1": float(np.mean(f1))}
        if self.skills:
            per_skill = {s: float(np.mean(hits[self.skill_of == s])) for s in self.skills}
            out.update({f"skill/{s}": v for s, v in per_skill.items()})
            out["accuracy"] = float(np.mean(list(per_skill.values())))
        return out
