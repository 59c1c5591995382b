"""Benchmark: Self-Instruct's ROUGE-L novelty filter, ``rouge_score`` loop vs ``RougeLFilter``.

Generates ``n`` instruction-like texts deterministically (templated tasks plus many lightly edited
near-duplicates, seeded numpy RNG), runs Self-Instruct's filtering loop (Wang et al., 2023,
``bootstrap_instructions.py``: keep a candidate iff max ROUGE-L F1 against the pool <= 0.7, kept
candidates join the pool) once with ``rouge_score`` in a plain single-process loop and once with
:class:`datagen_gym.generators.rouge_filter.RougeLFilter`, checks that every keep/reject decision
is identical and writes a Markdown table to ``benchmarks/results/rouge_filter.md``.

    python -m benchmarks.rouge_filter_bench --n 5000 20000 --repeats 3 --reference-limit 5000

The reference is quadratic and slow; ``--reference-limit m`` runs it (and, for a like-for-like
ratio, ``RougeLFilter`` too) on the first ``m`` candidates only. The generator is prefix-stable
(the first ``m`` of ``n`` texts are the ``m``-text data set), so a reference run on the same
prefix earlier in the same invocation is reused rather than repeated.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from datagen_gym.generators.rouge_filter import RougeLFilter

RESULTS = Path(__file__).resolve().parent / "results" / "rouge_filter.md"

# ------------------------------------------------------------------------- data generation

_VERBS = ["Write", "Compose", "Draft", "Create", "Generate", "Produce", "Come up with", "Craft"]
_FORMS = [
    "a short story",
    "a poem",
    "a haiku",
    "an email",
    "a tweet",
    "a product description",
    "a recipe",
    "a cover letter",
    "a dialogue",
    "a news headline",
    "an essay outline",
    "a limerick",
    "a short speech",
    "a movie review",
    "a riddle",
    "a job posting",
    "a slogan",
    "a blog post",
    "a letter of complaint",
    "a motivational quote",
    "a list of interview questions",
    "a lesson plan",
    "a travel itinerary",
    "a song chorus",
]
_ADJS = [
    "remote",
    "healthy",
    "sustainable",
    "urban",
    "ancient",
    "modern",
    "digital",
    "local",
    "renewable",
    "personal",
    "public",
    "financial",
    "childhood",
    "early",
    "online",
    "rural",
    "quantum",
    "classical",
    "competitive",
    "mental",
    "small",
    "international",
    "open",
    "cheap",
    "medieval",
    "tropical",
    "wireless",
    "volcanic",
    "electric",
    "organic",
    "arctic",
    "nuclear",
    "creative",
    "corporate",
    "musical",
    "marine",
    "industrial",
    "seasonal",
    "scientific",
    "global",
    "social",
    "political",
    "ethical",
    "experimental",
    "urban",
]
_NOUNS = [
    "work",
    "eating",
    "energy",
    "gardening",
    "history",
    "architecture",
    "privacy",
    "transportation",
    "education",
    "banking",
    "friendship",
    "music",
    "chess",
    "health",
    "software",
    "farming",
    "photography",
    "trade",
    "science",
    "cooking",
    "sleep",
    "budgeting",
    "volunteering",
    "astronomy",
    "football",
    "recycling",
    "negotiation",
    "poetry",
    "tourism",
    "robotics",
    "medicine",
    "painting",
    "insurance",
    "journalism",
    "forests",
    "oceans",
    "bicycles",
    "coffee",
    "taxes",
    "elections",
    "vaccines",
    "bees",
    "languages",
    "mountains",
    "podcasts",
    "tea",
    "law",
    "startups",
    "museums",
    "rivers",
    "cryptocurrency",
    "yoga",
    "fashion",
    "libraries",
    "pets",
    "marathons",
    "bridges",
    "satellites",
    "dinosaurs",
    "cheese",
    "glaciers",
    "hospitals",
    "video games",
    "rice",
    "wind turbines",
    "deserts",
    "theater",
    "spices",
    "submarines",
    "jazz",
    "sculpture",
]
_CONSTRAINTS = [
    "",
    "",
    "",
    "in under 100 words",
    "for a 10-year-old",
    "using a formal tone",
    "with three bullet points",
    "in the style of Shakespeare",
    "without using the letter e",
    "in exactly five sentences",
    "for a busy professional",
    "that ends with a question",
    "using simple language",
    "with a surprising twist",
]
_AUDIENCES = [
    "a child",
    "a beginner",
    "a software engineer",
    "a retired teacher",
    "my grandmother",
    "a high school student",
    "an investor",
    "a non-native English speaker",
]
_CONCEPTS = [
    "inflation",
    "photosynthesis",
    "recursion",
    "supply and demand",
    "the water cycle",
    "machine learning",
    "compound interest",
    "plate tectonics",
    "natural selection",
    "public key cryptography",
    "the placebo effect",
    "opportunity cost",
    "gravity",
    "the immune system",
    "blockchain",
    "climate change",
    "the stock market",
    "entropy",
]
_INPUTS = [
    (
        "a list of numbers",
        [
            "find the median",
            "sort it in descending order",
            "return the second largest value",
            "compute the average",
        ],
    ),
    (
        "a sentence",
        [
            "identify the verb",
            "correct the grammar",
            "count the words",
            "rewrite it in passive voice",
            "detect the sentiment",
        ],
    ),
    (
        "a paragraph",
        [
            "summarize it in one sentence",
            "extract the named entities",
            "suggest a title",
            "list the main arguments",
        ],
    ),
    (
        "a product review",
        ["classify it as positive or negative", "extract the complaints", "rate it from 1 to 5"],
    ),
    ("two dates", ["compute the number of days between them", "tell which one is a weekend"]),
    ("a word", ["give three synonyms", "use it in a sentence", "find its antonym"]),
]
_ITEMS = [
    "animals",
    "fruits",
    "emails",
    "tweets",
    "news articles",
    "movies",
    "programming languages",
    "countries",
    "chemical elements",
    "sports",
    "headlines",
    "songs",
    "customer messages",
    "recipes",
    "job titles",
    "book titles",
    "cars",
    "diseases",
]
_LABELS = [
    "mammals or reptiles",
    "spam or not spam",
    "positive, negative or neutral",
    "fiction or non-fiction",
    "sweet or sour",
    "compiled or interpreted",
    "urgent or routine",
    "old or new",
    "safe or dangerous",
    "formal or informal",
    "cheap, average or expensive",
    "happy or sad",
]
_LANGUAGES = ["French", "Spanish", "German", "Japanese", "Italian", "Portuguese"]
_STYLES = [
    "in a more formal tone",
    "so that it is easier to read",
    "as a pirate would say it",
    "using fewer words",
    "in the past tense",
    "in a more polite way",
]
_FILLERS = ["please", "briefly", "also", "then", "carefully", "new", "following", "simple"]
_SYNONYMS = {
    "write": "compose",
    "compose": "write",
    "create": "make",
    "short": "brief",
    "list": "enumerate",
    "explain": "describe",
    "find": "determine",
    "give": "provide",
    "following": "given",
    "important": "crucial",
    "tips": "suggestions",
}


def _pick(rng: np.random.Generator, xs: Sequence):
    return xs[int(rng.integers(len(xs)))]


def _topic(rng: np.random.Generator) -> str:
    words = [_pick(rng, _ADJS)] if rng.random() < 0.6 else []
    words.append(_pick(rng, _NOUNS))
    if rng.random() < 0.3:
        words += ["and", _pick(rng, _NOUNS)]
    return " ".join(words)


def _fresh(rng: np.random.Generator) -> str:
    topic = _topic(rng)
    kind = int(rng.integers(15))
    if kind == 0:
        c = _pick(rng, _CONSTRAINTS)
        return f"{_pick(rng, _VERBS)} {_pick(rng, _FORMS)} about {topic}{' ' + c if c else ''}."
    if kind == 1:
        return f"Explain {_pick(rng, _CONCEPTS)} to {_pick(rng, _AUDIENCES)}."
    if kind == 2:
        what, tasks = _pick(rng, _INPUTS)
        return f"Given {what} about {topic}, {_pick(rng, tasks)}."
    if kind == 3:
        return (
            f"What are the {int(rng.integers(2, 11))} most important things to consider "
            f"when {_pick(rng, ['starting', 'funding', 'planning', 'judging'])} {topic}?"
        )
    if kind == 4:
        return f"Classify the following {_pick(rng, _ITEMS)} as {_pick(rng, _LABELS)}."
    if kind == 5:
        return f"Rewrite this {topic} sentence {_pick(rng, _STYLES)}."
    if kind == 6:
        return (
            f"Translate this {_pick(rng, ['sentence', 'paragraph', 'email', 'poem'])} about "
            f"{topic} into {_pick(rng, _LANGUAGES)}."
        )
    if kind == 7:
        return f"How does {_pick(rng, _CONCEPTS)} affect {topic}?"
    if kind == 8:
        return (
            f"Compare {topic} with {_topic(rng)} "
            f"{_pick(rng, ['', 'in a table', 'for ' + _pick(rng, _AUDIENCES)])}".rstrip()
            + "."
        )
    if kind == 9:
        return f"Why do people {_pick(rng, ['love', 'fear', 'ignore', 'study'])} {topic}?"
    if kind == 11:
        return (
            f"Design {_pick(rng, ['an app', 'a game', 'a workshop', 'a course', 'a campaign'])}"
            f" that helps {_pick(rng, _AUDIENCES)} learn about {topic} "
            f"{_pick(rng, _CONSTRAINTS)}".rstrip()
            + "."
        )
    if kind == 12:
        return (
            f"Plan a {_pick(rng, _ADJS)} {_pick(rng, ['party', 'trip', 'meeting', 'dinner'])}"
            f" for {int(rng.integers(2, 40))} people who like {_topic(rng)} and "
            f"{_pick(rng, _NOUNS)}."
        )
    if kind == 13:
        return (
            f"Find {_pick(rng, ['errors', 'bias', 'jargon', 'clichés'])} in this "
            f"{_pick(rng, _FORMS)[2:].strip()} on {topic} and {_pick(rng, _STYLES)[3:]}."
        )
    if kind == 10:
        return f"{_pick(rng, _FORMS).capitalize()} on {topic} {_pick(rng, _CONSTRAINTS)}".rstrip()
    return (
        f"Give me {int(rng.integers(3, 8))} tips for {topic} "
        f"{_pick(rng, ['on a budget', 'as a beginner', 'at home', 'in winter', ''])}".rstrip()
        + _pick(rng, [".", "!", "?"])
    )


def _near_duplicate(rng: np.random.Generator, text: str) -> str:
    words = text.rstrip(".!?").split()
    for _ in range(int(rng.integers(1, 4))):
        op = int(rng.integers(6))
        i = int(rng.integers(len(words)))
        if op == 0 and len(words) > 3:
            del words[i]
        elif op == 1:
            words.insert(i, _pick(rng, _FILLERS))
        elif op == 2:
            words[i] = _SYNONYMS.get(words[i].lower(), words[i])
        elif op == 3:
            words[i] = words[i].upper() if rng.random() < 0.5 else words[i].lower()
        elif op == 4:
            words.append(_pick(rng, _CONSTRAINTS) or "quickly")
        else:
            words[i] = f"{_pick(rng, _ADJS)} {words[i]}"
    return " ".join(words) + _pick(rng, [".", "", "?", " !", "..."])


def generate_instructions(n: int, seed: int = 0, dup_rate: float = 0.3) -> list[str]:
    """``n`` instruction-like texts; about ``dup_rate`` of them lightly edit an earlier one.

    Prefix-stable: the first ``m`` texts of ``generate_instructions(n, seed)`` are
    ``generate_instructions(m, seed)``.
    """
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < dup_rate:
            out.append(_near_duplicate(rng, out[int(rng.integers(len(out)))]))
        else:
            out.append(_fresh(rng))
    return out


# ------------------------------------------------------------------------- the two filters


def reference_filter(
    candidates: Sequence[str], seeds: Sequence[str], threshold: float = 0.7
) -> list[bool]:
    """Self-Instruct's loop with ``rouge_score`` (single process, as the paper's code minus its
    ``multiprocessing.Pool``): keep iff max F1 against the pool <= threshold."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = list(seeds)
    keep = []
    for inst in candidates:
        scores = [scorer.score(inst, old)["rougeL"].fmeasure for old in pool]
        if scores and max(scores) > threshold:
            keep.append(False)
            continue
        keep.append(True)
        pool.append(inst)
    return keep


def ours_filter(
    candidates: Sequence[str], seeds: Sequence[str], threshold: float = 0.7
) -> list[bool]:
    """The same loop with :class:`RougeLFilter` (pool construction included in the timing)."""
    return RougeLFilter(threshold=threshold, pool=seeds).filter(candidates)


def _time(fn: Callable[[], list[bool]], repeats: int, label: str) -> tuple[float, list[bool]]:
    times, decisions = [], None
    for r in range(repeats):
        t0 = time.perf_counter()
        d = fn()
        times.append(time.perf_counter() - t0)
        print(f"  {label} run {r + 1}/{repeats}: {times[-1]:.3f} s", file=sys.stderr, flush=True)
        if decisions is not None and d != decisions:
            raise AssertionError(f"{label}: non-deterministic decisions")
        decisions = d
    return statistics.median(times), decisions


# ------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and write it to ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[5000], help="candidate counts")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per filter (median)")
    ap.add_argument(
        "--reference-repeats",
        type=int,
        default=None,
        help="timed rouge_score runs (default: --repeats)",
    )
    ap.add_argument(
        "--reference-limit",
        type=int,
        default=None,
        help="run rouge_score on at most this many candidates (a prefix)",
    )
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--seeds", type=int, default=175, help="seed instructions in the pool")
    ap.add_argument("--seed", type=int, default=0, help="RNG seed of the generator")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    ref_repeats = args.reference_repeats or args.repeats
    cmd_args = list(sys.argv[1:] if argv is None else argv)

    import rapidfuzz
    import rouge_score  # noqa: F401  (fail early if missing)

    seeds = generate_instructions(args.seeds, seed=args.seed + 1, dup_rate=0.0)
    cores = os.cpu_count()
    ref_cache: dict[int, tuple[list[str], float, list[bool]]] = {}
    rows = []
    for n in args.n:
        cands = generate_instructions(n, seed=args.seed)
        m = n if args.reference_limit is None else min(n, args.reference_limit)
        prefix = cands[:m]
        print(f"n={n}: rouge_score on {m} candidates", file=sys.stderr, flush=True)
        reused = m in ref_cache and ref_cache[m][0] == prefix
        if reused:
            _, ref_s, ref_d = ref_cache[m]
        else:
            ref_s, ref_d = _time(
                lambda prefix=prefix: reference_filter(prefix, seeds, args.threshold),
                ref_repeats,
                "rouge_score",
            )
            ref_cache[m] = (prefix, ref_s, ref_d)
        ours_s, ours_d = _time(
            lambda prefix=prefix: ours_filter(prefix, seeds, args.threshold),
            args.repeats,
            "RougeLFilter",
        )
        full_s, full_d = ours_s, ours_d
        if m < n:
            full_s, full_d = _time(
                lambda cands=cands: ours_filter(cands, seeds, args.threshold),
                args.repeats,
                "RougeLFilter (all n)",
            )
            # Decisions are sequential, so the prefix's must be the start of the full run's.
            assert full_d[:m] == ours_d
        identical = ref_d == ours_d
        rows.append(
            dict(
                n=n,
                m=m,
                reused=reused,
                ref_s=ref_s,
                ours_s=ours_s,
                full_s=full_s,
                ratio=ref_s / ours_s,
                identical=identical,
                kept=sum(full_d),
                pool=args.seeds + sum(full_d),
            )
        )

    lines = [
        "# Self-Instruct ROUGE-L filter: `rouge_score` vs `RougeLFilter`",
        "",
        f"Command: `{' '.join(['python -m benchmarks.rouge_filter_bench', *cmd_args])}`",
        "",
        f"Threshold {args.threshold} (keep iff max F1 <= threshold), {args.seeds} seed "
        f"instructions in the initial pool, generator seed {args.seed}. Times are the median of "
        f"{args.repeats} runs ({ref_repeats} for rouge_score), single process, "
        f"rapidfuzz workers=1.",
        "",
        "| n | reference on | rouge_score (s) | RougeLFilter, same input (s) | speed-up "
        "| RougeLFilter, all n (s) | kept / n | decisions identical | machine cores |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        on = "all" if r["m"] == r["n"] else f"first {r['m']} (prefix)"
        if r["reused"]:
            on += ", timing reused"
        lines.append(
            f"| {r['n']} | {on} | {r['ref_s']:.2f} | {r['ours_s']:.3f} | {r['ratio']:.0f}x "
            f"| {r['full_s']:.3f} | {r['kept']} / {r['n']} | {'yes' if r['identical'] else 'NO'} "
            f"| {cores} |"
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines += [
        "",
        f"Machine: {platform.processor() or platform.machine()}, {cores} cores, load average "
        f"at the end {load} (other jobs were running); Python {platform.python_version()}, "
        f"rapidfuzz {rapidfuzz.__version__}, numpy {np.__version__}.",
        "",
    ]
    if any(r["m"] < r["n"] for r in rows):
        lines += [
            "For rows whose reference ran on a prefix, the speed-up compares both filters "
            'on that prefix and "decisions identical" covers the prefix; the last time '
            "column is RougeLFilter on all n candidates.",
            "",
        ]
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
