"""What a DataGen-v0 step costs, and the teacher backend's overhead over `model.generate`.

    python -m benchmarks.env_step_bench [--steps 20] [--batch-size 64] [--repeats 5]

Writes benchmarks/results/env_step.md. Figures are medians; the generation/target split comes
from the env's own `info` timings. The default env (static KV cache) and the same env with the
dynamic cache take the same actions from the same seed, step by step in turn, so their ratio is
robust to other load on the machine, and their rewards must agree (same tokens).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def bench_env(steps: int, batch_size: int, seed: int = 0) -> dict[str, float]:
    """Median step time of the default env under random actions."""
    return _paired_steps(steps, batch_size, seed, caches=("static",))["static"]


def bench_cache(steps: int, batch_size: int, seed: int = 0) -> dict[str, Any]:
    """The default env (static KV cache) against the same env with the dynamic cache."""
    return _paired_steps(steps, batch_size, seed, caches=("static", "dynamic"))


def _paired_steps(steps: int, batch_size: int, seed: int, caches: tuple[str, ...]
                  ) -> dict[str, Any]:
    import gymnasium as gym

    import datagen_gym  # noqa: F401

    envs = {}
    for cache in caches:
        envs[cache] = gym.make("DataGen-v0", batch_size=batch_size, num_iterations=10)
        envs[cache].unwrapped.generator.sampler.backend.cache_implementation = \
            None if cache == "dynamic" else cache
        envs[cache].reset(seed=seed)
    actions = envs[caches[0]].action_space
    actions.seed(seed)
    rec = {k: {"step": [], "generation": [], "target": [], "reward": []} for k in envs}
    for i in range(steps):
        action = actions.sample()
        for name in (caches if i % 2 == 0 else caches[::-1]):  # alternate who goes first
            t0 = time.perf_counter()
            _, reward, _, done, info = envs[name].step(action)
            rec[name]["step"].append(time.perf_counter() - t0)
            rec[name]["generation"].append(info["time_generation_s"])
            rec[name]["target"].append(info["time_target_s"])
            rec[name]["reward"].append(reward)
            if done:
                envs[name].reset()
    out: dict[str, Any] = {k: {m: statistics.median(v) for m, v in r.items() if m != "reward"}
                           for k, r in rec.items()}
    if "dynamic" in rec:
        out["same_rewards"] = rec["static"]["reward"] == rec["dynamic"]["reward"]
        out["ratios"] = [d / s for s, d in zip(rec["static"]["step"], rec["dynamic"]["step"])]
    return out


def bench_backend(repeats: int, batch_size: int) -> dict[str, float]:
    """Our backend against calling model.generate directly on the same tokenized batch."""
    from datagen_gym.backends import EMBEDDED_TEACHER, TransformersBackend
    from datagen_gym.generators.generator import Generator
    from datagen_gym.sampler import Sampler

    backend = TransformersBackend(EMBEDDED_TEACHER)
    gen = Generator(sampler=Sampler(backend), seed=0)
    prompts = gen.self_instruct.bootstrap_prompts(batch_size)
    tok, model = backend.tokenizer, backend.model
    # The same cache as the backend, so the ratio is the backend's own overhead.
    kwargs = dict(max_new_tokens=96, do_sample=True, temperature=1.0, top_p=0.9, top_k=0,
                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                  cache_implementation=backend.cache_implementation)
    ours, direct, tokens = [], [], []
    for r in range(repeats):
        torch.manual_seed(r)
        t0 = time.perf_counter()
        enc = tok(prompts, return_tensors="pt", padding=True)
        with torch.inference_mode():
            ids = model.generate(**enc, **kwargs)
        tok.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        direct.append(time.perf_counter() - t0)
        tokens.append(int((ids[:, enc["input_ids"].shape[1]:] != tok.pad_token_id).sum()))
        t0 = time.perf_counter()
        backend.generate(prompts, temperature=1.0, top_p=0.9, max_new_tokens=96, seed=r)
        ours.append(time.perf_counter() - t0)
    return {"ours": statistics.median(ours), "direct": statistics.median(direct),
            "tokens": statistics.median(tokens)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    pair = bench_cache(args.steps, args.batch_size)
    env, dyn = pair["static"], pair["dynamic"]
    be = bench_backend(args.repeats, args.batch_size)
    ratio = be["ours"] / be["direct"]
    lines = [
        "# DataGen-v0 step cost",
        "",
        f"`python -m benchmarks.env_step_bench --steps {args.steps} --batch-size "
        f"{args.batch_size} --repeats {args.repeats}`"
        + (f" `--threads {args.threads}`" if args.threads else ""),
        f"on {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads. Medians.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| env step, batch {args.batch_size} (random actions) | {env['step']:.3f} s |",
        f"| of which generation | {env['generation']:.3f} s |",
        f"| of which target fit + eval | {env['target']:.3f} s |",
        f"| same env, dynamic KV cache (paired steps) | {dyn['step']:.3f} s "
        f"(generation {dyn['generation']:.3f} s) |",
        f"| dynamic / static, median of per-step ratios | "
        f"{statistics.median(pair['ratios']):.2f}x; same rewards: "
        f"{'yes' if pair['same_rewards'] else 'NO'} |",
        f"| teacher backend, {args.batch_size} bootstrap prompts x 96 new tokens | "
        f"{be['ours']:.3f} s ({be['tokens'] / be['ours']:.0f} tokens/s) |",
        f"| `model.generate` directly, same batch and cache | {be['direct']:.3f} s |",
        f"| backend / direct | {ratio:.3f} |",
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "env_step.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
