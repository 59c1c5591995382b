"""A backend over any OpenAI-compatible HTTP server (vLLM, Ollama's /v1, llama.cpp, hosted APIs).

One request per prompt, sent concurrently with bounded concurrency over keep-alive
connections; each request has a total deadline and is retried with exponential backoff and
seeded jitter on 408/409/429/5xx, timeouts, connection errors and malformed or truncated JSON,
honouring ``Retry-After``. Only the standard library is used.

The API key is read once from the environment and is never put in an exception, a log record
or ``repr``; text that comes back from the server (error bodies) is scrubbed of it too, since
some proxies echo the request headers.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import os
import queue
import random
import ssl
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from datagen_gym.backends.base import BackendError

logger = logging.getLogger(__name__)

# The statuses OpenAI's own SDK retries: timeout, conflict/lock, rate limit, server errors.
RETRYABLE_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
ENDPOINTS = {"completions": "/completions", "chat": "/chat/completions"}


class PartialBatchError(BackendError):
    """Some prompts of a batch failed for good; the others' completions are kept.

    Attributes:
        completions: one entry per prompt, in prompt order: the text, or ``None`` where the
            prompt failed or was not sent (after the first failure, prompts not yet started are
            skipped so that a dead server does not cost a full retry budget per prompt).
        errors: prompt index -> why it failed (key-free).
        attempts: prompt index -> HTTP attempts made for it (0: not sent).
    """

    def __init__(self, message: str, completions: list[str | None],
                 errors: dict[int, str], attempts: dict[int, int]) -> None:
        super().__init__(message)
        self.completions = completions
        self.errors = errors
        self.attempts = attempts

    @property
    def num_completed(self) -> int:
        return sum(c is not None for c in self.completions)


class _Secret:
    """Holds the API key; its repr never shows it (so ``vars(backend)`` is safe to print)."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or None

    def get(self) -> str | None:
        return self._value

    def __repr__(self) -> str:
        return "<secret set>" if self._value else "<secret unset>"

    def __reduce__(self):  # a pickled backend must not carry the key to disk
        raise TypeError("the API key is not picklable; build the backend again from the "
                        "environment")


class _RetryableError(Exception):
    """One attempt failed in a way worth retrying; ``retry_after`` is the server's hint (s)."""

    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


class _FatalError(Exception):
    """One attempt failed in a way a retry would not fix (400, 401, 404...)."""


class _Aborted(Exception):
    """The batch gave up on this prompt before sending it (another prompt failed for good)."""


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
        timeout_s: total deadline of one attempt (connect, send, wait, read the body).
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

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 endpoint: str = "completions", max_concurrency: int = 8,
                 timeout_s: float = 60.0, max_retries: int = 4, backoff_s: float = 0.5,
                 extra_body: dict[str, Any] | None = None, *, max_backoff_s: float = 30.0,
                 jitter_seed: int | None = 0) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint={endpoint!r} is not supported; choose one of "
                             f"{sorted(ENDPOINTS)}")
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
            raise ValueError(f"base_url must be an http:// or https:// URL, got "
                             f"{_public_url(base_url)!r}")
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
        self._key = _Secret(os.environ.get(api_key_env))
        self._https = parts.scheme == "https"
        self._ssl_context = ssl.create_default_context() if self._https else None
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "") + ENDPOINTS[endpoint]
        if parts.query:
            self._path += "?" + parts.query
        self.url = _public_url(self.base_url + ENDPOINTS[endpoint])
        self._rng = random.Random(jitter_seed)
        self._rng_lock = threading.Lock()
        # Idle keep-alive connections, shared by all worker threads; LIFO reuses the warmest.
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()

    def __repr__(self) -> str:
        return (f"OpenAIBackend(base_url={_public_url(self.base_url)!r}, model={self.model!r}, "
                f"endpoint={self.endpoint!r}, api_key_env={self.api_key_env!r}, "
                f"api_key={'set' if self._key.get() else 'unset'}, "
                f"max_concurrency={self.max_concurrency}, timeout_s={self.timeout_s}, "
                f"max_retries={self.max_retries})")

    # ------------------------------------------------------------------ protocol
    def generate(self, prompts: Sequence[str], *, temperature: float, top_p: float,
                 max_new_tokens: int, seed: int | None = None) -> list[str]:
        """One completion per prompt, in prompt order (the continuation only).

        Raises :class:`PartialBatchError` if any prompt fails after its retries.
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
            body = self._body(prompts[i], temperature, top_p, max_new_tokens, seeds[i])
            try:
                results[i], attempts[i] = self._request_with_retries(body, abort)
            except _Aborted as exc:
                attempts[i] = exc.args[0]
                errors[i] = "not sent: the batch stopped after another prompt failed" \
                    if exc.args[0] == 0 else "stopped retrying: another prompt failed"
            except _GaveUp as exc:
                attempts[i], errors[i] = exc.attempts, exc.cause
                abort.set()

        if len(prompts) == 1 or self.max_concurrency == 1:
            for i in range(len(prompts)):
                work(i)
        else:
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(prompts)),
                                    thread_name_prefix="openai-backend") as pool:
                list(pool.map(work, range(len(prompts))))
        if errors:
            raise self._partial_error(results, errors, attempts)
        return [r if r is not None else "" for r in results]

    def close(self) -> None:
        """Close idle keep-alive connections (the backend stays usable)."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    # ------------------------------------------------------------------ one prompt
    def _body(self, prompt: str, temperature: float, top_p: float, max_new_tokens: int,
              seed: int | None) -> bytes:
        payload: dict[str, Any] = {"model": self.model, "max_tokens": int(max_new_tokens),
                                   # temperature 0 is sent as 0: servers decode greedily.
                                   "temperature": float(temperature), "top_p": float(top_p),
                                   "n": 1, "stream": False}
        if self.endpoint == "chat":
            payload["messages"] = [{"role": "user", "content": prompt}]
        else:
            payload["prompt"] = prompt
        if seed is not None:
            payload["seed"] = seed
        payload.update(self.extra_body)
        return json.dumps(payload).encode("utf-8")

    def _request_with_retries(self, body: bytes, abort: threading.Event) -> tuple[str, int]:
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            if abort.is_set():
                raise _Aborted(attempt - 1)
            try:
                return self._parse(*self._post(body)), attempt
            except _FatalError as exc:
                raise _GaveUp(str(exc), attempt) from None
            except _RetryableError as exc:
                if attempt == attempts:
                    raise _GaveUp(exc.cause, attempt) from None
                delay = self._delay(attempt, exc.retry_after)
                logger.info("%s: attempt %d/%d failed (%s); retrying in %.2fs", self.url,
                            attempt, attempts, exc.cause, delay)
                # Waiting on the event lets a batch that has already failed stop early.
                if abort.wait(delay):
                    raise _Aborted(attempt) from None
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        with self._rng_lock:
            jitter = 0.5 + self._rng.random()
        delay = self.backoff_s * (2 ** (attempt - 1)) * jitter
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_backoff_s)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "datagen-gym-openai-backend"}
        key = self._key.get()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _connection(self, timeout: float, fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
        if not fresh:
            try:
                return self._idle.get_nowait(), True
            except queue.Empty:
                pass
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=self._ssl_context), False
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout), False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        if self._idle.qsize() < self.max_concurrency:
            self._idle.put(conn)
        else:
            conn.close()

    def _post(self, body: bytes) -> tuple[int, bytes]:
        """One attempt: (status, body) of a 2xx; raises _RetryableError or _FatalError."""
        deadline = time.monotonic() + self.timeout_s
        for fresh_try in (False, True):
            conn, reused = self._connection(self.timeout_s, fresh=fresh_try)
            try:
                status, headers, data = self._exchange(conn, body, deadline)
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                conn.close()
                # A pooled connection the server closed while idle is not a server fault:
                # retry at once on a fresh one without spending an attempt.
                if reused and not fresh_try:
                    continue
                raise _RetryableError(f"connection error: {type(exc).__name__}: "
                                      f"{self._scrub(str(exc))}") from None
            except TimeoutError:
                conn.close()
                raise _RetryableError(f"timed out after {self.timeout_s:g}s") from None
            except ssl.SSLCertVerificationError as exc:
                conn.close()
                # A bad certificate will not fix itself between retries.
                raise _FatalError(f"TLS certificate verification failed: "
                                  f"{self._scrub(str(exc))}") from None
            except http.client.IncompleteRead as exc:
                conn.close()
                raise _RetryableError(f"truncated response body ({len(exc.partial)} bytes "
                                      "read)") from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise _RetryableError(f"connection error: {type(exc).__name__}: "
                                      f"{self._scrub(str(exc))}") from None
            except BaseException:
                conn.close()
                raise
            break
        if 200 <= status < 300:
            return status, data
        detail = f"HTTP {status}: {self._scrub(_error_snippet(data))}"
        if status in RETRYABLE_STATUSES:
            raise _RetryableError(detail, _retry_after(headers))
        raise _FatalError(detail)

    def _exchange(self, conn: http.client.HTTPConnection, body: bytes, deadline: float
                  ) -> tuple[int, http.client.HTTPMessage, bytes]:
        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("deadline passed")
            return left

        conn.timeout = remaining()  # the connect timeout, for a new connection
        if conn.sock is not None:
            conn.sock.settimeout(remaining())
        conn.request("POST", self._path, body=body, headers=self._headers())
        conn.sock.settimeout(remaining())
        resp = conn.getresponse()
        # Read in chunks, re-arming the socket timeout, so a server trickling bytes cannot
        # stretch one attempt past its deadline.
        chunks, expected = [], resp.length
        while True:
            conn.sock.settimeout(remaining())
            chunk = resp.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
        data = b"".join(chunks)
        if expected is not None and len(data) < expected:
            conn.close()
            raise http.client.IncompleteRead(data, expected - len(data))
        if resp.will_close:
            conn.close()
        else:
            self._release(conn)
        return resp.status, resp.headers, data

    def _parse(self, status: int, data: bytes) -> str:
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else exc.reason
            raise _RetryableError(f"malformed JSON in HTTP {status} response ({why}, "
                                  f"{len(data)} bytes)") from None
        try:
            choice = doc["choices"][0]
            text = choice["message"]["content"] if self.endpoint == "chat" else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise _RetryableError(f"unexpected response shape in HTTP {status} response: "
                                  f"{self._scrub(_error_snippet(data))}") from None
        if text is None:  # e.g. a chat refusal or tool call with no text
            return ""
        if not isinstance(text, str):
            raise _RetryableError(f"completion text is {type(text).__name__}, not a string")
        return text

    # ------------------------------------------------------------------ errors
    def _scrub(self, text: str) -> str:
        key = self._key.get()
        return text.replace(key, "<redacted>") if key else text

    def _partial_error(self, results: list[str | None], errors: dict[int, str],
                       attempts: dict[int, int]) -> PartialBatchError:
        failed = sorted(i for i, e in errors.items() if attempts.get(i, 0) > 0
                        and not e.startswith("stopped retrying"))
        skipped = sorted(set(errors) - set(failed))
        first = failed[0] if failed else min(errors)
        done = sum(r is not None for r in results)
        msg = (f"POST {self.url} failed for prompt {first} after {attempts.get(first, 0)} "
               f"attempt(s) (max {self.max_retries + 1}): {errors[first]}; "
               f"{len(failed)} prompt(s) failed, {len(skipped)} not sent or stopped, "
               f"{done}/{len(results)} completions kept")
        return PartialBatchError(self._scrub(msg), list(results), dict(errors), dict(attempts))


class _GaveUp(Exception):
    def __init__(self, cause: str, attempts: int) -> None:
        super().__init__(cause)
        self.cause, self.attempts = cause, attempts


def _public_url(url: str) -> str:
    """The URL without user:password@ (keys sometimes ride there)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _error_snippet(data: bytes, limit: int = 300) -> str:
    """The server's error message if it sent OpenAI's error JSON, else the body's start."""
    text = data.decode("utf-8", errors="replace")
    try:
        doc = json.loads(text)
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict) and "message" in err:
            text = str(err["message"])
        elif isinstance(err, str):
            text = err
    except (json.JSONDecodeError, ValueError):
        pass
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "") or "(empty body)"


def _retry_after(headers: http.client.HTTPMessage) -> float | None:
    """Seconds from ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


__all__ = ["OpenAIBackend", "PartialBatchError", "RETRYABLE_STATUSES"]
