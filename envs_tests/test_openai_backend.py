"""OpenAIBackend against the loopback OpenAICompatServer: real HTTP, injected faults, no mocks."""

import logging
import pickle
import subprocess
import sys
import time
import traceback
from email.utils import formatdate
from pathlib import Path

import pytest
from support.openai_server import OpenAICompatServer

from datagen_gym import Sampler
from datagen_gym.backends.base import BackendError, LLMBackend
from datagen_gym.backends.openai_backend import (
    OpenAIBackend,
    OpenAINotInstalledError,
    PartialBatchError,
)
from datagen_gym.generators.generator import Generator

FAKE_KEY = "sk-test-DO-NOT-LEAK-7f3a9c"
KEY_ENV = "DATAGEN_TEST_OPENAI_KEY"
TEACHER_CONFIG = (
    Path(__file__).resolve().parent.parent / "datagen_gym" / "world" / "teacher" / "config.json"
)


class EchoBackend:
    """Answers with the prompt and the sampling settings it got, so tests can check both."""

    deterministic = True

    def generate(self, prompts, *, temperature, top_p, max_new_tokens, seed=None):
        return [
            f" echo[{p}] t={temperature} p={top_p} n={max_new_tokens} s={seed}" for p in prompts
        ]


@pytest.fixture
def server():
    # hang_s only needs to outlast the client's 0.3 s timeout.
    with OpenAICompatServer(
        EchoBackend(), model_name="echo", serialize_backend=False, hang_s=1.0
    ) as srv:
        yield srv


def make(srv, **kw):
    """A backend with test-sized timeouts and backoffs."""
    opts = dict(
        model="echo",
        api_key_env=KEY_ENV,
        timeout_s=0.3,
        max_retries=3,
        backoff_s=0.01,
        max_concurrency=4,
    )
    opts.update(kw)
    return OpenAIBackend(srv.base_url, **opts)


def gen(backend, prompts, **kw):
    opts = dict(temperature=1.0, top_p=1.0, max_new_tokens=8)
    opts.update(kw)
    return backend.generate(prompts, **opts)


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_every_prompt_answered_in_order(server, endpoint):
    backend = make(server, endpoint=endpoint)
    assert isinstance(backend, LLMBackend) and backend.deterministic is False
    prompts = [f"prompt {i}" for i in range(20)]
    out = gen(backend, prompts)
    assert [o.split("]")[0] for o in out] == [f" echo[{p}" for p in prompts]
    path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
    assert {r.path for r in server.requests} == {path}
    if endpoint == "chat":
        assert server.requests[0].body["messages"] == [
            {"role": "user", "content": server.requests[0].body["messages"][0]["content"]}
        ]
    assert gen(backend, []) == []


def test_requests_overlap_up_to_max_concurrency(server):
    server.latency_s = 0.1
    prompts = [f"p{i}" for i in range(16)]
    t0 = time.perf_counter()
    gen(make(server, max_concurrency=8), prompts)
    parallel = time.perf_counter() - t0
    assert 1 < server.max_in_flight <= 8
    assert parallel < 16 * 0.1 / 2  # serially it would take 1.6 s
    server.reset_stats()
    gen(make(server, max_concurrency=1), prompts[:4])
    assert server.max_in_flight == 1


def test_sampling_settings_reach_the_server(server):
    backend = make(server, extra_body={"top_k": 5})
    out = gen(backend, ["a", "a", "b"], temperature=0.0, top_p=0.37, max_new_tokens=7, seed=11)
    bodies = [r.body for r in server.requests]
    assert all(
        b["temperature"] == 0
        and b["top_p"] == 0.37
        and b["max_tokens"] == 7
        and b["model"] == "echo"
        and b["top_k"] == 5
        for b in bodies
    )
    assert all(" t=0.0 p=0.37 n=7 " in o for o in out)
    # Per-prompt seeds: distinct (identical prompts must not get identical samples) and
    # derived from the batch seed, so the same call sends the same seeds again.
    seeds = {b["prompt"] + str(b["seed"]) for b in bodies}
    assert len({b["seed"] for b in bodies}) == 3
    server.reset_stats()
    gen(backend, ["a", "a", "b"], temperature=0.0, top_p=0.37, max_new_tokens=7, seed=11)
    assert {b["prompt"] + str(b["seed"]) for b in (r.body for r in server.requests)} == seeds
    server.reset_stats()
    gen(backend, ["a"])
    assert "seed" not in server.requests[0].body


@pytest.mark.parametrize("fault", ["429", "500", "hang", "malformed", "truncated"])
def test_transient_fault_is_retried(server, fault):
    server.inject(fault, count=2)
    assert gen(make(server), ["x"]) == [" echo[x] t=1.0 p=1.0 n=8 s=None"]
    assert [r.fault for r in server.requests] == [fault, fault, None]


def test_dropped_keep_alive_connection_is_replaced_for_free(server):
    backend = make(server, max_retries=0)
    gen(backend, ["warm"])  # leaves an idle keep-alive connection in the pool
    server.close_connections()  # the server closes it, as one does after its keep-alive timeout
    assert gen(backend, ["x"])[0].startswith(" echo[x]")
    assert [r.fault for r in server.requests] == [None, None]
    backend.close()  # closes the pool; the backend stays usable
    assert gen(backend, ["y"])[0].startswith(" echo[y]")


def test_connection_dropped_mid_request_costs_one_retry(server):
    # The server reads the request, then closes without answering (it raced its keep-alive
    # timeout, or died): the client cannot know the request was not processed, so it retries
    # it as a connection error, spending one attempt of the budget.
    server.inject("drop")
    assert gen(make(server, max_retries=1), ["x"])[0].startswith(" echo[x]")
    assert [r.fault for r in server.requests] == ["drop", None]
    server.inject("drop")
    with pytest.raises(PartialBatchError, match=r"after 1 attempt\(s\).*connection error"):
        gen(make(server, max_retries=0), ["x"])


def test_retry_after_is_honoured(server):
    server.inject("429", retry_after=0.4)
    gen(make(server, backoff_s=0.01), ["x"])
    first, second = server.requests
    assert second.started - first.started >= 0.35


def test_backoff_schedule():
    a, b = (
        OpenAIBackend("http://127.0.0.1:9/v1", "m", backoff_s=1.0, max_backoff_s=6.0, jitter_seed=3)
        for _ in range(2)
    )
    delays = [a._delay(k, None) for k in range(1, 6)]
    assert delays == [b._delay(k, None) for k in range(1, 6)]  # seeded jitter
    assert all(0.5 * 2 ** (k - 1) <= d < 1.5 * 2 ** (k - 1) for k, d in enumerate(delays[:2], 1))
    assert max(delays) == 6.0  # capped
    assert a._delay(1, 4.0) == 4.0 and a._delay(1, 100.0) == 6.0  # Retry-After, capped


@pytest.mark.parametrize(
    "headers, low, high",
    [
        ({"Retry-After": "0.5"}, 0.45, 1.0),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.2, 1.0),  # ms wins over seconds
        ({"Retry-After": "date"}, 0.45, 2.5),  # an HTTP date, 1 to 2 s ahead
        ({"Retry-After": "soon"}, 0.0, 0.3),  # unparseable: the backoff alone
    ],
)
def test_retry_after_forms_are_honoured(server, headers, low, high):
    if headers.get("Retry-After") == "date":
        headers = {"Retry-After": formatdate(time.time() + 2, usegmt=True)}
    server.inject("429", headers=headers)
    gen(make(server, backoff_s=0.01, max_backoff_s=2.0), ["x"])
    first, second = server.requests
    assert low <= second.started - first.started <= high


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="endpoint='responses' is not supported"):
        OpenAIBackend("http://x/v1", "m", endpoint="responses")
    with pytest.raises(ValueError, match="http:// or https://"):
        OpenAIBackend("localhost:8000/v1", "m")
    with pytest.raises(ValueError, match="JSON-serialisable"):
        OpenAIBackend("http://x/v1", "m", extra_body={"stop": object()})
    assert "u:p" not in repr(OpenAIBackend("https://u:p@api.example.com/v1", "m"))


def test_fault_outlasting_retries_keeps_finished_completions(server):
    server.inject("500", count=10, match="p2")
    backend = make(server, max_retries=3, max_concurrency=4)
    with pytest.raises(PartialBatchError) as info:
        gen(backend, ["p0", "p1", "p2", "p3"])
    err = info.value
    assert isinstance(err, BackendError)
    assert err.completions[2] is None and err.attempts[2] == 4
    assert [c.split("]")[0] for i, c in enumerate(err.completions) if i != 2] == [
        " echo[p0",
        " echo[p1",
        " echo[p3",
    ]
    msg = str(err)
    assert backend.url in msg and "HTTP 500" in msg and "after 4 attempt(s)" in msg
    assert "3/4 completions kept" in msg


def test_after_a_permanent_failure_unsent_prompts_are_skipped(server):
    server.inject("500", count=10, match="p1")
    with pytest.raises(PartialBatchError) as info:
        gen(make(server, max_retries=1, max_concurrency=1), ["p0", "p1", "p2", "p3"])
    err = info.value
    assert err.completions[0].startswith(" echo[p0") and err.completions[1:] == [None] * 3
    assert err.attempts == {0: 1, 1: 2, 2: 0, 3: 0} and "not sent" in err.errors[3]
    assert {r.body["prompt"] for r in server.requests} == {"p0", "p1"}


def test_client_errors_are_not_retried(server):
    server.inject("400")
    with pytest.raises(PartialBatchError, match=r"after 1 attempt\(s\).*HTTP 400"):
        gen(make(server), ["x"])
    assert len(server.requests) == 1


def test_in_flight_retries_stop_when_another_prompt_fails(server):
    # p0 times out twice (~0.6 s) while p1 waits out a 5 s Retry-After: p1 stops waiting.
    server.inject("hang", count=2, match="p0")
    server.inject("429", count=10, match="p1", retry_after=5)
    t0 = time.perf_counter()
    with pytest.raises(PartialBatchError) as info:
        gen(make(server, max_retries=1, max_concurrency=2, max_backoff_s=10.0), ["p0", "p1"])
    assert time.perf_counter() - t0 < 3
    err = info.value
    assert "timed out" in str(err) and err.attempts[0] == 2
    assert err.errors[1].startswith("stopped retrying") and err.attempts[1] == 1


def test_unreachable_server(server):
    backend = make(server, max_retries=1)
    server.stop()
    with pytest.raises(BackendError, match=r"connection error.*0/1 completions kept"):
        gen(backend, ["x"])


def test_api_key_sent_but_never_leaked(server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv(KEY_ENV, raising=False)
    gen(make(server), ["x"])
    assert server.requests[-1].authorization is None  # local servers need none
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    backend = make(server, max_retries=1)
    gen(backend, ["x"])
    assert server.requests[-1].authorization == f"Bearer {FAKE_KEY}"

    texts = [repr(backend), str(vars(backend))]
    with pytest.raises(TypeError) as info:
        pickle.dumps(backend)
    texts.append(str(info.value))
    for fault in ["429", "500", "hang", "malformed", "truncated", "400", "401"]:
        server.inject(fault, count=1 if fault in ("400", "401") else 2)  # no retry
        with pytest.raises(PartialBatchError) as info:
            gen(backend, ["x"])
        err = info.value
        texts += [
            str(err),
            repr(err),
            repr(err.errors),
            repr(err.completions),
            "".join(traceback.format_exception(err)),
        ]
    assert "invalid credentials: Bearer <redacted>" in str(err)  # the 401 echo was scrubbed
    assert server.pending_faults() == 0
    server.stop()
    with pytest.raises(BackendError) as info:
        gen(backend, ["x"])
    texts += [str(info.value), "".join(traceback.format_exception(info.value))]
    texts += [r.getMessage() for r in caplog.records]
    assert any("retrying" in t for t in texts)  # the logs were captured
    assert not [t for t in texts if FAKE_KEY in t]


def test_a_key_echoed_into_a_completion_is_scrubbed(server, monkeypatch):
    """A server (or proxy) that writes the request's key into its reply: the text the
    generators see, and so data.jsonl and TensorBoard, never holds it."""
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    for endpoint in ("completions", "chat"):
        out = gen(make(server, endpoint=endpoint), [f"the header was Bearer {FAKE_KEY}"])
        assert FAKE_KEY not in out[0] and "Bearer <redacted>" in out[0]


def test_ctrl_c_during_a_batch_stops_at_once_and_sends_no_queued_prompt():
    """16 prompts of 1 s each, 2 at a time, interrupted after 0.3 s: the interrupt is raised
    within a second, and no prompt beyond the 2 in flight reaches the server (before, the
    pool sent every queued prompt first: 8 s here, 50-100 s on a slow real server)."""
    import os
    import signal
    import threading

    with OpenAICompatServer(
        EchoBackend(), model_name="echo", serialize_backend=False, latency_s=1.0
    ) as srv:
        backend = make(srv, timeout_s=10.0, max_concurrency=2)
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        t0 = time.monotonic()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            gen(backend, [f"p{i}" for i in range(16)])
        elapsed = time.monotonic() - t0
        time.sleep(1.5)  # the abandoned in-flight requests finish; nothing else is sent
        assert elapsed < 1.0, elapsed
        assert len(srv.requests) <= 2, [r.body.get("prompt") for r in srv.requests]


def test_missing_openai_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)  # makes `import openai` fail
    with pytest.raises(ImportError, match=r'pip install "datagen-gym\[openai\]"') as info:
        OpenAIBackend("http://127.0.0.1:9/v1", "m")
    assert isinstance(info.value, BackendError) and isinstance(info.value, OpenAINotInstalledError)


def test_openai_is_imported_only_when_a_backend_is_built():
    code = (
        "import sys, datagen_gym, datagen_gym.backends.openai_backend as ob\n"
        "assert 'openai' not in sys.modules, 'imported too early'\n"
        "ob.OpenAIBackend('http://127.0.0.1:9/v1', 'm')\n"
        "assert 'openai' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_generator_end_to_end_over_http_matches_direct():
    """A scripted backend behind the server gives the same records as called directly."""
    from test_generators import ScriptedBackend

    bootstrap = (
        " Is this text message spam or not spam?\n"
        "10. Multiply each pair of integers and report it.\n"
    )
    direct = Generator(sampler=Sampler(ScriptedBackend(bootstrap=bootstrap)), seed=0).generate(8)
    with OpenAICompatServer(ScriptedBackend(bootstrap=bootstrap)) as srv:
        backend = OpenAIBackend(srv.base_url, "scripted", timeout_s=5, backoff_s=0.01)
        over_http = Generator(sampler=Sampler(backend), seed=0).generate(8)
    assert len(direct) > 0
    assert list(over_http) == list(direct)


@pytest.mark.skipif(
    not TEACHER_CONFIG.is_file(),
    reason="the embedded teacher is not trained yet "
    "(datagen_gym/world/teacher/config.json is missing)",
)
def test_generator_end_to_end_on_teacher_over_http(teacher):
    with OpenAICompatServer(teacher) as srv:
        backend = OpenAIBackend(srv.base_url, srv.model_name, timeout_s=60, backoff_s=0.01)
        generator = Generator(sampler=Sampler(backend, temperature=0.8, top_p=0.95), seed=0)
        generator.select_template("self_instruct_classification")
        res = generator.generate(8, step=1)
    assert res.num_candidates > 0 and len(res) <= 8
    assert all(r["step"] == 1 and r["temperature"] == 0.8 for r in res)
    assert all(r.body["temperature"] == 0.8 and r.fault is None for r in srv.requests)
