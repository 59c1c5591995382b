"""The one protocol every LLM backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


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
        """One completion per prompt (the continuation only, prompt not repeated)."""
        ...
