"""A backend over any OpenAI-compatible HTTP server (vLLM, Ollama's /v1, llama.cpp, hosted APIs).

Built on the official ``openai`` client (``pip install "datagen-gym[openai]"``), imported when a
backend is built, never by ``import datagen_gym``. The client pools keep-alive connections and
retries 408/409/429/5xx, timeouts and connection errors (truncated bodies included), honouring
``Retry-After`` / ``retry-after-ms``. This module adds what it does not do: bounded concurrency
across a batch, a seeded and configurable backoff that a failed batch can cut short, retries of
malformed 200 responses, per-prompt seeds, :class:`PartialBatchError` keeping the completions
that did finish, and one-line errors that name the URL and never the API key (which is read
once from the environment; error bodies are scrubbed of it, as some proxies echo headers).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from datagen_gym.backends.base import BackendError, Completion, PartialBatchError

logger = logging.getLogger(__name__)

ENDPOINTS = {"completions": "/completions", "chat": "/chat/completions"}
MAX_STOP_SEQUENCES = 4  # OpenAI's API refuses more; vLLM and llama.cpp take any number
INSTALL_HINT = 'the OpenAI backend needs the openai client: pip install "datagen-gym[openai]"'


class OpenAINotInstalledError(ImportError, BackendError):
    """``openai`` cannot be imported; the message says how to install it."""


class _Stop(Exception):
    """This prompt is done for: ``cause`` (key-free) after ``attempts`` HTTP attempts."""

    def __init__(self, cause: str, attempts: int) -> None:
        super().__init__(cause)
        self.cause, self.attempts = cause, attempts


class OpenAIBackend:
    """Completions from an OpenAI-compatible server.

    Args:
        base_url: the API root, as in the OpenAI SDK, e.g. ``http://localhost:8000/v1``;
            requests go to ``{base_url}/completions`` or ``{base_url}/chat/completions``.
        model: the ``model`` field of each request.
        api_key_env: environment variable holding the API key, read once here; if it is unset
            or empty no ``Authorization`` header is sent (fine for local servers).
        endpoint: ``"completions"`` (the prompt continues as raw text; right for base models)
            or ``"chat"`` (the prompt is sent as one user message).
        max_concurrency: requests in flight at once.
        timeout_s: the client's timeout of one attempt, applied to each network operation
            (connect, send, and each wait for response bytes).
        max_retries: retries after the first attempt, so ``1 + max_retries`` attempts at most.
        backoff_s: first retry delay; doubles per retry, times a jitter factor in [0.5, 1.5)
            drawn from a RNG seeded with ``jitter_seed``, capped at ``max_backoff_s``. A
            ``Retry-After`` (or ``retry-after-ms``) header raises the delay to at least the
            server's value, also capped at ``max_backoff_s``.
        extra_body: merged into every request body last, so it can add server-specific fields
            (``{"top_k": 0}`` for vLLM, ``{"stop": [...]}``) or override ours.

    ``deterministic`` is False: even with a seed, remote servers are not bit-reproducible
    (batching with other traffic, kernels and hardware change the numerics). A ``seed`` is
    still sent, as a distinct per-prompt seed derived from it, so that identical prompts in
    one batch do not all get the same sample.

    On a fault that outlasts the retries :meth:`generate` raises :class:`PartialBatchError`
    (a :class:`BackendError`) naming the URL, the cause and the attempts made; its
    ``completions`` keep every prompt that did finish, so a caller can keep them.
    """

    deterministic = False
    accepts_stop = True

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        endpoint: str = "completions",
        max_concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        extra_body: dict[str, Any] | None = None,
        *,
        max_backoff_s: float = 30.0,
        jitter_seed: int | None = 0,
    ) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(
                f"endpoint={endpoint!r} is not supported; choose one of {sorted(ENDPOINTS)}"
            )
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency={max_concurrency} must be >= 1")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s} must be > 0")
        if max_retries < 0:
            raise ValueError(f"max_retries={max_retries} must be >= 0")
        if backoff_s < 0 or max_backoff_s < 0:
            raise ValueError("backoff_s and max_backoff_s must be >= 0")
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"base_url must be an http:// or https:// URL, got {_public_url(base_url)!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.endpoint = endpoint
        self.max_concurrency = int(max_concurrency)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.extra_body = dict(extra_body or {})
        try:  # fail here, not on the first request of a long run
            json.dumps(self.extra_body)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"extra_body must be JSON-serialisable: {exc}") from None
        self.url = _public_url(self.base_url + ENDPOINTS[endpoint])
        self._rng = random.Random(jitter_seed)
        self._rng_lock = threading.Lock()
        self._local = threading.local()  # the prompt this thread is sending: attempts, abort
        try:
            import openai
            from openai._types import Omit  # not exported at the top level by early 1.x
        except ImportError as exc:
            raise OpenAINotInstalledError(f"{INSTALL_HINT} (import failed: {exc})") from exc
        self._openai = openai
        key = os.environ.get(api_key_env) or None
        self._has_key = key is not None
        # The client needs some key; without one, the header is omitted from every request.
        self._headers = None if key else {"Authorization": Omit()}
        self._client = _client_class(openai, self)(
            base_url=_public_url(self.base_url),
            api_key=key or "none",
            timeout=self.timeout_s,
            max_retries=self.max_retries,
        )

    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(base_url={_public_url(self.base_url)!r}, model={self.model!r}, "
            f"endpoint={self.endpoint!r}, api_key_env={self.api_key_env!r}, "
            f"api_key={'set' if self._has_key else 'unset'}, "
            f"max_concurrency={self.max_concurrency}, timeout_s={self.timeout_s}, "
            f"max_retries={self.max_retries})"
        )

    def __reduce__(self):  # a pickled backend must not carry the key to disk
        raise TypeError(
            "an OpenAIBackend is not picklable (it holds the API key); build it "
            "again from the environment"
        )

    # ------------------------------------------------------------------ protocol
    def generate(
        self,
        prompts: Sequence[str],
        *,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        """One completion per prompt, in prompt order (the continuation only).

        ``stop``: the server stops at these strings (OpenAI's API takes at most 4; the
        :class:`~datagen_gym.sampler.Sampler` cuts at the others). Raises
        :class:`PartialBatchError` if any prompt fails after its retries.
        """
        prompts = list(prompts)
        if not prompts:
            return []
        seeds: list[int | None] = [None] * len(prompts)
        if seed is not None:
            # Distinct per-prompt seeds: one shared seed would make identical prompts (the
            # generators send repeats) come back as identical samples from a seeded server.
            seed_rng = random.Random(seed)
            seeds = [seed_rng.randrange(2**31 - 1) for _ in prompts]
        abort = threading.Event()
        results: list[str | None] = [None] * len(prompts)
        errors: dict[int, str] = {}
        attempts: dict[int, int] = {}

        def work(i: int) -> None:
            kwargs: dict[str, Any] = dict(
                model=self.model,
                max_tokens=int(max_new_tokens),
                temperature=float(temperature),
                top_p=float(top_p),
                n=1,
                extra_body=self.extra_body or None,
                extra_headers=self._headers,
            )
            if seeds[i] is not None:
                kwargs["seed"] = seeds[i]
            if stop:
                kwargs["stop"] = list(stop)[:MAX_STOP_SEQUENCES]
            try:
                results[i], attempts[i] = self._complete(prompts[i], kwargs, abort)
            except _Stop as exc:
                attempts[i], errors[i] = exc.attempts, exc.cause
                if not exc.cause.startswith(("not sent", "stopped retrying")):
                    abort.set()

        if len(prompts) == 1 or self.max_concurrency == 1:
            for i in range(len(prompts)):
                work(i)
        else:
            try:
                _run_concurrently(work, len(prompts), self.max_concurrency)
            except BaseException:  # Ctrl-C: no queued prompt is sent, no retry waits
                abort.set()
                raise
        if errors:
            raise self._partial_error(results, errors, attempts)
        return [r if r is not None else "" for r in results]

    def close(self) -> None:
        """Close the pooled connections (the backend stays usable, on a fresh pool)."""
        self._client.close()
        self._client = self._client.copy(http_client=self._openai.DefaultHttpxClient())

    # ------------------------------------------------------------------ one prompt
    def _complete(
        self, prompt: str, kwargs: dict[str, Any], abort: threading.Event
    ) -> tuple[str, int]:
        """The completion and the HTTP attempts it took; raises :class:`_Stop`."""
        openai, state = self._openai, self._local
        state.abort, state.attempts = abort, 0
        budget = self.max_retries + 1
        while True:
            if abort.is_set():
                raise _Stop(
                    "not sent: the batch stopped after another prompt failed"
                    if state.attempts == 0
                    else "stopped retrying: another prompt failed",
                    state.attempts,
                )
            state.attempts += 1
            # The client's own retries (counted by _before_retry) share this prompt's budget.
            client = self._client.with_options(max_retries=budget - state.attempts)
            try:
                if self.endpoint == "chat":
                    response = client.chat.completions.create(
                        messages=[{"role": "user", "content": prompt}], **kwargs
                    )
                else:
                    response = client.completions.create(prompt=prompt, **kwargs)
            except openai.APITimeoutError:
                raise _Stop(f"timed out after {self.timeout_s:g}s", state.attempts) from None
            except openai.APIStatusError as exc:
                # body: the "error" object of OpenAI's error JSON, else the raw body
                why = exc.body.get("message", exc.body) if isinstance(exc.body, dict) else exc.body
                why = " ".join(str(why or "(empty body)").split())
                raise _Stop(
                    f"HTTP {exc.status_code}: {self._scrub(why)[:300]}", state.attempts
                ) from None
            except openai.APIConnectionError as exc:
                why = exc.__cause__ or exc
                raise _Stop(
                    f"connection error: {type(why).__name__}: {self._scrub(str(why))}",
                    state.attempts,
                ) from None
            except (ValueError, openai.APIResponseValidationError) as exc:
                cause = f"malformed JSON in the response ({self._scrub(str(exc))})"
            else:
                text, cause = self._text(response)
                if text is not None:
                    return text, state.attempts
            # A 200 with a body the client could not use: retried here, the client does not.
            if state.attempts >= budget:
                raise _Stop(cause, state.attempts)
            self._wait(self._delay(state.attempts, None), cause)

    def _text(self, response: Any) -> tuple[str | None, str]:
        """The completion text, or None and why the response is unusable."""
        try:
            choice = response.choices[0]
            text = choice.message.content if self.endpoint == "chat" else choice.text
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            return None, f"unexpected response shape: {type(exc).__name__}: {self._scrub(str(exc))}"
        reason = getattr(choice, "finish_reason", None)
        if text is None:  # e.g. a chat refusal or tool call with no text
            return Completion("", reason), ""
        if not isinstance(text, str):
            return None, f"completion text is {type(text).__name__}, not a string"
        # A server or proxy that echoes the request's headers into the text must not put the
        # key into the records, data.jsonl or TensorBoard.
        return Completion(self._scrub(text), reason), ""

    def _before_retry(self, retry_after: float | None, cause: str) -> float:
        """Called by the client before each of its retries: waits here, so that a batch that
        has failed can cut the wait short, and tells the client to sleep no more."""
        state = self._local
        self._wait(self._delay(state.attempts, retry_after), cause)
        state.attempts += 1
        return 0.0

    def _wait(self, delay: float, cause: str) -> None:
        state = self._local
        logger.info(
            "%s: attempt %d/%d failed (%s); retrying in %.2fs",
            self.url,
            state.attempts,
            self.max_retries + 1,
            cause,
            delay,
        )
        if state.abort.wait(delay):
            raise _Stop("stopped retrying: another prompt failed", state.attempts)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        with self._rng_lock:
            jitter = 0.5 + self._rng.random()
        delay = self.backoff_s * (2 ** (attempt - 1)) * jitter
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_backoff_s)

    # ------------------------------------------------------------------ errors
    def _scrub(self, text: str) -> str:
        return text.replace(self._client.api_key, "<redacted>") if self._has_key else text

    def _partial_error(
        self, results: list[str | None], errors: dict[int, str], attempts: dict[int, int]
    ) -> PartialBatchError:
        failed = sorted(
            i
            for i, e in errors.items()
            if attempts.get(i, 0) > 0 and not e.startswith("stopped retrying")
        )
        skipped = sorted(set(errors) - set(failed))
        first = failed[0] if failed else min(errors)
        done = sum(r is not None for r in results)
        msg = (
            f"POST {self.url} failed for prompt {first} after {attempts.get(first, 0)} "
            f"attempt(s) (max {self.max_retries + 1}): {errors[first]}; "
            f"{len(failed)} prompt(s) failed, {len(skipped)} not sent or stopped, "
            f"{done}/{len(results)} completions kept"
        )
        return PartialBatchError(self._scrub(msg), list(results), dict(errors), dict(attempts))


def _run_concurrently(work: Callable[[int], None], n: int, max_workers: int) -> None:
    """``work(0) ... work(n - 1)`` on up to ``max_workers`` daemon threads; returns when all
    are done and re-raises the first exception a ``work`` raised.

    Not a ``ThreadPoolExecutor``: its ``shutdown`` waits for every queued call and the
    interpreter joins its threads at exit, so Ctrl-C during a batch would wait for every prompt
    (or every in-flight request) to be answered. Here an interrupt of the waiting thread returns
    at once: no queued index is started after it, and requests in flight are abandoned (their
    daemon threads finish or die with the process; their results are never read)."""
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(n):
        todo.put(i)
    stop, done = threading.Event(), threading.Event()
    lock = threading.Lock()
    left = [n]
    failures: list[BaseException] = []

    def worker() -> None:
        while not stop.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                work(i)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                failures.append(exc)
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    done.set()

    for k in range(min(max_workers, n)):
        threading.Thread(target=worker, name=f"openai-backend-{k}", daemon=True).start()
    try:
        done.wait()
    finally:
        stop.set()
    if failures:
        raise failures[0]


def _client_class(openai: Any, backend: OpenAIBackend) -> type:
    """``openai.OpenAI`` with the backend's backoff. The hook is the client's (private, but
    the same from openai 1.x to 3.x) retry-delay method, called with the failed response's
    headers (None after a timeout or connection error); the client parses ``Retry-After``.
    The tests check attempt counts and delays, so a client that stopped calling it would fail
    them."""

    class Client(openai.OpenAI):
        def _calculate_retry_timeout(self, remaining_retries, options, response_headers=None):
            cause = (
                "timeout or connection error"
                if response_headers is None
                else "retryable HTTP status"
            ) + "; the openai logger has details"
            return backend._before_retry(self._parse_retry_after_header(response_headers), cause)

    return Client


def _public_url(url: str) -> str:
    """The URL without user:password@ (keys sometimes ride there)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


__all__ = ["OpenAIBackend", "PartialBatchError", "OpenAINotInstalledError"]
