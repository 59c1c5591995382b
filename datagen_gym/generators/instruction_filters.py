"""Self-Instruct's rule filters on new instructions and generated instances (Wang et al. 2023)."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence


def _has_word(word: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text, flags=re.IGNORECASE) is not None


def instruction_rejection(
    instruction: str, blacklist: Sequence[str], min_words: int = 3, max_words: int = 150
) -> str | None:
    """Why the paper's heuristics reject an instruction, or None if it passes.

    Reasons: ``too_short`` (<= ``min_words`` words), ``too_long`` (> ``max_words``),
    ``blacklist`` (a word the LM cannot act on: image, graph, file, ...), ``program``
    (starts with "Write a program"), ``punctuation`` / ``non_ascii`` (bad first character).
    """
    n_words = len(instruction.split())
    if n_words <= min_words:
        return "too_short"
    if n_words > max_words:
        return "too_long"
    if any(_has_word(w, instruction) for w in blacklist):
        return "blacklist"
    if instruction.startswith("Write a program"):
        return "program"
    if instruction[0] in string.punctuation:
        return "punctuation"
    if not instruction[0].isascii():
        return "non_ascii"
    return None


def keep_instance(
    instruction: str, input_text: str, output: str, max_input_words: int = 150
) -> bool:
    """The paper's instance clean-up: drop empty or echoed outputs, runaway inputs, and
    instances that ran into the next one (a field label left in the output or the input)."""
    output = output.strip()
    if not output or output == input_text.strip() or output == instruction.strip():
        return False
    if len(input_text.split()) > max_input_words:
        return False
    # A field label left in the output means the LM ran one example into the next; a "Task:"
    # line after a blank line, that a small model ran on into a new task ("...\n\nTask:
    # Replace every consonant ...").
    if re.search(r"\b(Input|Output|Class label|Example \d+)\s*:", output):
        return False
    if re.search(r"^[ \t]*Task[ \t]*:", output, re.M):
        return False
    # An input holding an "Output:" label is an input and its output read as one input.
    return not re.search(r"^[ \t]*(?:Output|Class label)[ \t]*:", input_text, re.M)
