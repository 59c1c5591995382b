"""Sampler: the temperature and top_p the agent controls, and the backend they are sent to."""

from __future__ import annotations

from collections.abc import Sequence

from datagen_gym.backends.base import Completion, LLMBackend, PartialBatchError
from datagen_gym.config import TEMPERATURE_RANGE, TOP_P_RANGE, SamplingConfig

__all__ = ["TEMPERATURE_RANGE", "TOP_P_RANGE", "Sampler", "cut_at_stop"]


class Sampler:
    """Holds the sampling parameters and calls an :class:`LLMBackend` with them.

    Bounds: temperature in [0.0, 2.0] (0 is greedy decoding), top_p in [0.05, 1.0].
    """

    def __init__(
        self,
        backend: LLMBackend,
        temperature: float = 1.0,
        top_p: float = 0.9,
        max_new_tokens: int = 128,
    ) -> None:
        self.backend = backend
        self.max_new_tokens = max_new_tokens
        self._temperature = self._top_p = 0.0
        self.set_params(temperature=temperature, top_p=top_p)

    @classmethod
    def from_config(cls, config: SamplingConfig, backend: LLMBackend | None = None) -> Sampler:
        """A sampler over the configured backend (the embedded teacher by default)."""
        if backend is None:
            from datagen_gym.backends import make_backend

            backend = make_backend(config)
        return cls(backend, config.temperature, config.top_p, config.max_new_tokens)

    @property
    def temperature(self) -> float:
        return self._temperature

    @property
    def top_p(self) -> float:
        return self._top_p

    def get_params(self) -> dict[str, float]:
        return {"temperature": self._temperature, "top_p": self._top_p}

    def set_params(self, temperature: float | None = None, top_p: float | None = None) -> None:
        """Set either parameter; a value out of bounds is an error naming the bound."""
        if temperature is not None:
            lo, hi = TEMPERATURE_RANGE
            if not lo <= temperature <= hi:
                raise ValueError(
                    f"temperature={temperature} is out of range; allowed: [{lo}, {hi}]"
                )
            self._temperature = float(temperature)
        if top_p is not None:
            lo, hi = TOP_P_RANGE
            if not lo <= top_p <= hi:
                raise ValueError(f"top_p={top_p} is out of range; allowed: [{lo}, {hi}]")
            self._top_p = float(top_p)

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int | None = None,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        """Complete each prompt with the current temperature and top_p.

        ``stop``: each completion ends before the first of these strings. Backends that take
        stop sequences (``accepts_stop``: the OpenAI-compatible and vLLM ones) stop there and
        save the tokens; every completion is also cut here, so any backend honours them."""
        stop = [s for s in (stop or ()) if s]
        kwargs = {"stop": stop} if stop and getattr(self.backend, "accepts_stop", False) else {}
        try:
            texts = self.backend.generate(
                prompts,
                temperature=self._temperature,
                top_p=self._top_p,
                max_new_tokens=max_new_tokens or self.max_new_tokens,
                seed=seed,
                **kwargs,
            )
        except PartialBatchError as exc:  # the completions it keeps are cut as well
            if stop:
                exc.completions = [
                    c if c is None else cut_at_stop(c, stop) for c in exc.completions
                ]
            raise
        return [cut_at_stop(t, stop) for t in texts] if stop else texts


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the first of the ``stop`` strings (a :class:`Completion` that says it
    stopped), or ``text`` itself when none occurs."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return text if cut < 0 else Completion(text[:cut], "stop")
