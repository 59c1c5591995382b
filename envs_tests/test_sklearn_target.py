"""The scikit-learn target's shortcuts (n-grams of the scored sets counted once, metrics summed
directly, records copied field by field) give what the plain scikit-learn calls give."""

import copy

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from datagen_gym.envs.datagen_env import _copy_records
from datagen_gym.targets.builtin_tasks import make_builtin_target, make_validation_set
from datagen_gym.targets.sklearn_target import OTHER, SklearnClassifierTarget, _label, record_text


def _training_data(n: int = 300) -> list[dict]:
    """Records of several built-in tasks (on-task, off-task, wrong labels), as an episode's."""
    rows = make_validation_set("sentiment+topic+spam", n // 3, seed=3)
    rng = np.random.default_rng(0)
    for r in rows[::7]:  # some wrong labels and answers in another format
        r["output"] = str(rng.choice(["positive", "POSITIVE", "Answer: negative", "sports"]))
    return rows


def _plain_sklearn(target: SklearnClassifierTarget, data: list[dict]) -> dict[str, float]:
    """The target's metrics the long way: TfidfVectorizer.transform, sklearn's metrics."""
    labels = [_label(r, target.label_set) for r in data]
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=target.max_features)
    clf = LogisticRegression(C=target.C, max_iter=300).fit(
        vec.fit_transform([record_text(r) for r in data]), labels
    )
    out = {}
    for prefix, scored in target.splits.items():
        pred = clf.predict(vec.transform(scored.texts))
        pred = np.where(pred == OTHER, "", pred)
        out[prefix + "accuracy"] = accuracy_score(scored.labels, pred)
        out[prefix + "macro_f1"] = f1_score(scored.labels, pred, average="macro", zero_division=0)
    return out


@pytest.mark.parametrize("task", ["sentiment", "topic+spam"])
def test_metrics_equal_a_plain_scikit_learn_fit(task):
    target, validation = make_builtin_target(task)
    data = _training_data()
    ours = target(data)
    for key, value in _plain_sklearn(target, data).items():
        if "+" in task and key.endswith("accuracy"):
            continue  # with skills, accuracy is the mean over skills (checked below)
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    if "+" in task:
        skills = [v for k, v in ours.items() if k.startswith("skill/")]
        assert ours["accuracy"] == pytest.approx(np.mean(skills))


def test_scored_features_are_what_the_vectorizer_transforms():
    target, _ = make_builtin_target("sentiment+topic")
    data = _training_data()
    for max_features in (20000, 50):  # all n-grams, and a vocabulary cut to the most frequent
        vec = TfidfVectorizer(
            analyzer=target._cached_ngrams, sublinear_tf=True, max_features=max_features
        )
        vec.fit_transform([record_text(r) for r in data])
        for scored in target.splits.values():
            ours, ref = scored.features(vec), vec.transform(scored.texts)
            assert ours.shape == ref.shape
            assert abs(ours - ref).max() == 0.0


def test_macro_f1_and_accuracy_equal_sklearns_on_any_labels():
    target, _ = make_builtin_target("sentiment")
    scored = target.splits[""]
    rng = np.random.default_rng(1)
    choices = np.array(["positive", "negative", "", "sports", "neutral"])
    for _ in range(50):
        pred = rng.choice(choices, size=len(scored.labels), p=rng.dirichlet(np.ones(5)))
        got = scored.score(pred)
        assert got["accuracy"] == accuracy_score(scored.labels, pred)
        assert got["macro_f1"] == pytest.approx(
            f1_score(scored.labels, pred, average="macro", zero_division=0), abs=1e-12
        )


def test_records_are_copied_deeply_and_fast_for_flat_records():
    data = [{"instruction": "a", "output": "b", "n": 1, "meta": {"tags": ["x"]}}, ["odd"]]
    copied = _copy_records(data)
    assert copied == data
    copied[0]["meta"]["tags"].append("y")
    copied[0]["instruction"] = "changed"
    copied[1].append("more")
    assert data == [{"instruction": "a", "output": "b", "n": 1, "meta": {"tags": ["x"]}}, ["odd"]]
    assert copy.deepcopy(data) == data


def test_target_stays_picklable_after_a_fit():
    """Subprocess vector envs pickle it and check_env deep-copies it with the env's kwargs."""
    import pickle

    target, _ = make_builtin_target("sentiment")
    before = target(_training_data(60))
    for clone in (pickle.loads(pickle.dumps(target)), copy.deepcopy(target)):
        assert clone(_training_data(60)) == before
