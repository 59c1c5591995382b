"""The parsers on the committed corpus of real models' replies (benchmarks/results/
real_replies.jsonl, recorded by ``python -m benchmarks.record_replies``): every reply has an
expected parse (real_replies_labels.jsonl: by the rules stated in real_replies.md, or by hand),
and the parsers must read the corpus at the precision and recall the report states. No model
is loaded: the replies are text."""

from pathlib import Path

import pytest

from benchmarks import record_replies

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
CORPUS = RESULTS / "real_replies.jsonl"
LABELS = RESULTS / "real_replies_labels.jsonl"

# The figures of real_replies.md, less a margin of about one reply's items: a regression that
# misreads a few more replies fails here.
MIN_ALL = {"precision": 0.92, "recall": 0.94}
MIN_PATH = {
    "bootstrap": (0.95, 0.95),
    "classification_check": (0.90, 0.95),
    "output_first": (0.80, 0.90),
    "input_first": (0.95, 0.80),
    "evol": (0.91, 0.93),
}
MIN_HAND = {"precision": 0.94, "recall": 0.95}


@pytest.fixture(scope="module")
def corpus():
    rows, labels = record_replies.load(CORPUS, LABELS)
    return rows, labels


def test_corpus_holds_real_replies_of_two_models_on_every_path(corpus):
    rows, labels = corpus
    assert len(rows) >= 300
    models = {r["model"] for r in rows}
    assert len(models) >= 2
    for model in models:
        assert {r["path"] for r in rows if r["model"] == model} == set(record_replies.PATHS)
    for i, row in enumerate(rows):
        assert row["id"] == i
        assert {"prompt", "reply", "model", "settings", "path"} <= set(row)
        assert {"temperature", "top_p", "max_new_tokens", "prompt_format", "prompt_style"} <= set(
            row["settings"]
        )
    assert set(labels) == {r["id"] for r in rows}  # every reply has its expected parse


def test_parsers_read_the_corpus_at_the_reported_precision_and_recall(corpus):
    rows, labels = corpus
    scores = record_replies.score(rows, {i: lab["expected"] for i, lab in labels.items()})
    overall = scores[("all", "all")]
    assert overall["precision"] >= MIN_ALL["precision"], overall
    assert overall["recall"] >= MIN_ALL["recall"], overall
    for path, (precision, recall) in MIN_PATH.items():
        s = scores[("all", path)]
        assert s["precision"] >= precision and s["recall"] >= recall, (path, s)


def test_parsers_agree_with_the_hand_labels(corpus):
    rows, labels = corpus
    hand = {i: lab["expected"] for i, lab in labels.items() if lab["source"] == "hand"}
    assert len(hand) >= 60
    s = record_replies.score(rows, hand)[("all", "all")]
    assert s["precision"] >= MIN_HAND["precision"] and s["recall"] >= MIN_HAND["recall"], s
