"""What a DataGen-v0 step costs, and the teacher backend's overhead over `model.generate`.

    python -m benchmarks.env_step_bench [--steps 20] [--batch-size 64] [--repeats 5]

Writes benchmarks/results/env_step.md. Figures are medians; the generation/target split comes
from the env's own `info` timings. The env runs twice on the same seed and actions: with the
default compact decoder (finished rows leave the batch, a prompt prefix shared by the batch is
computed once) and with `model.generate` (`sampling.decoder="generate"`). Their tokens can
differ only by float rounding in the shared prefix, so the rewards should match.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def bench_env(
    steps: int, batch_size: int, decoder: str = "compact", seed: int = 0
) -> dict[str, Any]:
    import gymnasium as gym

    import datagen_gym  # noqa: F401
    from datagen_gym.config import Config

    config = Config()
    config.sampling.decoder = decoder
    env = gym.make("DataGen-v0", batch_size=batch_size, num_iterations=10, config=config)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    total, gen, tgt, rewards = [], [], [], []
    done = False
    for _ in range(steps):
        if done:
            env.reset()
        t0 = time.perf_counter()
        _, reward, _, done, info = env.step(env.action_space.sample())
        total.append(time.perf_counter() - t0)
        seconds = env.unwrapped.last_step_seconds
        gen.append(seconds["time_generation_s"])
        tgt.append(seconds["time_target_s"])
        rewards.append(reward)
    env.close()
    return {
        "step": statistics.median(total),
        "generation": statistics.median(gen),
        "target": statistics.median(tgt),
        "rewards": rewards,
    }


def bench_backend(repeats: int, batch_size: int) -> dict[str, float]:
    """Our backend against calling model.generate directly on the same tokenized batch."""
    from datagen_gym.backends import EMBEDDED_TEACHER, TransformersBackend
    from datagen_gym.generators.generator import Generator
    from datagen_gym.sampler import Sampler

    backend = TransformersBackend(EMBEDDED_TEACHER)
    gen = Generator(sampler=Sampler(backend), seed=0)
    prompts = gen.self_instruct.bootstrap_prompts(batch_size)
    tok, model = backend.tokenizer, backend.model
    kwargs = dict(
        max_new_tokens=96,
        do_sample=True,
        temperature=1.0,
        top_p=0.9,
        top_k=0,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    ours, direct, tokens = [], [], []
    for r in range(repeats):
        torch.manual_seed(r)
        t0 = time.perf_counter()
        enc = tok(prompts, return_tensors="pt", padding=True)
        with torch.inference_mode():
            ids = model.generate(**enc, **kwargs)
        tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        direct.append(time.perf_counter() - t0)
        tokens.append(int((ids[:, enc["input_ids"].shape[1] :] != tok.pad_token_id).sum()))
        t0 = time.perf_counter()
        backend.generate(prompts, temperature=1.0, top_p=0.9, max_new_tokens=96, seed=r)
        ours.append(time.perf_counter() - t0)
    return {
        "ours": statistics.median(ours),
        "direct": statistics.median(direct),
        "tokens": statistics.median(tokens),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    env = bench_env(args.steps, args.batch_size)
    hf_env = bench_env(args.steps, args.batch_size, decoder="generate")
    be = bench_backend(args.repeats, args.batch_size)
    ratio = be["ours"] / be["direct"]
    differ = sum(a != b for a, b in zip(env["rewards"], hf_env["rewards"]))
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
        f'| env step with `sampling.decoder="generate"` (`model.generate`) | '
        f"{hf_env['step']:.3f} s |",
        f"| compact / generate, env step | {env['step'] / hf_env['step']:.3f} |",
        f"| steps whose reward differs between the two decoders | {differ} of {args.steps} |",
        f"| teacher backend (compact decoder), {args.batch_size} bootstrap prompts x 96 new "
        f"tokens | "
        f"{be['ours']:.3f} s ({be['tokens'] / be['ours']:.0f} tokens/s) |",
        f"| `model.generate` directly, same batch | {be['direct']:.3f} s |",
        f"| backend / direct | {ratio:.3f} |",
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "env_step.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
