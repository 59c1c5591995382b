"""RougeLFilter / rouge_l_f1 must agree with rouge_score exactly: same floats, same decisions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
rouge_tokenize_ref = pytest.importorskip("rouge_score.tokenize").tokenize

from datagen_gym.generators import rouge_filter  # noqa: E402
from datagen_gym.generators.rouge_filter import RougeLFilter, rouge_l_f1, rouge_tokenize  # noqa: E402

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

EDGE_TEXTS = [
    "",
    " ",
    "\n\t",
    "!!!",
    "...?",
    "-- , ; :",
    "a",
    "A",
    "123",
    "1,234.5",
    "007 bond",
    "Hello, World!",
    "hello world",
    "HELLO   world",
    "the the the the",
    "the cat the cat",
    "café naïve résumé",
    "日本語のテキスト",
    "日本語 text 2024",
    "İstanbul ıi",
    "Straße",
    "x_y-z/w",
    "e.g. i.e. etc.",
    "tab\tseparated\nlines",
    "emoji 🙂 here 🙂",
    "ｆｕｌｌｗｉｄｔｈ",
    "Write a poem.",
    "write a POEM",
    "Write a short poem about the sea.",
]


def ref_f1(target: str, prediction: str) -> float:
    return SCORER.score(target, prediction)["rougeL"].fmeasure


def ref_filter(candidates, seeds=(), threshold=0.7):
    """Self-Instruct's loop, verbatim semantics, with rouge_score."""
    pool, keep = list(seeds), []
    for inst in candidates:
        scores = [ref_f1(inst, old) for old in pool]
        if scores and max(scores) > threshold:
            keep.append(False)
        else:
            keep.append(True)
            pool.append(inst)
    return keep


def make_instructions(n: int, seed: int) -> list[str]:
    """Short instructions over a small vocabulary, with many lightly edited near-duplicates."""
    rng = np.random.default_rng(seed)
    verbs = ["Write", "Explain", "List", "Describe", "Summarize", "Give"]
    objs = ["a poem", "three tips", "the history", "a story", "an email", "the rules"]
    topics = ["cats", "the sea", "chess", "taxes", "sleep", "rivers", "jazz", "bread", "AI"]
    tails = ["", "for kids", "in French", "briefly", "in 50 words", "with examples"]
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.45:
            words = out[rng.integers(len(out))].split()
            for _ in range(rng.integers(1, 3)):
                i = int(rng.integers(len(words)))
                op = rng.integers(4)
                if op == 0 and len(words) > 2:
                    del words[i]
                elif op == 1:
                    words.insert(i, str(rng.choice(["please", "now", "also", "the", "a"])))
                elif op == 2:
                    words[i] = words[i].upper()
                else:
                    words[i] = words[i] + str(rng.choice([",", "!", "?", ""]))
            out.append(" ".join(words))
        else:
            parts = [
                rng.choice(verbs),
                rng.choice(objs),
                "about",
                rng.choice(topics),
                rng.choice(tails),
            ]
            out.append(" ".join(str(p) for p in parts if p) + ".")
    return out


@pytest.fixture(scope="module")
def instructions() -> list[str]:
    return make_instructions(500, seed=0)


@pytest.fixture(scope="module")
def reference_decisions(instructions) -> list[bool]:
    return ref_filter(instructions[20:], instructions[:20])


# ----------------------------------------------------------------------- tokenizer and F1


@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_tokenize_matches_rouge_score(text):
    assert rouge_tokenize(text) == rouge_tokenize_ref(text, None)


def test_f1_edge_cases_exact():
    for a, b in itertools.product(EDGE_TEXTS, repeat=2):
        assert rouge_l_f1(a, b) == ref_f1(a, b), (a, b)
    assert rouge_l_f1("", "") == 0.0
    assert rouge_l_f1("!!!", "!!!") == 0.0  # punctuation-only texts have no tokens
    assert rouge_l_f1("Hello, World!", "hello world") == 1.0


def test_f1_random_pairs_exact():
    rng = np.random.default_rng(1)
    vocab = ["a", "b", "c", "d", "e", "the", "The", "of", "x1", "42", ",", "!", "..", "é"]
    checked = 0
    for _ in range(3000):
        a = " ".join(rng.choice(vocab, rng.integers(0, 16)))
        b = " ".join(rng.choice(vocab, rng.integers(0, 16)))
        expected = ref_f1(a, b)
        assert rouge_l_f1(a, b) == expected, (a, b)
        assert rouge_l_f1(b, a) == expected, (a, b)  # bit-symmetric
        checked += 0 < expected < 1
    assert checked > 1000  # the LCS was non-trivial for most pairs


# ----------------------------------------------------------------------- the filter


def test_filter_matches_rouge_score_loop(instructions, reference_decisions):
    seeds, cands = instructions[:20], instructions[20:]
    f = RougeLFilter(threshold=0.7, pool=seeds)
    got = f.filter(cands)
    assert got == reference_decisions
    assert 50 < sum(got) < len(cands) - 50  # both outcomes are well represented
    # The pool grew by exactly the kept candidates, in order.
    assert len(f) == len(seeds) + sum(got)
    assert f.pool == tuple(seeds) + tuple(c for c, k in zip(cands, got) if k)


def test_filter_across_block_boundaries(monkeypatch, instructions, reference_decisions):
    # Tiny blocks exercise the candidate chunking and the pool column blocks.
    monkeypatch.setattr(rouge_filter, "_MAX_BLOCK_ROWS", 7)
    monkeypatch.setattr(rouge_filter, "_MIN_BLOCK_ROWS", 3)
    monkeypatch.setattr(rouge_filter, "_MAX_BLOCK_COLS", 13)
    f = RougeLFilter(pool=instructions[:20])
    assert f.filter(instructions[20:]) == reference_decisions


def test_filter_one_at_a_time_and_dry_run(instructions, reference_decisions):
    seeds, cands = instructions[:20], instructions[20:]
    dry = RougeLFilter(pool=seeds)
    assert dry.filter(cands, add=False) == reference_decisions
    assert dry.pool == tuple(seeds)  # add=False leaves the pool as it was
    f = RougeLFilter(pool=seeds)
    got = []
    for c in cands[:150]:
        novel = f.is_novel(c)
        n = len(f)
        assert f.filter([c]) == [novel]
        assert len(f) == n + novel
        got.append(novel)
    assert got == reference_decisions[:150]


def test_scores_and_max_score_exact(instructions):
    f = RougeLFilter(pool=instructions[:60] + ["", "?!"])
    for text in instructions[60:100] + ["", "!!", "Write a poem about cats."]:
        expected = np.array([ref_f1(text, p) for p in f.pool])
        got = f.scores(text)
        assert got.dtype == np.float64 and got.shape == (len(f),)
        assert np.array_equal(got, expected)
        assert f.max_score(text) == expected.max()
    assert RougeLFilter().max_score("anything") == 0.0
    assert RougeLFilter().scores("anything").shape == (0,)


def test_within_batch_duplicates_and_empty_pool():
    f = RougeLFilter()
    assert f.filter(
        ["Write a poem about cats.", "write a poem about CATS!", "Explain taxes to a child."]
    ) == [True, False, True]
    assert f.pool == ("Write a poem about cats.", "Explain taxes to a child.")


def test_empty_and_punctuation_only_candidates_are_kept():
    cands = ["", "!!!", "...", "", "Write a poem."]
    f = RougeLFilter(pool=["Write a poem."])
    assert (
        f.filter(cands) == ref_filter(cands, ["Write a poem."]) == [True, True, True, True, False]
    )
    assert len(f) == 5  # token-less texts score 0 against everything, so they join the pool


def _tie_texts(lcs: int, la: int, lb: int) -> tuple[str, str]:
    common = [f"w{i}" for i in range(lcs)]
    a = common + [f"a{i}" for i in range(la - lcs)]
    b = common + [f"b{i}" for i in range(lb - lcs)]
    return " ".join(a), " ".join(b)


@pytest.mark.parametrize(
    "lcs,la,lb", [(7, 10, 10), (14, 20, 20), (7, 7, 13), (7, 13, 7), (14, 16, 24), (21, 23, 37)]
)
def test_threshold_tie_follows_rouge_score_floats(lcs, la, lb):
    # All of these are exactly 0.7 in rational arithmetic; rouge_score's float formula lands on
    # 0.7 (kept) for some and on 0.7000000000000001 (rejected) for others.
    cand, pooled = _tie_texts(lcs, la, lb)
    expected = ref_f1(cand, pooled)
    assert abs(expected - 0.7) < 1e-15
    assert rouge_l_f1(cand, pooled) == expected
    f = RougeLFilter(threshold=0.7, pool=[pooled])
    assert f.max_score(cand) == expected
    assert f.is_novel(cand) == (expected <= 0.7)
    assert f.filter([cand]) == ref_filter([cand], [pooled])


def test_tie_cases_cover_both_outcomes():
    kept = ref_f1(*_tie_texts(7, 10, 10))
    rejected = ref_f1(*_tie_texts(7, 7, 13))
    assert kept == 0.7 and rejected > 0.7
    f = RougeLFilter(pool=[_tie_texts(7, 10, 10)[1]])
    assert f.is_novel(_tie_texts(7, 10, 10)[0])
    f = RougeLFilter(pool=[_tie_texts(7, 7, 13)[1]])
    assert not f.is_novel(_tie_texts(7, 7, 13)[0])


@pytest.mark.parametrize("threshold", [-0.1, 0.0, 0.3, 0.5, 0.9, 1.0])
def test_other_thresholds_match(instructions, threshold):
    seeds, cands = instructions[:5], instructions[5:150] + ["", "!!"]
    assert RougeLFilter(threshold=threshold, pool=seeds).filter(cands) == ref_filter(
        cands, seeds, threshold
    )


def test_wide_token_ids_stay_exact(instructions, reference_decisions):
    # Once the one-character-per-token code space is exhausted the filter switches to int ids.
    # Forced here just after the seeds' tokens, so the switch happens while filtering and the
    # existing pool has to be converted too.
    n_seed_tokens = len({t for s in instructions[:20] for t in rouge_tokenize(s)})
    f = RougeLFilter(pool=instructions[:20], _char_limit=n_seed_tokens + 1)
    assert not f._wide
    assert f.filter(instructions[20:]) == reference_decisions
    assert f._wide
    text = instructions[3]
    assert np.array_equal(f.scores(text), [ref_f1(text, p) for p in f.pool])


def test_add_accepts_seed_pool_unconditionally():
    f = RougeLFilter(pool=["Write a poem.", "Write a poem."])
    f.add(["Write a poem!"])
    f.add("Write a poem?")
    assert len(f) == 4
    with pytest.raises(TypeError):
        f.filter("Write a poem.")
