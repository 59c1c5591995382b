"""Parsers for what the teacher writes back, tolerant of what instruct models write.

The papers' formats are parsed by :mod:`datagen_gym.generators.prompts` (``parse_bootstrap``,
``parse_input_first``, ``parse_output_first``, ``parse_evol``); the embedded teacher writes
exactly those formats. A real instruct model, prompted in chat format, answers the same prompts
as a chat reply: a preamble ("Sure! Here are ...:"), its own numbering, markdown, quotes, labels
spelled its own way, a bare answer without the ``Output:`` label, commentary after the answer.

Each function here takes such a reply apart with small named rules, each undoing one habit, and
then hands the rest to the paper's parser; on text in the papers' formats every rule is the
identity. The rules read chat replies only (``chat=True``, see :func:`replies_in_chat`): a
completion continues the prompt in the papers' format and is read by the papers' parsers, as in
the papers. So the embedded teacher, a completion model, is read exactly as before, including
the malformed text it samples at high temperature, where some rules would otherwise fire (an
echoed "#Rewritten Prompt#:", an unlabelled line). The papers' filters (length, blacklist,
ROUGE-L, instance clean-up, Evol-Instruct elimination) are not here: they run on what these
parsers return, unchanged.
"""

from __future__ import annotations

import re

from datagen_gym.backends.base import finish_reason
from datagen_gym.generators import prompts


def replies_in_chat(backend: object) -> bool:
    """Whether ``backend`` sends each prompt as a user turn of a chat (a local model with
    ``prompt_format="chat"``, an OpenAI-compatible server's chat endpoint), so that what comes
    back is a chat reply rather than a continuation of the prompt."""
    return (
        getattr(backend, "prompt_format", None) == "chat"
        or getattr(backend, "endpoint", None) == "chat"
    )


# ---------------------------------------------------------------------------- shared rules

# Words a chat reply opens with before the answer ("Sure!", "Certainly.", "Okay, ...").
_INTERJECTION = re.compile(
    r"^[ \t]*(?:sure(?: thing)?|certainly|of course|absolutely|okay|ok|alright|all right|"
    r"great|gladly|no problem)[ \t]*[!.,]+[ \t]*",
    re.I,
)
# "I'd be happy to help!" and the like.
_HAPPY_TO_HELP = re.compile(
    r"^[ \t]*i(?:'d| would) (?:be )?(?:happy|glad|love)\b[^.!:\n]*[.!]+[ \t]*", re.I
)
# Phrases that introduce what follows ("Here are some more tasks:", "Below is ...:").
_INTRO = re.compile(
    r"^(?:here(?:'s| is| are)|below (?:is|are)|the following|let(?:'s| me| us)|"
    r"i(?:'ll| will| can|'ve| have)|these are|this is)\b",
    re.I,
)
# "Here's the rewritten prompt: X" on one line: the clause before the colon names the answer.
_INTRO_CLAUSE = re.compile(
    r"^(?:here(?:'s| is| are)|below (?:is|are))\b[^:\n]{0,80}?"
    r"\b(?:prompts?|versions?|examples?|tasks?|instructions?|answers?|outputs?|responses?|"
    r"rewrites?|questions?)\b[^:\n]{0,20}:[ \t]+(?=\S)",
    re.I,
)
# Commentary after the answer ("I hope this helps!", "Let me know if ...", "Note: ...").
_COMMENTARY = re.compile(
    r"^[ \t]*(?:[*_(]+[ \t]*)?(?:i hope|hope this|let me know|please let me know|feel free|"
    r"note:|note that|explanation:|in this example|this example|these examples|each of these|"
    r"these tasks|i've |i have (?:provided|created|generated|written)|if you (?:have|need|want))",
    re.I,
)
# An item marker a chat model numbers its list with: "1.", "1)", "(1)", "- ", "* ", "• ",
# "**1.**", "Task 1:", "**Task 1:**", "### 1.", optionally behind a markdown heading.
_MARKER = re.compile(
    r"^(?P<indent>[ \t]*)(?:#{1,6}[ \t]*)?(?:"
    r"(?P<num>(?:\*\*|__)?\(?(?P<n>\d{1,3})[ \t]?[.):](?:\*\*|__)?)(?=[ \t]|$)|"
    r"(?P<bullet>[-*•+])(?=[ \t])|"
    r"(?P<task>(?:\*\*|__)?(?:task|instruction|question)[ \t]*#?(?P<tn>\d{1,3})[ \t]*[:.)]?"
    r"(?:\*\*|__)?[ \t]*[:.)]?)(?=[ \t]|$)"
    r")[ \t]*",
    re.I,
)


def _first_line_and_rest(text: str) -> tuple[str, str, str]:
    """``(blank lines before, first non-blank line, the rest after its newline)``."""
    lead = re.match(r"(?:[ \t]*\n)*", text).group(0)
    body = text[len(lead) :]
    line, newline, rest = body.partition("\n")
    return lead, line, rest if newline else ""


def _strip_markdown_line(line: str) -> str:
    """A line without the bold, italics or heading marks chat models dress it in."""
    return line.strip().strip("*_#").strip()


def _drop_preamble_line(line: str) -> str | None:
    """Chat replies open with "Sure! Here are some more tasks:" or "Certainly." before the
    answer. ``None``: the line is all preamble; else the line without a leading interjection
    (the line itself when it has none)."""
    if not line.strip():
        return line
    rest = _HAPPY_TO_HELP.sub("", _INTERJECTION.sub("", line))
    had_interjection = rest != line
    bare = _strip_markdown_line(rest)
    if not bare:
        return None
    if bare.endswith(":") and len(bare.split()) <= 25 and (had_interjection or _INTRO.match(bare)):
        return None
    return rest if had_interjection else line


def _skip_preamble(text: str) -> tuple[str, bool]:
    """Instruct models open with a preamble line or two ("Sure! Here are ...:", "Certainly!",
    "Here is an example:"): drop them. Returns the text and whether anything was dropped; text
    that opens with its answer comes back unchanged."""
    skipped = False
    for _ in range(3):
        lead, line, rest = _first_line_and_rest(text)
        kept = _drop_preamble_line(line)
        if kept is None:
            text, skipped = re.sub(r"\A(?:[ \t]*\n)+", "", rest), True
            continue
        if kept != line:
            text, skipped = kept + ("\n" + rest if rest else ""), True
        break
    return text, skipped


def _drop_intro_clause(text: str) -> str:
    """A lead-in on the answer's own line ("Here's the rewritten prompt: X"): keep X."""
    lead, line, rest = _first_line_and_rest(text)
    stripped = _INTRO_CLAUSE.sub("", line.lstrip())
    if stripped == line.lstrip():
        return text
    return lead + stripped + ("\n" + rest if rest else "")


def _cut_commentary(text: str) -> str:
    """Chat replies end with commentary after the answer ("I hope this helps!", "Let me know
    if you need more.", "Note: ..."): cut from the first line (not the first) that opens so."""
    lines = text.split("\n")
    for i in range(1, len(lines)):
        if _COMMENTARY.match(lines[i]):
            return "\n".join(lines[:i]).rstrip() + "\n"
    return text


def _strip_emphasis(text: str) -> str:
    """Markdown emphasis around words: "**Classify** the review", "*positive*", "__x__"."""
    text = re.sub(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", r"\2", text)
    return re.sub(r"(?<![\w*])([*_])(?=[^\s*_])([^*_\n]+?)(?<=[^\s*_])\1(?![\w*])", r"\2", text)


_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "`": "`"}


def _strip_quotes(text: str) -> str:
    """Models put a whole answer in quotes ('"Classify the review."'), sometimes with the
    full stop outside ('"Classify the review".'). Quotes inside the text stay."""
    text = text.strip()
    if len(text) < 3 or text[0] not in _QUOTES:
        return text
    close = _QUOTES[text[0]]
    tail = text[-1] if text[-1] in ".!?" and text[-2] == close else ""
    inner = text[1 : len(text) - 1 - len(tail)]
    if text[len(text) - 1 - len(tail)] == close and text[0] not in inner and close not in inner:
        return inner.strip() + (tail if inner.strip()[-1:] not in ".!?" else "")
    return text


def _strip_wrapping_emphasis(value: str) -> str:
    """A whole value in markdown emphasis ("**Positive**"): drop the asterisks."""
    m = re.fullmatch(r"\s*(\*\*|__|\*|_)(?=\S)(.+?)(?<=\S)\1\s*", value, re.S)
    return m.group(2) if m and m.group(1) not in m.group(2) else value


def _strip_task_echo(text: str) -> str:
    """Chat replies to instance prompts often repeat the prompt's "Task: ..." line first."""
    lead, line, rest = _first_line_and_rest(text)
    if re.match(r"[ \t]*(?:\*\*)?task(?:\*\*)?[ \t]*:(?:\*\*)?", line, re.I):
        return rest
    return text


# ---------------------------------------------------------------------------- Self-Instruct


def _strip_enumeration(item: str) -> str:
    """A list restart or the model's own numbering left on an instruction ("1. Determine ...",
    "2) ...", "- ...", "**Task 1:** ..."): drop it."""
    for _ in range(2):
        m = _MARKER.match(item)
        if not m or not item[m.end() :].strip():
            break
        item = item[m.end() :]
    return item


def _strip_title(item: str) -> str:
    """A bold title before the instruction ("**Sentiment:** Classify ...", "**Sentiment**:
    Classify ...") or a field label ("Instruction: Classify ..."): keep the instruction."""
    item = re.sub(r"^[ \t]*(\*\*|__)[^*_\n]{1,60}?:[ \t]*\1[ \t]*(?=\S)", "", item)
    item = re.sub(r"^[ \t]*(\*\*|__)[^*_:\n]{1,60}?\1[ \t]*:[ \t]*(?=\S)", "", item)
    return re.sub(r"^[ \t]*(?:new )?(?:task|instruction)[ \t]*:[ \t]*(?=\S)", "", item, flags=re.I)


def _clean_instruction(item: str) -> str:
    """One instruction: without numbering, titles, emphasis or surrounding quotes; whitespace
    collapsed and the first letter upper-cased as the paper's parser does."""
    item = _strip_quotes(_strip_emphasis(_strip_title(_strip_enumeration(item))))
    item = re.sub(r"\s+", " ", item).strip()
    return item[0].upper() + item[1:] if item else ""


def _list_items(text: str) -> list[str]:
    """The items of a chat model's own list. It numbers from 1 again (or uses bullets, or
    "Task k:"), may leave blank lines between items and puts explanations, sub-bullets or
    commentary on lines of their own: an item is one line with the first item's kind of marker
    at no deeper indent; other lines are not instructions. Task 16 stops the list, as the
    paper's stop sequence does."""
    kind, indent, items = None, 0, []
    for line in text.split("\n"):
        m = _MARKER.match(line)
        if not m:
            continue
        k = "num" if m.group("num") else "bullet" if m.group("bullet") else "task"
        depth = len(m.group("indent").expandtabs(4))
        if kind is None:
            kind, indent = k, depth
        if k != kind or depth > indent:
            continue
        number = m.group("n") or m.group("tn")
        if number is not None and int(number) == prompts.MAX_TASK_NUMBER:
            break
        items.append(line[m.end() :])
    return items


def parse_bootstrap(continuation: str, chat: bool = True) -> list[str]:
    """Task instructions from the LM's continuation of :func:`prompts.bootstrap_prompt`.

    A continuation that carries on the prompt's list (the paper's format) is split by
    :func:`prompts.parse_bootstrap`. A reply the token budget cut inside its last task (its
    :func:`~datagen_gym.backends.base.finish_reason` is ``"length"``) loses that task, as in
    Self-Instruct, whichever parser read it. A chat reply that opens with a preamble or its
    own list marker (a restart at "1.", bullets, "**Task 1:**") is read as a list, one task per
    marked line; after a preamble, unmarked lines are one task each. ``chat=False``: the
    papers' parser alone.
    """
    items = _chat_list_items(continuation) if chat else prompts.parse_bootstrap(continuation)
    if items and _cut_by_budget(continuation, items[-1]):
        items = items[:-1]
    return [c for c in (_clean_instruction(i) for i in items) if c] if chat else items


def _chat_list_items(continuation: str) -> list[str]:
    """The raw task items of a chat reply to the bootstrap prompt (see :func:`parse_bootstrap`)."""
    text, skipped = _skip_preamble(continuation)
    lead, line, rest = _first_line_and_rest(text)
    if not _MARKER.match(line) and _strip_markdown_line(line).endswith(":"):
        # A heading of the model's own ("A different set of questions:") before its list.
        if _MARKER.match(_first_line_and_rest(rest)[1]):
            text, skipped = rest, True
    if _MARKER.match(_first_line_and_rest(text)[1]):
        return _list_items(text)
    if skipped:
        return _cut_commentary(text).strip("\n").split("\n\n")[0].split("\n")
    return prompts.parse_bootstrap(text)


def _cut_by_budget(continuation: str, last_item: str) -> bool:
    """Whether the token budget cut the reply inside its last task (Self-Instruct drops a
    reply's last instruction when the API reports ``finish_reason == "length"``; here only when
    that task is what the reply ends with, not a finished list followed by cut commentary)."""
    if finish_reason(continuation) != "length":
        return False
    tail = re.sub(r"\s+", " ", last_item).strip().casefold()  # the papers' parser capitalises
    return bool(tail) and re.sub(r"\s+", " ", continuation).rstrip().casefold().endswith(tail)


# "... is not a classification task", "isn't classification", "not really a classification".
_NOT_CLASSIFICATION = re.compile(
    r"\b(?:not|n't|no)\b(?:\s+\w+){0,3}?\s+(?:a\s+|an\s+)?classification\b", re.I
)
# "This task is a classification task", "It is classification".
_IS_CLASSIFICATION = re.compile(r"\bis\s+(?:a\s+|an\s+)?classification\b", re.I)
_YES_NO = re.compile(r"\b(yes|no)\b", re.I)


def parse_classification_check(continuation: str, chat: bool = True) -> bool:
    """Self-Instruct's yes/no answer. A chat reply may put markdown or quotes around it
    ("**Yes**"), an "Answer:" label before it, or answer in a sentence: a reply that does not
    open with Yes or No is read by what it says ("... is not a classification task": no;
    "This task is a classification task": yes), else by its first "yes" or "no" ("The answer
    is Yes."). A reply that says neither (a preamble cut by the token budget, "To answer this")
    is no, as in the paper."""
    if not chat:
        # The first word, not the first letters: "Yesterday" is no answer. A base model writes
        # " Yes\n\nTask" (the next example) in its 3 tokens: the rest does not count.
        return bool(re.match(r"\s*yes\b", continuation, re.I))
    text = re.sub(r"^[\s*_\"'`]+", "", continuation)
    text = re.sub(r"^answer[ \t]*:[\s*_\"'`]*", "", text, flags=re.I)
    opening = _YES_NO.match(text)
    if opening:
        return opening.group(1).lower() == "yes"
    if _NOT_CLASSIFICATION.search(text):
        return False
    if _IS_CLASSIFICATION.search(text):
        return True
    first = _YES_NO.search(text)
    return bool(first) and first.group(1).lower() == "yes"


# ---------------------------------------------------------------------------- instances

_INSTANCE_LABELS = {"input": "Input:", "output": "Output:", "class label": "Class label:"}
_FIELD_LABEL = re.compile(
    r"^(?:[ \t]*[-*•][ \t]+)?[ \t]*(?:\*\*|__|\*|_)?(?P<name>input|output|class[ \t]*label|label)"
    r"(?:\*\*|__|\*|_)?[ \t]*(?::|[-\u2013\u2014](?=[ \t]))(?:[ \t]*(?:\*\*|__|\*|_)(?![*_\w]))?",
    re.I | re.M,
)
_EXAMPLE_HEADING = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*example[ \t]*#?(\d+)[ \t]*[:.]?[ \t]*"
    r"(?:\*\*|__)?[ \t]*:?[ \t]*$",
    re.I | re.M,
)


def _normalise_field_labels(text: str, labels: tuple[str, ...]) -> str:
    """Field labels spelled the model's way ("**Input:**", "Input -", "OUTPUT:", "Class
    Label:", "- Output: ..."): rewrite them as the paper's ("Input:", "Output:",
    "Class label:"). ``labels`` names the ones this format has; "Label:" reads as "Class
    label:" where that is one."""

    def canonical(m: re.Match) -> str:
        name = re.sub(r"[ \t]+", " ", m.group("name").lower())
        name = "class label" if name in ("classlabel", "label") else name
        if name not in labels:
            return m.group(0)
        return _INSTANCE_LABELS[name]

    return _FIELD_LABEL.sub(canonical, text)


def _normalise_example_headings(text: str) -> str:
    """Example headings spelled the model's way ("Example 1:", "**Example 2**", "### Example
    3"): rewrite them as the paper's "Example k" lines."""
    return _EXAMPLE_HEADING.sub(lambda m: f"Example {m.group(1)}", text)


def _separate_examples(text: str) -> str:
    """Chat models write several "Input: ... Output: ..." pairs without "Example k" lines
    between them: put one before each "Input:" that follows an "Output:"."""
    out, seen_output, k = [], False, 1
    for line in text.split("\n"):
        if line.startswith("Output:") and not seen_output:
            seen_output = True
        elif line.startswith(("Input:", "Output:")) and seen_output:
            # an output after an output is a pair of its own ("Output: positive\nOutput: negative")
            seen_output = line.startswith("Output:")
            k += 1
            while out and not out[-1].strip():
                out.pop()
            out += ["", f"Example {k}"]
        elif re.fullmatch(r"Example \d+", line):
            seen_output = False
        out.append(line)
    return "\n".join(out)


def _clean_pair(x: str, y: str) -> tuple[str, str]:
    """An input and an output (or label), each without markdown emphasis around it."""
    return _strip_wrapping_emphasis(x).strip(), _strip_wrapping_emphasis(y).strip()


# A "Key: value" line ("Sentence: ...", "The answer is: ..."): a field the model named itself.
_KEY_VALUE_LINE = re.compile(r"[ \t]*[^\s:]{1,30}(?:[ \t][^\s:]+){0,2}[ \t]*:(?:\s|$)")


def _bare_answer(text: str) -> str | None:
    """A chat reply that answers directly, without the "Output:" label ("The sentence is
    positive."), is the output of a task without input. Taken only when that is unambiguous:
    one paragraph, no field labels or example headings, no list, no "Key: value" lines (an
    input or an answer the model labelled its own way), not a lead-in ending with ":"."""
    body = text.strip()
    if not body or "\n\n" in body or body.endswith(":"):
        return None
    for line in body.split("\n"):
        if _MARKER.match(line) or _KEY_VALUE_LINE.match(_strip_emphasis(line)):
            return None
    if re.search(r"^(?:Input|Output|Class label):|^Example \d+$", body, re.M):
        return None
    return body


def _cut_at_next_task(text: str, keep_first: bool = False) -> str:
    """Small models run on into a new task: a "Task: ..." line (the prompts' own format for
    the next task) after the answer starts one. Cut the text there. ``keep_first``: a first
    "Task:" line before any field (a chat reply echoing its task) does not cut."""
    for m in re.finditer(r"^[ \t]*(?:\*\*)?Task(?:\*\*)?[ \t]*:", text, re.M):
        if keep_first and not re.search(r"^(?:Input|Output|Class label):", text[: m.start()], re.M):
            continue
        return text[: m.start()]
    return text


# The example task the instruct input-first prompt shows (chat_prompts.INPUT_FIRST_EXAMPLE):
# small models copy it, pair and all, before or instead of their own example.
_SHOWN_EXAMPLE = re.compile(
    r"^[ \t]*Task:[ \t]*Give the capital city of the country\.?[ \t]*\n"
    r"(?:[ \t]*\n)*Input:[ \t]*\"?France\"?[ \t]*\n(?:[ \t]*\n)*Output:[ \t]*\"?Paris\"?[ \t]*$",
    re.M | re.I,
)


def _cut_outputs_at_blank_line(text: str) -> str:
    """A small chat model writes commentary or another format after its answer, after a blank
    line ("Output: Positive\n\nHere's an example of a task: ..."): an output ends at its first
    blank line (the next "Input:" / "Example k" starts the next pair)."""
    out, in_output, skipping = [], False, False
    for line in text.split("\n"):
        if re.match(r"(?:Input|Output):|Example \d+$", line):
            in_output, skipping = line.startswith("Output:"), False
        elif in_output and not line.strip():
            in_output, skipping = False, True
        elif skipping:
            continue
        out.append(line)
    return "\n".join(out)


def parse_input_first(continuation: str, chat: bool = True) -> list[tuple[str, str]]:
    """``(input, output)`` pairs from the LM's continuation of
    :func:`prompts.input_first_prompt`: the paper's ``Input:`` / ``Output:`` blocks, read after
    the chat habits are undone; failing those, a bare one-paragraph answer as the output (not
    one the token budget cut). A copy of the prompt's shown example is no pair; a "Task:" line
    after the pairs (the model running on into another task) ends them, and an output ends at a
    blank line. ``chat=False``: the papers' parser, on the text before a new "Task:" line."""
    if not chat:
        return prompts.parse_input_first(_cut_at_next_task(continuation))
    text = _SHOWN_EXAMPLE.sub("", continuation)
    text, _ = _skip_preamble(text)
    text = _drop_intro_clause(_strip_task_echo(text))
    text, _ = _skip_preamble(text)  # a preamble may also follow the echoed task line
    text = _normalise_example_headings(_normalise_field_labels(text, ("input", "output")))
    text = _cut_at_next_task(text)
    text = _separate_examples(_cut_commentary(_cut_outputs_at_blank_line(text)))
    pairs = [_clean_pair(x, y) for x, y in prompts.parse_input_first(text)]
    if not pairs and finish_reason(continuation) != "length":
        text = re.sub(r"\A\s*Example 1\n", "", text)  # the prompt's own heading, repeated
        bare = _bare_answer(text)
        pairs = [("", _strip_wrapping_emphasis(bare))] if bare else []
    return pairs


# Keys of "Key: value" lines that name a field, not a class.
_NOT_A_LABEL = re.compile(
    r"(?:input|output|class ?label|label|answer|task|example|explanation|note)\b", re.I
)


def _key_value_pairs(text: str) -> list[tuple[str, str]]:
    """Small instruct models answer output-first as a "Label: input" list ("Positive: I loved
    it.\\nNegative: It was cold."): two or more lines, each a short label, a colon and an
    input, the labels all different."""
    lines = [_strip_enumeration(line).strip() for line in text.strip().split("\n") if line.strip()]
    pairs = []
    for line in lines:
        m = re.fullmatch(
            r"(?:\*\*|__)?([^\s:*_][^:*_]{0,30}?)(?:\*\*|__)?[ \t]*:(?:\*\*|__)?[ \t]+(\S.*)", line
        )
        if not m or len(m.group(1).split()) > 3 or _NOT_A_LABEL.match(m.group(1)):
            return []
        pairs.append((m.group(2), m.group(1)))
    if len(pairs) < 2 or len({y.lower() for _, y in pairs}) < len(pairs):
        return []
    return pairs


def parse_output_first(continuation: str, chat: bool = True) -> list[tuple[str, str]]:
    """``(input, label)`` pairs from the LM's continuation of
    :func:`prompts.output_first_prompt`, which ends with ``Class label:``: the paper's pairs,
    read after the chat habits are undone (a reply that starts over with its own
    ``Class label:`` line too). A reply of one line without labels is a bare class label, as
    in the paper's format for a task without input; failing the paper's format, a
    "Label: input" list. Labels keep their quotes: a task may ask for the answer in quotes.
    ``chat=False``: the papers' parser alone."""
    if not chat:
        return prompts.parse_output_first(_pairs_only("Class label:" + continuation)[12:])
    text, _ = _skip_preamble(continuation)
    text = _drop_intro_clause(_strip_task_echo(text))
    text = _normalise_field_labels(_cut_commentary(text), ("input", "output", "class label"))
    if finish_reason(continuation) == "length" and not re.search(
        r"^(?:Class label|Input):", text, re.M
    ):
        return []  # a bare label the token budget cut is a sentence that never ended
    pairs = prompts.parse_output_first(_restart_class_label(_pairs_only(text)))
    return [_clean_pair(x, y) for x, y in pairs or _key_value_pairs(text)]


def _pairs_only(text: str) -> str:
    """The part of an output-first reply that holds its pairs, as the paper's parser reads
    them. Small models (a base model continuing the prompt, an instruct model in chat) run on
    into a new "Task:" or into the input-first format ("Output: ..."): the pairs end there.
    They put a blank line between a label and its "Input:" (joined up) or after the last pair
    (dropped, so that the last label still ends the text)."""
    text = _cut_at_next_task(text)
    output = re.search(r"^Output:", text, re.M)
    if output and re.search(r"^Class label:", text[: output.start()], re.M):
        text = text[: output.start()]
    text = re.sub(r"^(Class label:[^\n]*)\n(?:[ \t]*\n)+(?=Input:)", r"\1\n", text, flags=re.M)
    # After a label (and blank lines), a line that is neither its "Input:" nor the next label
    # (commentary, a heading, "Text: 5000") ends the pairs.
    m = re.search(r"^(Class label:[^\n]*)\n(?:[ \t]*\n)*(?!Input:|Class label:|\s*\Z)", text, re.M)
    text = text[: m.end(1)] if m else text
    return text.rstrip() if re.search(r"\n[ \t]*\n\s*\Z", text) else text


def _restart_class_label(text: str) -> str:
    """The prompt ends with "Class label:"; a chat reply writes its own first one, sometimes
    after lines of its own ("Task label: Text classification"): the pairs start there."""
    m = re.search(r"^[ \t]*Class label:", text, re.M)
    if not m:
        return text
    before = [line for line in text[: m.start()].split("\n") if line.strip()]
    if all(_KEY_VALUE_LINE.match(line) and not line.startswith("Input:") for line in before):
        return text[m.end() :]
    return text


# ---------------------------------------------------------------------------- Evol-Instruct

# The answer slot named as a label ("#Rewritten Prompt#:", "**Created Prompt:**", "Rewritten
# prompt -", "New prompt:"), on a line of its own or before the text.
_EVOL_LABEL = re.compile(
    r"^[ \t]*(?:[-*][ \t]+)?(?:\*\*|__)?#?[ \t]*(?:the[ \t]+)?(?:rewritten|created|new|evolved)"
    r"[ \t]+prompt[ \t]*#?(?:\*\*|__)?[ \t]*(?::|[-\u2013\u2014](?=[ \t]))[ \t]*(?:\*\*|__)?[ \t]*",
    re.I,
)


def _strip_evol_label(text: str) -> str:
    """Chat models label their rewrite with the prompt's slot name ("#Rewritten Prompt#:",
    "**Created Prompt:**") before writing it: drop the label. The copied-words elimination
    still reads everything after it."""
    lead, line, rest = _first_line_and_rest(text)
    m = _EVOL_LABEL.match(line)
    if not m:
        return text
    line = line[m.end() :]
    return line + "\n" + rest if line.strip() else rest.lstrip("\n")


def _skip_heading_line(text: str) -> str:
    """Small models head the rewrite with a title of their own ("Your Rewrite of the Prompt:",
    "New version:") on a line before it: drop a first line of at most 8 words that ends with
    ":" when text follows it."""
    lead, line, rest = _first_line_and_rest(text)
    bare = _strip_markdown_line(line)
    if bare.endswith(":") and len(bare.split()) <= 8 and rest.strip():
        return rest.lstrip("\n")
    return text


# A line that is one of the evolving prompt's slot names ("#Rewritten Prompt#:", "#The Given
# Prompt#:"): a base model that wrote its rewrite starts the prompt's format over there.
_SLOT_LINE = re.compile(
    r"\n[ \t]*#[ \t]*(?:the[ \t]+)?(?:given|rewritten|created)[ \t]+prompt[ \t]*#"
    r"[ \t]*:?[ \t]*(?=\n|$)",
    re.I,
)


def _cut_at_slot_label(text: str) -> str:
    """A base model continues the rewrite with the prompt's format ("X\n#Rewritten Prompt#:\n
    X\n..."): the rewrite ends at the first slot-name line after it. A text that opens with
    one (the embedded teacher's "#Rewritten Prompt#:\n..." at high temperature) is unchanged:
    WizardLM's elimination reads it whole."""
    m = _SLOT_LINE.search(text)
    return text[: m.start()] if m and text[: m.start()].strip() else text


def parse_evol(continuation: str, chat: bool = True) -> str:
    """The evolved instruction from the LM's continuation of :func:`prompts.evol_prompt`: its
    first paragraph (the paper's format), after a preamble and an answer label are dropped,
    without surrounding quotes or markdown emphasis. ``chat=False``: the papers' parser
    alone."""
    if not chat:
        return prompts.parse_evol(_cut_at_slot_label(continuation))
    text, _ = _skip_preamble(continuation)
    text = _skip_heading_line(_strip_evol_label(_drop_intro_clause(text)))
    text = _cut_at_slot_label(text)
    evolved = prompts.parse_evol(text)
    return _strip_quotes(_strip_emphasis(evolved)) if evolved else evolved
