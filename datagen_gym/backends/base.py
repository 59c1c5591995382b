"""The one protocol every LLM backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


class Completion(str):
    """A completion's text, with why generation stopped.

    ``finish_reason``: ``"stop"`` (the model ended it: an EOS token or a stop sequence),
    ``"length"`` (the token budget cut it off) or ``None`` (the backend does not say; any other
    reason a server gives, e.g. vLLM's ``"abort"``, reads as ``None``). It is a ``str``, so code
    that reads only the text is unaffected; a backend may return plain strings.
    """

    finish_reason: str | None

    def __new__(cls, text: str, finish_reason: str | None = None) -> Completion:
        obj = super().__new__(cls, text)
        obj.finish_reason = finish_reason if finish_reason in ("stop", "length") else None
        return obj

    def __reduce__(self):  # pickles (to worker processes) with its finish reason
        return (Completion, (str(self), self.finish_reason))


def finish_reason(completion: str) -> str | None:
    """``"stop"``, ``"length"`` or ``None`` (unknown, e.g. a plain string)."""
    return getattr(completion, "finish_reason", None)


class BackendError(RuntimeError):
    """A backend failed to produce completions; the message says what and why."""


@runtime_checkable
class LLMBackend(Protocol):
    """Turns prompts into completions with the given sampling settings.

    ``deterministic`` is True when the same prompts, settings and ``seed`` always give the same
    completions (a local model on a fixed machine); remote APIs are not.
    """

    deterministic: bool

    def generate(
        self,
        prompts: Sequence[str],
        *,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int | None = None,
    ) -> list[str]:
        """One completion per prompt (the continuation only, prompt not repeated); a
        :class:`Completion` where the backend knows why each one stopped."""
        ...


class PartialBatchError(BackendError):
    """Some prompts of a batch failed for good; the others' completions are kept.

    Attributes:
        completions: one entry per prompt, in prompt order: the text, or ``None`` where the
            prompt failed or was not sent (after the first failure, prompts not yet started are
            skipped so that a dead server does not cost a full retry budget per prompt).
        errors: prompt index -> why it failed (key-free).
        attempts: prompt index -> HTTP attempts made for it (0: not sent).
    """

    def __init__(
        self,
        message: str,
        completions: list[str | None],
        errors: dict[int, str],
        attempts: dict[int, int],
    ) -> None:
        super().__init__(message)
        self.completions = completions
        self.errors = errors
        self.attempts = attempts

    @property
    def num_completed(self) -> int:
        return sum(c is not None for c in self.completions)
