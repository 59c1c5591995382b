"""Task families of the embedded world: instruction grammars, input samplers and exact solvers.

Every family can (1) write an instruction in many phrasings, (2) sample an input, and
(3) compute the ground-truth output of any input it can parse. The teacher LM is trained on
text produced from these families, the checker scores generated records against them, and the
built-in targets draw their validation sets from them.

Instructions may carry *modifiers* (the Evol-Instruct operations write them): a modifier is a
fixed sentence appended to the instruction that changes the expected output in a known way
(``Write the answer in capital letters.``) or not at all (``Check your answer twice.``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------------------- vocabularies
POSITIVE_WORDS = (
    "great",
    "excellent",
    "delicious",
    "friendly",
    "wonderful",
    "amazing",
    "lovely",
    "perfect",
    "pleasant",
    "helpful",
    "fresh",
    "fantastic",
    "superb",
    "comfortable",
    "brilliant",
    "tasty",
    "enjoyable",
    "charming",
    "reliable",
    "beautiful",
)
NEGATIVE_WORDS = (
    "terrible",
    "awful",
    "rude",
    "bland",
    "horrible",
    "dirty",
    "slow",
    "broken",
    "boring",
    "disappointing",
    "noisy",
    "stale",
    "poor",
    "annoying",
    "cold",
    "greasy",
    "useless",
    "ugly",
    "overpriced",
    "unpleasant",
)
REVIEW_SUBJECTS = (
    "the food",
    "the service",
    "the room",
    "the staff",
    "the movie",
    "the phone",
    "the hotel",
    "the pizza",
    "the book",
    "the screen",
    "the coffee",
    "the show",
    "the seats",
    "the music",
    "the delivery",
    "the price",
    "the app",
    "the camera",
    "the bed",
    "the menu",
)
REVIEW_LINKS = ("was", "is", "seemed", "felt", "looked", "tasted")

TOPIC_WORDS = {
    "sports": (
        "team",
        "match",
        "goal",
        "coach",
        "league",
        "player",
        "season",
        "score",
        "cup",
        "striker",
        "tennis",
        "stadium",
        "race",
        "champion",
        "fans",
    ),
    "politics": (
        "election",
        "minister",
        "vote",
        "senate",
        "party",
        "law",
        "president",
        "campaign",
        "policy",
        "mayor",
        "parliament",
        "debate",
        "governor",
        "tax",
        "reform",
    ),
    "science": (
        "study",
        "planet",
        "cells",
        "scientists",
        "energy",
        "climate",
        "telescope",
        "atoms",
        "research",
        "virus",
        "species",
        "genes",
        "robot",
        "ocean",
        "physics",
    ),
    "business": (
        "market",
        "profits",
        "shares",
        "company",
        "bank",
        "sales",
        "startup",
        "stocks",
        "investors",
        "prices",
        "trade",
        "merger",
        "revenue",
        "jobs",
        "retail",
    ),
}
HEADLINE_VERBS = (
    "wins",
    "faces",
    "announces",
    "plans",
    "reports",
    "rejects",
    "backs",
    "delays",
    "shows",
    "reveals",
)

SPAM_WORDS = (
    "free",
    "winner",
    "prize",
    "cash",
    "click",
    "offer",
    "urgent",
    "claim",
    "bonus",
    "lottery",
    "discount",
    "reward",
    "guaranteed",
    "credit",
    "deal",
)
HAM_WORDS = (
    "meeting",
    "lunch",
    "tomorrow",
    "mom",
    "homework",
    "dinner",
    "weekend",
    "project",
    "report",
    "call",
    "party",
    "train",
    "doctor",
    "library",
    "garden",
)
FILLER_WORDS = ("please", "today", "now", "your", "the", "for", "and", "with", "this", "our")

ANIMALS = {
    "mammal": (
        "dog",
        "cat",
        "horse",
        "whale",
        "bat",
        "lion",
        "tiger",
        "mouse",
        "elephant",
        "rabbit",
        "bear",
        "wolf",
        "cow",
        "goat",
        "dolphin",
    ),
    "bird": (
        "eagle",
        "sparrow",
        "penguin",
        "owl",
        "parrot",
        "duck",
        "crow",
        "swan",
        "pigeon",
        "hawk",
        "robin",
        "ostrich",
        "falcon",
        "goose",
        "heron",
    ),
    "fish": (
        "salmon",
        "trout",
        "shark",
        "tuna",
        "cod",
        "carp",
        "goldfish",
        "eel",
        "herring",
        "sardine",
        "pike",
        "bass",
        "mackerel",
        "catfish",
        "perch",
    ),
    "reptile": (
        "snake",
        "lizard",
        "turtle",
        "crocodile",
        "iguana",
        "gecko",
        "tortoise",
        "python",
        "cobra",
        "alligator",
        "chameleon",
        "viper",
        "skink",
        "boa",
        "anole",
    ),
}
ANIMAL_CLASS = {a: c for c, names in ANIMALS.items() for a in names}

SENTENCE_WORDS = (
    "apple",
    "river",
    "green",
    "quick",
    "house",
    "music",
    "winter",
    "garden",
    "yellow",
    "dance",
    "table",
    "window",
    "happy",
    "train",
    "forest",
    "summer",
    "bright",
    "stone",
    "paper",
    "cloud",
    "little",
    "orange",
    "morning",
    "silver",
    "bridge",
    "candle",
    "city",
    "night",
    "road",
    "wind",
    "blue",
    "dog",
    "sings",
    "runs",
    "reads",
    "under",
    "over",
    "near",
    "old",
    "new",
)


# ---------------------------------------------------------------------------- modifiers
@dataclass(frozen=True)
class Modifier:
    """A sentence appended to an instruction and the change it makes to the expected output."""

    name: str
    operation: str  # the Evol-Instruct operation that writes it
    phrase: str
    transform: Callable[[str], str]
    hard_input: bool = False  # the instance generator writes longer inputs for it


MODIFIERS: tuple[Modifier, ...] = (
    Modifier("upper", "add_constraints", "Write the answer in capital letters.", str.upper),
    Modifier("quote", "add_constraints", "Put the answer in double quotes.", lambda y: f'"{y}"'),
    Modifier(
        "prefix",
        "add_constraints",
        "Begin the answer with the word Answer.",
        lambda y: f"Answer: {y}",
    ),
    Modifier("careful", "deepen", "Check your answer twice.", lambda y: y),
    Modifier("every_word", "deepen", "Pay attention to every word of the input.", lambda y: y),
    Modifier(
        "steps",
        "reasoning",
        "Think step by step before giving the final answer.",
        lambda y: f"Let us think step by step. The answer is {y}.",
    ),
    Modifier(
        "long_input",
        "complicate_input",
        "The input is longer than usual.",
        lambda y: y,
        hard_input=True,
    ),
)
MODIFIER_BY_PHRASE = {m.phrase: m for m in MODIFIERS}


# ---------------------------------------------------------------------------- families
@dataclass(frozen=True)
class TaskFamily:
    """One kind of task: how its instructions read, how inputs look, and the exact answer."""

    name: str
    group: str  # "classification", "text" or "math": the focus of a Self-Instruct template
    labels: tuple[str, ...]  # class labels; empty for generative families
    templates: tuple[str, ...]  # instruction phrasings with {slot} fields
    slots: dict[str, tuple[str, ...]]
    concretize: dict[str, str]  # general word -> specific word (Evol "concretizing")
    keywords: tuple[str, ...]
    sample_input: Callable[[np.random.Generator, bool], str]
    solve: Callable[[str], str | None]  # None: the input is not a valid input of this family
    label_input: Callable[[np.random.Generator, str, bool], str] | None = None
    # Phrasings that carry the input inside the instruction ({x}); Self-Instruct has many such
    # tasks without a separate input, and their content makes them diverse.
    inline_templates: tuple[str, ...] = ()
    all_instructions: tuple[str, ...] = field(default=(), compare=False)
    all_inline: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_classification(self) -> bool:
        return bool(self.labels)

    def sample_instruction(self, rng: np.random.Generator) -> str:
        return self.all_instructions[int(rng.integers(len(self.all_instructions)))]

    def sample_inline(
        self, rng: np.random.Generator, hard: bool = False, label: str | None = None
    ) -> tuple[str, str]:
        """An instruction with its input inside, and the answer."""
        x, y = self.sample_example(rng, hard=hard, label=label)
        frame = self.all_inline[int(rng.integers(len(self.all_inline)))]
        return frame.replace("{x}", x), y

    def sample_example(
        self, rng: np.random.Generator, hard: bool = False, label: str | None = None
    ) -> tuple[str, str]:
        """An (input, output) pair; classification families can be asked for a given label."""
        if label is not None and self.label_input is not None:
            x = self.label_input(rng, label, hard)
        else:
            x = self.sample_input(rng, hard)
        y = self.solve(x)
        assert y is not None, (self.name, x)
        return x, y


def _expand(templates: Sequence[str], slots: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Every filling of the slots; ``{x}`` (the inline input) is left in place."""
    out: list[str] = []
    for t in templates:
        names = list(dict.fromkeys(n for n in re.findall(r"{(\w+)}", t) if n != "x"))
        for values in itertools.product(*(slots[n] for n in names)):
            filled = t
            for n, v in zip(names, values):
                filled = filled.replace("{" + n + "}", v)
            out.append(filled)
    return tuple(dict.fromkeys(out))


def _pick(rng: np.random.Generator, seq: Sequence[str]) -> str:
    return seq[int(rng.integers(len(seq)))]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


# --- sentiment
def _review(rng: np.random.Generator, hard: bool, polarity: int | None = None) -> str:
    n_clauses = int(rng.integers(2, 4)) if hard else int(rng.integers(1, 3))
    while True:
        clauses, score = [], 0
        for _ in range(n_clauses):
            positive = bool(rng.random() < 0.5)
            word = _pick(rng, POSITIVE_WORDS if positive else NEGATIVE_WORDS)
            score += 1 if positive else -1
            clauses.append(f"{_pick(rng, REVIEW_SUBJECTS)} {_pick(rng, REVIEW_LINKS)} {word}")
        if score != 0 and (polarity is None or np.sign(score) == polarity):
            text = " and ".join(clauses)
            return text[0].upper() + text[1:] + "."


def _solve_sentiment(x: str) -> str | None:
    words = _words(x)
    score = sum(w in POSITIVE_WORDS for w in words) - sum(w in NEGATIVE_WORDS for w in words)
    return None if score == 0 else ("positive" if score > 0 else "negative")


# --- topic
def _headline(rng: np.random.Generator, hard: bool, topic: str | None = None) -> str:
    topic = topic or _pick(rng, tuple(TOPIC_WORDS))
    vocab = TOPIC_WORDS[topic]
    n = 3 if hard else 2
    words = [_pick(rng, vocab) for _ in range(n)]
    text = f"{words[0]} {_pick(rng, HEADLINE_VERBS)} new {' '.join(words[1:])}"
    return text[0].upper() + text[1:]


def _solve_topic(x: str) -> str | None:
    words = _words(x)
    counts = {t: sum(w in v for w in words) for t, v in TOPIC_WORDS.items()}
    best = max(counts.values())
    winners = [t for t, c in counts.items() if c == best]
    return winners[0] if best > 0 and len(winners) == 1 else None


# --- spam
def _message(rng: np.random.Generator, hard: bool, label: str | None = None) -> str:
    spam = (label == "spam") if label else bool(rng.random() < 0.5)
    n = int(rng.integers(3, 6)) if hard else int(rng.integers(2, 4))
    key = SPAM_WORDS if spam else HAM_WORDS
    words = [_pick(rng, key) for _ in range(n)]
    for _ in range(int(rng.integers(1, 3))):
        words.insert(int(rng.integers(len(words) + 1)), _pick(rng, FILLER_WORDS))
    text = " ".join(words)
    return text[0].upper() + text[1:]


def _solve_spam(x: str) -> str | None:
    words = _words(x)
    s, h = sum(w in SPAM_WORDS for w in words), sum(w in HAM_WORDS for w in words)
    if s == h:
        return None
    return "spam" if s > h else "not spam"


# --- parity
def _number(rng: np.random.Generator, hard: bool, label: str | None = None) -> str:
    n = int(rng.integers(10, 10000 if hard else 100))
    if label is not None and (n % 2 == 0) != (label == "even"):
        n += 1
    return str(n)


def _solve_parity(x: str) -> str | None:
    x = x.strip()
    return ("even" if int(x) % 2 == 0 else "odd") if re.fullmatch(r"\d{1,6}", x) else None


# --- animal
def _animal(rng: np.random.Generator, hard: bool, label: str | None = None) -> str:
    cls = label or _pick(rng, tuple(ANIMALS))
    name = _pick(rng, ANIMALS[cls])
    return f"The {name}" if hard else name


def _solve_animal(x: str) -> str | None:
    words = [w for w in _words(x) if w != "the"]
    return ANIMAL_CLASS.get(words[0]) if len(words) == 1 else None


# --- text families
def _sentence(rng: np.random.Generator, hard: bool) -> str:
    n = int(rng.integers(5, 9)) if hard else int(rng.integers(2, 5))
    return " ".join(_pick(rng, SENTENCE_WORDS) for _ in range(n))


def _solve_reverse(x: str) -> str | None:
    words = x.split()
    ok = words and all(re.fullmatch(r"[a-z]+", w) for w in words)
    return " ".join(reversed(words)) if ok else None


def _solve_upper(x: str) -> str | None:
    return x.upper() if re.fullmatch(r"[a-z]+( [a-z]+)*", x.strip()) else None


def _solve_count(x: str) -> str | None:
    words = x.split()
    return str(len(words)) if words and all(re.fullmatch(r"[a-z]+", w) for w in words) else None


# --- math families
def _two_numbers(rng: np.random.Generator, hard: bool) -> str:
    hi = 1000 if hard else 50
    return f"{int(rng.integers(1, hi))} and {int(rng.integers(1, hi))}"


def _solve_add(x: str) -> str | None:
    m = re.fullmatch(r"\s*(\d{1,4}) and (\d{1,4})\s*", x)
    return str(int(m.group(1)) + int(m.group(2))) if m else None


def _number_list(rng: np.random.Generator, hard: bool) -> str:
    n = int(rng.integers(4, 7)) if hard else int(rng.integers(3, 5))
    return ", ".join(str(int(v)) for v in rng.integers(1, 100, size=n))


def _parse_list(x: str) -> list[int] | None:
    parts = [p.strip() for p in x.split(",")]
    if len(parts) < 2 or not all(re.fullmatch(r"\d{1,3}", p) for p in parts):
        return None
    return [int(p) for p in parts]


def _solve_sort(x: str) -> str | None:
    v = _parse_list(x)
    return ", ".join(str(i) for i in sorted(v)) if v else None


def _solve_max(x: str) -> str | None:
    v = _parse_list(x)
    return str(max(v)) if v else None


def _family(**kw) -> TaskFamily:
    fam = TaskFamily(**kw)
    object.__setattr__(fam, "all_instructions", _expand(fam.templates, fam.slots))
    object.__setattr__(fam, "all_inline", _expand(fam.inline_templates, fam.slots))
    return fam


FAMILIES: tuple[TaskFamily, ...] = (
    _family(
        name="sentiment",
        group="classification",
        labels=("positive", "negative"),
        templates=(
            "Classify the sentiment of the {doc} as positive or negative.",
            "Is the following {doc} positive or negative?",
            "Decide whether the {doc} below {expresses} a positive or a negative opinion.",
            "Read the {doc} and tell if the writer liked it. Answer positive or negative.",
            "Label the {doc} with its sentiment, positive or negative.",
            "Determine if the {doc} is positive or negative.",
        ),
        inline_templates=(
            'Is the {doc} "{x}" positive or negative?',
            'Classify the sentiment of "{x}" as positive or negative.',
            'Someone wrote "{x}". Was that positive or negative?',
            'Tell if "{x}" is a positive or a negative {doc}.',
        ),
        slots={
            "doc": ("review", "customer review", "comment", "feedback", "product review"),
            "expresses": ("expresses", "shows", "gives"),
        },
        concretize={
            "review": "restaurant review",
            "comment": "hotel guest comment",
            "feedback": "product feedback",
        },
        keywords=("sentiment", "positive", "negative", "liked", "opinion"),
        sample_input=lambda rng, hard: _review(rng, hard),
        solve=_solve_sentiment,
        label_input=lambda rng, label, hard: _review(rng, hard, 1 if label == "positive" else -1),
    ),
    _family(
        name="topic",
        group="classification",
        labels=("sports", "politics", "science", "business"),
        # The label list is half of every phrasing; real task writers order it freely and
        # phrase the question many ways, which is what lets new tasks pass Self-Instruct's
        # ROUGE-L filter (with one fixed list, almost every new topic task was a near copy).
        templates=(
            "Classify the topic of the {doc} as {topics}.",
            "Which section does this {doc} belong to: {topics}?",
            "Assign the {doc} to one of the topics {topics}.",
            "What is the {doc} about? Choose {topics}.",
            "Tag the {doc} with its category: {topics}.",
            "Read the {doc} and say which news desk should cover it ({topics}).",
            "Put the {doc} in the right part of the paper, {topics}.",
            "Given a {doc}, name its subject area. Options: {topics}.",
            "Find the theme of the {doc}; answer with {topics}.",
        ),
        inline_templates=(
            'Is the {doc} "{x}" about {topics}?',
            'Classify "{x}" as {topics}.',
            'Which topic fits "{x}": {topics}?',
            'A paper printed "{x}". Which page was it on, {topics}?',
            'Under which heading would you file "{x}"? Pick {topics}.',
        ),
        slots={
            "doc": ("headline", "news headline", "news title", "title"),
            "topics": (
                "sports, politics, science or business",
                "business, science, politics or sports",
                "politics, sports, business or science",
                "science, business, sports or politics",
            ),
        },
        concretize={"headline": "newspaper headline", "title": "article title"},
        keywords=("topic", "sports", "politics", "science", "business", "section", "category"),
        sample_input=lambda rng, hard: _headline(rng, hard),
        solve=_solve_topic,
        label_input=lambda rng, label, hard: _headline(rng, hard, label),
    ),
    _family(
        name="spam",
        group="classification",
        labels=("spam", "not spam"),
        templates=(
            "Decide whether the {doc} is spam or not spam.",
            "Is this {doc} spam or not spam?",
            "Classify the {doc} as spam or not spam.",
            "Tell if the {doc} below is an unwanted spam {doc} or not spam.",
            "Flag the {doc} as spam or not spam.",
        ),
        inline_templates=(
            'Is the {doc} "{x}" spam or not spam?',
            'Classify "{x}" as spam or not spam.',
            'Someone sent "{x}". Is it spam or not spam?',
        ),
        slots={"doc": ("message", "email", "text message", "sms")},
        concretize={"message": "phone message", "email": "work email"},
        keywords=("spam",),
        sample_input=lambda rng, hard: _message(rng, hard),
        solve=_solve_spam,
        label_input=lambda rng, label, hard: _message(rng, hard, label),
    ),
    _family(
        name="parity",
        group="classification",
        labels=("even", "odd"),
        templates=(
            "Tell whether the {num} is {eo}.",
            "Is the given {num} {eo}?",
            "Classify the {num} as {eo}.",
            "Decide if the {num} below is an even {num} or an odd {num}.",
            "Label the {num} {eo}.",
            "Check the last digit of the {num} and say if it is {eo}.",
            "Can the {num} be split into two equal whole halves? Answer {eo}.",
            "Find out whether the {num} divides by two, and write {eo}.",
            "Look at the {num} and state its parity ({eo}).",
            "Work out whether halving the {num} leaves a remainder; reply {eo}.",
            "Your job: read the {num} carefully and reply with {eo}.",
        ),
        inline_templates=(
            "Is {x} {eo}?",
            "Tell whether {x} is an even or an odd {num}.",
            "Classify the {num} {x} as {eo}.",
            "Would you call {x} {eo}?",
            "Someone picked {x}. Is that {num} {eo}?",
            "Check the last digit of {x}: is it {eo}?",
            "If you halve {x}, is anything left over? Say {eo}.",
            "Please say whether the {num} {x} is {eo}.",
        ),
        slots={"num": ("number", "integer", "whole number"), "eo": ("even or odd", "odd or even")},
        concretize={"number": "positive number"},
        keywords=("even", "odd"),
        sample_input=lambda rng, hard: _number(rng, hard),
        solve=_solve_parity,
        label_input=lambda rng, label, hard: _number(rng, hard, label),
    ),
    _family(
        name="animal",
        group="classification",
        labels=("mammal", "bird", "fish", "reptile"),
        templates=(
            "Classify the {animal} as a {classes}.",
            "Is the {animal} a {classes}?",
            "Which class does the {animal} belong to: {classes}?",
            "Name the group of the {animal}: {classes}.",
            "Sort the {animal} into {classes}.",
            "A zoo keeper asks what kind of beast the {animal} is. Answer {classes}.",
            "Say which branch of the animal kingdom the {animal} comes from, {classes}.",
            "Think about how the {animal} lives and breathes, then pick {classes}.",
        ),
        inline_templates=(
            "Is a {x} a {classes}?",
            "Classify the {x} as a {classes}.",
            "Which class does a {x} belong to: {classes}?",
            "We saw a {x} at the zoo. Was it a {classes}?",
            "What kind of animal is the {x}, {classes}?",
        ),
        slots={
            "animal": ("animal", "given animal", "creature"),
            "classes": (
                "mammal, bird, fish or reptile",
                "reptile, fish, bird or mammal",
                "bird, mammal, reptile or fish",
                "fish, reptile, mammal or bird",
            ),
        },
        concretize={"animal": "wild animal"},
        keywords=("mammal", "bird", "fish", "reptile", "animal"),
        sample_input=lambda rng, hard: _animal(rng, hard),
        solve=_solve_animal,
        label_input=lambda rng, label, hard: _animal(rng, hard, label),
    ),
    _family(
        name="reverse",
        group="text",
        labels=(),
        templates=(
            "Reverse the order of the words in the {text}.",
            "Write the {text} with its words in reverse order.",
            "Put the words of the {text} backwards.",
            "Rewrite the {text} so that the last word comes first and the first word comes last.",
            "Flip the word order of the {text}.",
        ),
        inline_templates=(
            'Reverse the order of the words in "{x}".',
            'Write "{x}" with its words backwards.',
            'Flip the word order of "{x}".',
        ),
        slots={"text": ("sentence", "phrase", "text", "given sentence")},
        concretize={"sentence": "short sentence", "phrase": "short phrase"},
        keywords=("reverse", "backwards", "flip", "last word"),
        sample_input=lambda rng, hard: _sentence(rng, hard),
        solve=_solve_reverse,
    ),
    _family(
        name="uppercase",
        group="text",
        labels=(),
        templates=(
            "Convert the {text} to uppercase.",
            "Rewrite the {text} in upper case letters.",
            "Change every letter of the {text} to a capital letter.",
            "Make the {text} all caps.",
            "Turn the {text} into uppercase.",
        ),
        inline_templates=(
            'Convert "{x}" to uppercase.',
            'Write "{x}" in capital letters.',
            'Make "{x}" all caps.',
        ),
        slots={"text": ("sentence", "phrase", "text", "given words")},
        concretize={"sentence": "short sentence", "text": "lowercase text"},
        keywords=("uppercase", "upper case", "capital letter", "caps"),
        sample_input=lambda rng, hard: _sentence(rng, hard),
        solve=_solve_upper,
    ),
    _family(
        name="count_words",
        group="text",
        labels=(),
        templates=(
            "Count the number of words in the {text}.",
            "How many words are there in the {text}?",
            "Tell me how many words the {text} has.",
            "Give the word count of the {text}.",
            "Find the number of words in the {text}.",
        ),
        inline_templates=(
            'How many words are in "{x}"?',
            'Count the words of "{x}".',
            'Give the word count of "{x}".',
        ),
        slots={"text": ("sentence", "phrase", "text", "given sentence")},
        concretize={"sentence": "short sentence", "text": "short text"},
        keywords=("how many words", "number of words", "word count"),
        sample_input=lambda rng, hard: _sentence(rng, hard),
        solve=_solve_count,
    ),
    _family(
        name="addition",
        group="math",
        labels=(),
        templates=(
            "Add the two {nums}.",
            "What is the sum of the two {nums}?",
            "Compute the sum of the {nums} below.",
            "Find the total of the two {nums}.",
            "Calculate the two {nums} added together.",
        ),
        inline_templates=(
            "What is {x}? Add them.",
            "Add {x}.",
            "Compute the sum of {x}.",
        ),
        slots={"nums": ("numbers", "integers", "given numbers", "whole numbers")},
        concretize={"numbers": "positive numbers", "integers": "positive integers"},
        keywords=("sum", "add", "total", "added"),
        sample_input=lambda rng, hard: _two_numbers(rng, hard),
        solve=_solve_add,
    ),
    _family(
        name="sort_numbers",
        group="math",
        labels=(),
        templates=(
            "Sort the {nums} in ascending order.",
            "Arrange the {nums} from smallest to largest.",
            "Put the {nums} in increasing order.",
            "Order the list of {nums} from low to high.",
            "Rewrite the {nums} sorted from the smallest to the largest.",
        ),
        inline_templates=(
            "Sort {x} in ascending order.",
            "Arrange {x} from smallest to largest.",
            "Put the {nums} {x} in increasing order.",
        ),
        slots={"nums": ("numbers", "integers", "given numbers", "values")},
        concretize={"numbers": "positive numbers", "values": "integer values"},
        keywords=("ascending", "smallest to largest", "increasing", "low to high", "sorted"),
        sample_input=lambda rng, hard: _number_list(rng, hard),
        solve=_solve_sort,
    ),
    _family(
        name="max_number",
        group="math",
        labels=(),
        templates=(
            "Find the largest of the {nums}.",
            "Which of the {nums} is the biggest?",
            "Return the maximum of the {nums}.",
            "Pick the highest value among the {nums}.",
            "Tell me the greatest of the {nums} in the list.",
        ),
        inline_templates=(
            "Find the largest of {x}.",
            "Which is the biggest of {x}?",
            "Return the maximum of the {nums} {x}.",
        ),
        slots={"nums": ("numbers", "integers", "given numbers", "values")},
        concretize={"numbers": "positive numbers", "values": "integer values"},
        keywords=("largest", "biggest", "maximum", "highest", "greatest"),
        sample_input=lambda rng, hard: _number_list(rng, hard),
        solve=_solve_max,
    ),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}
GROUPS = ("classification", "text", "math")
CLASSIFICATION_TASKS = tuple(f.name for f in FAMILIES if f.is_classification)


def families_in(group: str | None) -> tuple[TaskFamily, ...]:
    """The families of one group, or all of them for ``None``."""
    return FAMILIES if group is None else tuple(f for f in FAMILIES if f.group == group)


# ---------------------------------------------------------------------------- parsing
def _with_concrete(family: TaskFamily, phrasings: Sequence[str]) -> list[str]:
    out = list(phrasings)
    for i in phrasings:
        for general, specific in family.concretize.items():
            if re.search(rf"\b{general}\b", i):
                out.append(re.sub(rf"\b{general}\b", specific, i, count=1))
    return out


_INSTRUCTION_TO_FAMILY: dict[str, TaskFamily] = {}
_INLINE_PATTERNS: list[tuple[re.Pattern, TaskFamily]] = []
for _f in FAMILIES:  # concretized phrasings belong to the family too
    for _i in _with_concrete(_f, _f.all_instructions):
        _INSTRUCTION_TO_FAMILY.setdefault(_i, _f)
    for _i in dict.fromkeys(_with_concrete(_f, _f.all_inline)):
        _INLINE_PATTERNS.append((re.compile(re.escape(_i).replace(r"\{x\}", "(.+?)")), _f))


def split_modifiers(instruction: str) -> tuple[str, list[Modifier]]:
    """Strip known modifier sentences off the end of an instruction."""
    base, mods = instruction.strip(), []
    changed = True
    while changed:
        changed = False
        for phrase, mod in MODIFIER_BY_PHRASE.items():
            if base.endswith(" " + phrase):
                base = base[: -len(phrase) - 1].rstrip()
                mods.insert(0, mod)
                changed = True
    return base, mods


def parse_instruction(instruction: str) -> tuple[TaskFamily | None, list[Modifier], str | None]:
    """The family (exact phrasing of the grammar), the modifiers, and the inline input if the
    instruction carries one."""
    base, mods = split_modifiers(instruction)
    family = _INSTRUCTION_TO_FAMILY.get(base)
    if family is not None:
        return family, mods, None
    for pattern, fam in _INLINE_PATTERNS:
        m = pattern.fullmatch(base)
        if m:
            return fam, mods, m.group(1)
    return None, mods, None


def identify(instruction: str) -> tuple[TaskFamily | None, list[Modifier]]:
    """The family an instruction belongs to and its modifiers."""
    family, mods, _ = parse_instruction(instruction)
    return family, mods


def expected_output(instruction: str, input_text: str) -> str | None:
    """The ground-truth output for an (instruction, input) pair, or None if it has none.

    An instruction that carries its input inline must come with an empty ``input_text``.
    """
    family, mods, inline = parse_instruction(instruction)
    if family is None:
        return None
    if inline is not None:
        if input_text.strip():
            return None
        input_text = inline
    y = family.solve(input_text)
    if y is None:
        return None
    for m in mods:
        y = m.transform(y)
    return y
