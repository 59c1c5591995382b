"""Self-Instruct's ROUGE-L novelty filter, exact and fast.

Self-Instruct (Wang et al., 2023, "Self-Instruct: Aligning Language Models with Self-Generated
Instructions", ``bootstrap_instructions.py``) keeps a generated instruction only if its ROUGE-L
F1 against every instruction already in the pool is at most 0.7::

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    scores = [scorer.score(new, old)["rougeL"].fmeasure for old in pool]
    if max(scores) > 0.7:
        continue            # rejected
    pool.append(new)        # kept, and compared against from now on

Done that way the filter is quadratic in pure Python (a DP table per pair, re-tokenising both
texts every time) and is the known bottleneck of Self-Instruct at scale. This module makes the
same keep/reject decisions and produces bit-identical F1 values, but:

* every text is tokenised once, with ``rouge_score``'s default tokenizer, and each distinct token
  is mapped to one Unicode code point, so a token sequence becomes a short string and LCS over
  tokens becomes LCS over characters, which rapidfuzz computes bit-parallel (and with SIMD when
  many candidates are scored at once);
* a batch of candidates is screened against the whole pool in one ``rapidfuzz.process.cdist``
  call using the Indel normalised similarity, which is mathematically the ROUGE-L F1
  (``2 * lcs / (len_a + len_b)``), with a cut-off slightly below the threshold; only the few
  pairs that pass are re-scored exactly with ``rouge_score``'s own float formula, so ties at the
  threshold are resolved exactly as ``rouge_score`` resolves them (e.g. an LCS of 7 between two
  10-token texts scores exactly 0.7 and is kept, while 7 between 7 and 13 tokens scores
  0.7000000000000001 and is rejected, although both are 0.7 in exact arithmetic).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Indel, LCSseq

__all__ = ["rouge_tokenize", "rouge_l_f1", "RougeLFilter"]

# rouge_score.tokenize: after lower-casing, everything outside [a-z0-9] becomes a separator, which
# also makes its final "^[a-z0-9]+$" validity check a no-op beyond dropping empty strings.
_NON_ALPHANUM_RE = re.compile(r"[^a-z0-9]+")

# The screening cut-off sits this far below the threshold. rapidfuzz's similarity and
# rouge_score's F1 are the same rational number computed by different float expressions, so they
# differ by a few ulps (~1e-16); the margin only has to dominate that (and float32 storage) to
# guarantee that no pair whose exact F1 exceeds the threshold is screened out.
_SCREEN_MARGIN = 1e-6

# Bounds on the (candidates x pool) block handed to cdist at once, to cap memory on large pools.
_MAX_BLOCK_ROWS = 1024
_MIN_BLOCK_ROWS = 32
_MAX_BLOCK_COLS = 16384
_MAX_BLOCK_ELEMS = 1 << 22

_Encoded = str | list


def rouge_tokenize(text: str) -> list[str]:
    """Tokenise exactly like ``rouge_score``'s default tokenizer without a stemmer.

    Lower-cases, turns every run of characters outside ``[a-z0-9]`` into a separator and splits;
    so punctuation and non-ASCII letters never form tokens.
    """
    return _NON_ALPHANUM_RE.sub(" ", text.lower()).split()


def _f1(lcs: int, len_target: int, len_prediction: int) -> float:
    # Same operations in the same order as rouge_score._score_lcs and scoring.fmeasure, so the
    # float is bit-identical (both are IEEE-754 double, correctly rounded per operation).
    if lcs == 0:
        return 0.0
    precision = lcs / len_prediction
    recall = lcs / len_target
    return 2 * precision * recall / (precision + recall)


def _f1_array(lcs: np.ndarray, len_target: np.ndarray, len_prediction: np.ndarray) -> np.ndarray:
    # Vectorised _f1: numpy's float64 ops are the same correctly rounded IEEE operations, applied
    # in the same order, so every element equals the scalar (and rouge_score) result exactly.
    lcs, len_target, len_prediction = np.broadcast_arrays(
        np.asarray(lcs, dtype=np.float64),
        np.asarray(len_target, dtype=np.float64),
        np.asarray(len_prediction, dtype=np.float64),
    )
    out = np.zeros(lcs.shape, dtype=np.float64)
    mask = lcs > 0  # lcs == 0 covers empty texts too, which rouge_score scores as 0
    precision = lcs[mask] / len_prediction[mask]
    recall = lcs[mask] / len_target[mask]
    out[mask] = 2 * precision * recall / (precision + recall)
    return out


def rouge_l_f1(a: str, b: str) -> float:
    """ROUGE-L F1 of ``a`` (target) and ``b`` (prediction), equal to
    ``RougeScorer(["rougeL"]).score(a, b)["rougeL"].fmeasure`` bit for bit.

    The result does not depend on the argument order, not even in the last bit: F1 is
    ``2*p*r/(p+r)`` and swapping ``p`` and ``r`` only changes ``(2p)*r`` into ``(2r)*p``, both of
    which are exactly ``2*(p*r)``.
    """
    ta, tb = rouge_tokenize(a), rouge_tokenize(b)
    if not ta or not tb:
        return 0.0
    # Map tokens to small ints: rapidfuzz compares ints by value but other objects (e.g. str
    # tokens) by hash, which could collide. As characters they are compared fastest; texts too
    # long for that (ids reaching the surrogate range) stay int lists.
    vocab: dict[str, int] = {}
    ia = [vocab.setdefault(t, len(vocab)) for t in ta]
    ib = [vocab.setdefault(t, len(vocab)) for t in tb]
    if len(vocab) < 0xD800:
        return _f1(
            LCSseq.similarity("".join(map(chr, ia)), "".join(map(chr, ib))), len(ta), len(tb)
        )
    return _f1(LCSseq.similarity(ia, ib), len(ta), len(tb))


class _Codec:
    """Maps each distinct token to one code point, so a text becomes a string with one character
    per token.

    Ids are the code points themselves (surrogates skipped). Once the ~1.1M code points run out
    the codec turns ``wide``: texts become lists of int ids, which rapidfuzz compares by value,
    so results stay exact, only slower.
    """

    _SURROGATES = range(0xD800, 0xE000)

    def __init__(self, char_limit: int = 0x110000) -> None:
        self.char_limit = char_limit
        self.wide = False
        self._ids: dict[str, int] = {}
        self._chars: dict[str, str] = {}
        self._next = 0

    def _new_id(self, token: str) -> int:
        i = self._next
        if i in self._SURROGATES:
            i = self._SURROGATES.stop
        self._next = i + 1
        if i >= self.char_limit:
            self.wide = True
        self._ids[token] = i
        if not self.wide:
            self._chars[token] = chr(i)
        return i

    def encode(self, tokens: list[str]) -> _Encoded:
        ids = self._ids
        for t in tokens:
            if t not in ids:
                self._new_id(t)
        if self.wide:
            return [ids[t] for t in tokens]
        chars = self._chars
        return "".join([chars[t] for t in tokens])


def _widen(enc: _Encoded) -> list:
    # A character's code point is its token id, so widening keeps every comparison unchanged.
    return enc if isinstance(enc, list) else [ord(c) for c in enc]


class RougeLFilter:
    """Self-Instruct's ROUGE-L novelty filter over a growing pool of instructions.

    A candidate is novel when its ROUGE-L F1 (``rouge_score``, no stemmer) against every pool
    instruction is ``<= threshold``; it is rejected when the maximum is ``> threshold``. Decisions
    and scores are identical to ``rouge_score``'s, including at the threshold itself.

    Args:
        threshold: the largest F1 still considered novel (Self-Instruct: 0.7).
        pool: initial instructions, e.g. the human seed tasks; added unconditionally.
        workers: threads rapidfuzz may use per call (``-1`` for all cores).
    """

    def __init__(
        self,
        threshold: float = 0.7,
        pool: Iterable[str] = (),
        workers: int = 1,
        _char_limit: int = 0x110000,
    ) -> None:
        self.threshold = float(threshold)
        self.workers = workers
        self._codec = _Codec(_char_limit)
        self._wide = False
        self._texts: list[str] = []
        self._encs: list[_Encoded] = []
        self._lens = np.zeros(64, dtype=np.int64)
        self.add(pool)

    # ------------------------------------------------------------------ pool bookkeeping

    def __len__(self) -> int:
        """Number of instructions in the pool."""
        return len(self._texts)

    @property
    def pool(self) -> tuple[str, ...]:
        """The pool's instructions, oldest first."""
        return tuple(self._texts)

    def _encode(self, texts: Iterable[str]) -> tuple[list[_Encoded], np.ndarray]:
        encs, lens = [], []
        for text in texts:
            tokens = rouge_tokenize(text)
            encs.append(self._codec.encode(tokens))
            lens.append(len(tokens))
        if self._codec.wide:
            # The codec may have run out of characters part-way: every sequence compared from
            # now on must use int ids, in the pool and in this batch alike.
            if not self._wide:
                self._encs = [_widen(e) for e in self._encs]
                self._wide = True
            encs = [_widen(e) for e in encs]
        return encs, np.asarray(lens, dtype=np.int64)

    def _append(self, texts: Sequence[str], encs: Sequence[_Encoded], lens: np.ndarray) -> None:
        n, k = len(self._texts), len(texts)
        if n + k > len(self._lens):
            grown = np.zeros(max(2 * len(self._lens), n + k), dtype=np.int64)
            grown[:n] = self._lens[:n]
            self._lens = grown
        self._lens[n : n + k] = lens
        self._texts.extend(texts)
        self._encs.extend(encs)

    def _truncate(self, n: int) -> None:
        del self._texts[n:]
        del self._encs[n:]

    def add(self, texts: Iterable[str]) -> None:
        """Add instructions to the pool without checking them (seed tasks, accepted tasks)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        encs, lens = self._encode(texts)
        self._append(texts, encs, lens)

    # ------------------------------------------------------------------ scoring

    def scores(self, text: str) -> np.ndarray:
        """ROUGE-L F1 of ``text`` (target) against every pool item (prediction), in pool order."""
        n = len(self)
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        (enc,), (la,) = self._encode([text])
        lcs = process.cdist(
            [enc], self._encs, scorer=LCSseq.similarity, dtype=np.int32, workers=self.workers
        )[0]
        return _f1_array(lcs, la, self._lens[:n])

    def max_score(self, text: str) -> float:
        """Highest ROUGE-L F1 of ``text`` against the pool; 0.0 for an empty pool."""
        s = self.scores(text)
        return float(s.max()) if len(s) else 0.0

    def is_novel(self, text: str) -> bool:
        """Whether ``text`` would be kept (max F1 against the pool ``<= threshold``); the pool is
        left unchanged."""
        return self.filter([text], add=False)[0]

    def _exceeding(
        self,
        q_encs: list,
        q_lens: np.ndarray,
        p_encs: list,
        p_lens: np.ndarray,
        lower_triangle: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) pairs whose exact F1 (row = target, col = prediction) is > threshold.

        With ``lower_triangle`` the queries are the choices and only col < row is reported.
        """
        cutoff = self.threshold - _SCREEN_MARGIN
        if cutoff > 0.0:
            # Indel normalised similarity is 2*lcs/(la+lb), i.e. F1 up to rounding. Scores below
            # the cut-off come back as 0, so non-zero entries are exactly the screened-in pairs.
            sim = process.cdist(
                q_encs,
                p_encs,
                scorer=Indel.normalized_similarity,
                score_cutoff=min(cutoff, 1.0),
                dtype=np.float32,
                workers=self.workers,
            )
            if lower_triangle:
                sim = np.tril(sim, -1)
            rows, cols = np.nonzero(sim)
        else:
            # A threshold at or below ~0 leaves nothing to screen out (every F1 is >= 0).
            rows, cols = np.indices((len(q_encs), len(p_encs))).reshape(2, -1)
            if lower_triangle:
                below = cols < rows
                rows, cols = rows[below], cols[below]
        if len(rows) == 0:
            return rows, cols
        # Exact LCS for the few screened pairs, then rouge_score's own float formula.
        lcs = process.cpdist(
            [q_encs[i] for i in rows],
            [p_encs[j] for j in cols],
            scorer=LCSseq.similarity,
            dtype=np.int32,
            workers=self.workers,
        )
        over = _f1_array(lcs, q_lens[rows], p_lens[cols]) > self.threshold
        return rows[over], cols[over]

    def filter(self, candidates: Sequence[str], add: bool = True) -> list[bool]:
        """Self-Instruct's filtering loop: for each candidate in order, keep it iff its F1 against
        every pool item is ``<= threshold``; a kept candidate joins the pool before the next
        candidate is checked, so near-duplicates within ``candidates`` are caught too.

        Args:
            candidates: new instructions, in the order Self-Instruct would check them.
            add: commit the kept candidates to the pool. With ``add=False`` the decisions are the
                same (kept candidates still count against later ones in this call) but the pool
                is restored afterwards.

        Returns:
            One bool per candidate: True if kept.
        """
        if isinstance(candidates, str):
            raise TypeError("candidates must be a sequence of strings, not a single string")
        candidates = list(candidates)
        start = len(self)
        encs, lens = self._encode(candidates)
        keep: list[bool] = []
        pos = 0
        while pos < len(candidates):
            n_pool = len(self)
            cols = max(1, min(n_pool, _MAX_BLOCK_COLS))
            rows = max(_MIN_BLOCK_ROWS, min(_MAX_BLOCK_ROWS, _MAX_BLOCK_ELEMS // cols))
            q_encs, q_lens = encs[pos : pos + rows], lens[pos : pos + rows]
            n_q = len(q_encs)

            # Against the pool as it stands (it already holds the kept items of earlier blocks).
            hit = np.zeros(n_q, dtype=bool)
            for c0 in range(0, n_pool, _MAX_BLOCK_COLS):
                c1 = min(n_pool, c0 + _MAX_BLOCK_COLS)
                r, _ = self._exceeding(q_encs, q_lens, self._encs[c0:c1], self._lens[c0:c1])
                hit[r] = True

            # Within the block, candidate i only conflicts with an earlier j that was kept.
            r, c = self._exceeding(q_encs, q_lens, q_encs, q_lens, lower_triangle=True)
            conflicts: dict[int, list[int]] = {}
            for i, j in zip(r.tolist(), c.tolist()):
                conflicts.setdefault(i, []).append(j)
            block_keep = [False] * n_q
            for i in range(n_q):
                block_keep[i] = not hit[i] and not any(block_keep[j] for j in conflicts.get(i, ()))
            kept = [i for i in range(n_q) if block_keep[i]]
            self._append(
                [candidates[pos + i] for i in kept], [q_encs[i] for i in kept], q_lens[kept]
            )
            keep.extend(block_keep)
            pos += n_q
        if not add:
            self._truncate(start)
        return keep
