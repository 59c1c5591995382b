"""A small OpenAI-compatible HTTP server over any :class:`LLMBackend`, with fault injection.

A test helper, not part of the library. Serves ``POST /v1/completions``,
``POST /v1/chat/completions`` and ``GET /v1/models`` with the standard library's threading HTTP
server (one request per thread, no batching), so that
:class:`~datagen_gym.backends.openai_backend.OpenAIBackend` can be tried and tested without a
GPU server::

    python -m envs_tests.support.openai_server --port 8000         # the embedded teacher
                                                                    # (from the repository root)

    with OpenAICompatServer(backend) as srv:                        # in tests
        srv.inject("429", count=2)
        OpenAIBackend(srv.base_url, srv.model_name).generate(...)

Chat requests are answered by completing the last user message's text as a raw prompt (the
embedded teacher is a base model with no chat template).
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from datagen_gym.backends.base import BackendError, LLMBackend, finish_reason

FAULT_KINDS = ("429", "500", "503", "400", "401", "hang", "malformed", "truncated", "drop")


@dataclass
class Fault:
    """One injected fault. ``match``: only requests whose prompt contains it are hit."""

    kind: str
    match: str | None = None
    retry_after: float | None = None  # sent as Retry-After on status faults
    headers: dict[str, str] | None = None  # more headers for status faults


@dataclass
class RequestRecord:
    """What the server saw of one request (for tests)."""

    path: str
    body: dict[str, Any]
    authorization: str | None
    started: float
    fault: str | None


class OpenAICompatServer:
    """An OpenAI-compatible server on ``host`` (loopback) and an ephemeral port by default.

    Args:
        backend: answers the prompts; by default the embedded teacher (loaded here).
        model_name: the model id reported by ``/v1/models`` (any requested name is accepted).
        host, port: where to listen; port 0 picks a free one (see :attr:`base_url`).
        latency_s: extra sleep per completion request, outside the backend lock, to emulate a
            remote server's network and queueing delay.
        serialize_backend: run one ``backend.generate`` at a time (local torch models share a
            global RNG and the CPU; concurrent calls would only contend).
        hang_s: how long a ``"hang"`` fault stalls before dropping the connection.

    Faults (:meth:`inject`): ``"429"``/``"500"``/``"503"``/``"400"``/``"401"`` answer with that
    status (``401`` echoes the Authorization header it got, like a careless proxy, to test
    that clients scrub it), ``"hang"`` sleeps ``hang_s`` then closes without answering,
    ``"malformed"`` answers 200 with invalid JSON, ``"truncated"`` announces the full body's
    length but closes after half of it, ``"drop"`` closes the connection without answering.
    """

    def __init__(
        self,
        backend: LLMBackend | None = None,
        model_name: str = "datagen-teacher",
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
        serialize_backend: bool = True,
        hang_s: float = 5.0,
    ) -> None:
        if backend is None:
            from datagen_gym.backends.transformers_backend import (
                EMBEDDED_TEACHER,
                TransformersBackend,
            )

            backend = TransformersBackend(EMBEDDED_TEACHER)
        self.backend = backend
        self.model_name = model_name
        self.latency_s = float(latency_s)
        self.hang_s = float(hang_s)
        # The most recent requests only: a long-running CLI server must not grow without bound.
        self.requests: deque[RequestRecord] = deque(maxlen=10_000)
        self.in_flight = 0
        self.max_in_flight = 0
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._backend_lock = threading.Lock() if serialize_backend else None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()  # open keep-alive sockets, for stop()
        self._thread: threading.Thread | None = None
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True  # hanging handlers must not block shutdown

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """The API root to give an OpenAI client, e.g. ``http://127.0.0.1:54321/v1``."""
        host = self._httpd.server_address[0]
        return f"http://{host}:{self.port}/v1"

    def start(self) -> OpenAICompatServer:
        """Serve in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="openai-compat-server",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; stalled ``hang`` handlers wake up and exit."""
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        # Handler threads keep serving established keep-alive connections after the listening
        # socket closes; cut them so that a stopped server really stops answering.
        self.close_connections(wait_s=0.0)

    def close_connections(self, wait_s: float = 1.0) -> None:
        """Close every open connection, idle keep-alive ones included (as a server does when
        its keep-alive timeout expires); wait up to ``wait_s`` for their handlers to end."""
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + wait_s
        while self._connections and time.monotonic() < deadline:
            time.sleep(0.01)

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the command-line mode)."""
        try:
            self._httpd.serve_forever()
        finally:
            self._stopping.set()
            self._httpd.server_close()

    def __enter__(self) -> OpenAICompatServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults and stats
    def inject(
        self,
        kind: str,
        count: int = 1,
        match: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Apply fault ``kind`` to the next ``count`` completion requests (matching ``match``);
        status faults send ``Retry-After: retry_after`` and ``headers``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; choose one of {list(FAULT_KINDS)}")
        with self._lock:
            self._faults.extend(Fault(kind, match, retry_after, headers) for _ in range(count))

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0

    def _take_fault(self, prompt: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.match is None or fault.match in prompt:
                    del self._faults[i]
                    return fault
        return None

    def _complete(self, prompt: str, body: dict[str, Any]) -> str:
        if self.latency_s:
            time.sleep(self.latency_s)
        kwargs = dict(
            temperature=float(body.get("temperature", 1.0)),
            top_p=float(body.get("top_p", 1.0)),
            max_new_tokens=int(body.get("max_tokens") or 16),
            seed=body.get("seed"),
        )
        if self._backend_lock is None:
            return self.backend.generate([prompt], **kwargs)[0]
        with self._backend_lock:
            return self.backend.generate([prompt], **kwargs)[0]


def _prompt_of(path: str, body: dict[str, Any]) -> str:
    if path.endswith("/chat/completions"):
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        content = (users or messages)[-1].get("content")
        if isinstance(content, list):  # the multi-part form: keep the text parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise ValueError("the last user message has no text content")
        return content
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ValueError("'prompt' must be a string (one prompt per request)")
    return prompt


def _make_handler(server: OpenAICompatServer) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
        # Headers and body go out in separate writes; with Nagle's algorithm on, the body waits
        # for the client's delayed ACK (~40 ms per request on Linux).
        disable_nagle_algorithm = True
        server_version = "datagen-gym-openai-compat"

        def setup(self) -> None:
            super().setup()
            with server._lock:
                server._connections.add(self.connection)

        def finish(self) -> None:
            with server._lock:
                server._connections.discard(self.connection)
            super().finish()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: tests and benchmarks issue thousands of requests

        # -------------------------------------------------------------- helpers
        def _send_json(self, status: int, doc: Any, headers: dict | None = None) -> None:
            data = json.dumps(doc).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, headers: dict | None = None) -> None:
            kind = (
                "rate_limit_error"
                if status == 429
                else ("server_error" if status >= 500 else "invalid_request_error")
            )
            self._send_json(
                status, {"error": {"message": message, "type": kind, "code": status}}, headers
            )

        # -------------------------------------------------------------- routes
        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send_json(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {
                                "id": server.model_name,
                                "object": "model",
                                "created": 0,
                                "owned_by": "datagen-gym",
                            }
                        ],
                    },
                )
            else:
                self._error(404, f"no route GET {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0].rstrip("/")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if path not in (
                "/v1/completions",
                "/v1/chat/completions",
                "/completions",
                "/chat/completions",
            ):
                self._error(404, f"no route POST {self.path}")
                return
            try:
                body = json.loads(raw.decode("utf-8"))
                if not isinstance(body, dict):
                    raise ValueError("the request body must be a JSON object")
                prompt = _prompt_of(path, body)
            except (ValueError, UnicodeDecodeError) as exc:
                self._error(400, f"bad request: {exc}")
                return
            fault = server._take_fault(prompt)
            with server._lock:
                server.requests.append(
                    RequestRecord(
                        path,
                        body,
                        self.headers.get("Authorization"),
                        time.monotonic(),
                        fault.kind if fault else None,
                    )
                )
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                self._answer(path, body, prompt, fault)
            finally:
                with server._lock:
                    server.in_flight -= 1

        def _answer(self, path: str, body: dict, prompt: str, fault: Fault | None) -> None:
            kind = fault.kind if fault else None
            if kind and kind.isdigit():
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                headers.update(fault.headers or {})
                message = f"injected fault {kind}"
                if kind == "401":
                    message = f"invalid credentials: {self.headers.get('Authorization')}"
                self._error(int(kind), message, headers)
                return
            if kind == "hang":
                server._stopping.wait(server.hang_s)
                self.close_connection = True
                return
            if kind == "drop":
                self.close_connection = True
                return
            try:
                text = server._complete(prompt, body)
            except (BackendError, ValueError, TypeError) as exc:
                self._error(500, f"backend failed: {exc}")
                return
            chat = path.endswith("chat/completions")
            # The backend's own reason where it gives one (a local model does), as vLLM reports.
            reason = finish_reason(text) or "stop"
            choice: dict[str, Any] = {"index": 0, "finish_reason": reason, "logprobs": None}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            doc = {
                "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": body.get("model", server.model_name),
                "choices": [choice],
            }
            if kind == "malformed":
                data = b'{"id": "cmpl-x", "choices": [{"text": oops'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            if kind == "truncated":
                data = json.dumps(doc).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self._send_json(200, doc)

    return Handler


def main(argv: list[str] | None = None) -> None:
    """``python -m envs_tests.support.openai_server [--port 8000] [--model-path DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument(
        "--model-path",
        default=None,
        help="a local Hugging Face causal-LM directory (default: the embedded teacher)",
    )
    parser.add_argument("--model-name", default="datagen-teacher")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--latency-s",
        type=float,
        default=0.0,
        help="extra delay per request, to emulate a remote server",
    )
    args = parser.parse_args(argv)
    from datagen_gym.backends.transformers_backend import EMBEDDED_TEACHER, TransformersBackend

    backend = TransformersBackend(args.model_path or EMBEDDED_TEACHER, device=args.device)
    server = OpenAICompatServer(
        backend,
        model_name=args.model_name,
        host=args.host,
        port=args.port,
        latency_s=args.latency_s,
    )
    print(
        f"serving {args.model_path or EMBEDDED_TEACHER} as {args.model_name!r} at "
        f"{server.base_url} (Ctrl-C to stop)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
