"""What client-side concurrency buys the OpenAI backend against a server with network latency.

    python -m benchmarks.openai_concurrency_bench [--prompts 64] [--latency-ms 50]
        [--concurrency 1 4 16] [--repeats 3] [--backend echo|teacher]

The loopback :class:`OpenAICompatServer` sleeps ``--latency-ms`` per request (outside any
lock, like a remote server batching its requests) before answering; the ``echo`` backend
answers instantly so the figures isolate the client's request handling, while ``teacher`` also
runs the embedded teacher (serialized, so it shows where a local CPU model caps the gain).
Writes benchmarks/results/openai_concurrency.md. Figures are medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from datagen_gym.backends.openai_backend import OpenAIBackend
from envs_tests.support.openai_server import OpenAICompatServer

RESULTS = Path(__file__).resolve().parent / "results"


class EchoBackend:
    """Answers at once with a short fixed continuation (no model compute)."""

    deterministic = True

    def generate(
        self,
        prompts: Sequence[str],
        *,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int | None = None,
    ) -> list[str]:
        return [" Is this email spam or not spam?\n" for _ in prompts]


def bench(
    server: OpenAICompatServer,
    prompts: list[str],
    concurrency: int,
    repeats: int,
    max_new_tokens: int,
) -> dict[str, float]:
    """Median wall time of one ``generate`` over all prompts, and the in-flight peak."""
    backend = OpenAIBackend(
        server.base_url, server.model_name, max_concurrency=concurrency, timeout_s=60
    )
    backend.generate(
        prompts[:concurrency], temperature=1.0, top_p=0.9, max_new_tokens=max_new_tokens, seed=0
    )  # warm up the connection pool
    times, peaks = [], []
    for r in range(repeats):
        server.reset_stats()
        t0 = time.perf_counter()
        out = backend.generate(
            prompts, temperature=1.0, top_p=0.9, max_new_tokens=max_new_tokens, seed=r
        )
        times.append(time.perf_counter() - t0)
        peaks.append(server.max_in_flight)
        assert len(out) == len(prompts)
    backend.close()
    return {"wall_s": statistics.median(times), "max_in_flight": max(peaks)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--backend", choices=["echo", "teacher"], default="echo")
    parser.add_argument("--out", type=Path, default=RESULTS / "openai_concurrency.md")
    args = parser.parse_args(argv)

    if args.backend == "teacher":
        import torch

        from datagen_gym.backends.transformers_backend import EMBEDDED_TEACHER, TransformersBackend

        torch.set_num_threads(1)  # one model call at a time: more threads only contend
        inner = TransformersBackend(EMBEDDED_TEACHER)
    else:
        inner = EchoBackend()
    prompts = [
        f"Come up with a series of tasks:\n1. Task number {i}.\n2." for i in range(args.prompts)
    ]
    rows = []
    with OpenAICompatServer(inner, latency_s=args.latency_ms / 1000.0) as server:
        for c in args.concurrency:
            rows.append((c, bench(server, prompts, c, args.repeats, args.max_new_tokens)))
            print(f"concurrency {c:3d}: {rows[-1][1]['wall_s']:.3f} s", flush=True)

    base = rows[0][1]["wall_s"]
    ideal = args.prompts * args.latency_ms / 1000.0
    lines = [
        "# OpenAI backend: client concurrency against a loopback server with latency",
        "",
        f"`python -m benchmarks.openai_concurrency_bench --prompts {args.prompts} "
        f"--latency-ms {args.latency_ms:g} --concurrency "
        f"{' '.join(map(str, args.concurrency))} --repeats {args.repeats} "
        f"--backend {args.backend}`",
        "",
        f"{args.prompts} prompts, one HTTP request each, to `OpenAICompatServer` on 127.0.0.1 "
        f"sleeping {args.latency_ms:g} ms per request (emulated network/queue latency; "
        f"backend: {args.backend}). Serial lower bound {ideal:.2f} s. Median of "
        f"{args.repeats} runs; `{platform.processor() or platform.machine()}`, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}.",
        "",
        "| max_concurrency | wall time (s) | speed-up vs 1 | server max in-flight | "
        "ideal wall (s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for c, r in rows:
        lines.append(
            f"| {c} | {r['wall_s']:.3f} | {base / r['wall_s']:.2f}x | "
            f"{r['max_in_flight']} | {ideal / c:.3f} |"
        )
    lines += ["", "Ideal wall = prompts x latency / concurrency (no client or server overhead)."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
