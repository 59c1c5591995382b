"""What a DataGen-v0 step costs, how fast each decoder serves the embedded teacher, and how far
that is from the machine's arithmetic floor.

    python -m benchmarks.env_step_bench [--steps 20] [--batch-size 64] [--repeats 5]
        [--seeds 8] [--threads N]

Writes benchmarks/results/env_step.md, in one run:

1. **Decoders** on the same prompts (Self-Instruct bootstrap prompts, 96 new tokens,
   temperature 1, top_p 0.9) at batch 16 and 64: the fused GPT-2 decoder (the default), the
   compact decoder and ``model.generate`` (the references), and CTranslate2 float32 / int8 when
   the ``ctranslate2`` package is installed (the model converted in a temporary folder).
   Tokens/s counts the generated text's tokens (up to each row's EOS); the wall time includes
   tokenising, prefilling the prompts and decoding the text.
2. **The floor**: FLOPs per generated token (and for the prompt tokens the batch prefills),
   divided by the GFLOP/s this machine measures for matmuls of the model's own shapes at the
   batch size: the tokens/s the arithmetic alone allows; and the KV cache a token's decode
   step reads, divided by the memory bandwidth: the tokens/s memory alone allows.
3. **The env step** at the batch size (random actions, median), with each decoder, split into
   decoding (the backend's calls), the ROUGE-L novelty filter, prompting / parsing / the other
   filters (the rest of generation), the target's fit and evaluation, and the env's own work.
4. **Same distribution**: the fused and compact decoders run the same actions on
   ``--seeds`` seeds; records, correctness, kept fraction and the metric per step, compared by
   Welch's t-test. The fused decoder draws other random numbers, so only the distribution can
   agree.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import command_line, t_ci

RESULTS = Path(__file__).resolve().parent / "results"
NEW_TOKENS = 96
TEMPERATURE, TOP_P = 1.0, 0.9


# ------------------------------------------------------------------------------ the env step
@contextlib.contextmanager
def _timed(owner: Any, name: str, totals: dict[str, float], key: str) -> Iterator[None]:
    """Add the wall time of every call of ``owner.name`` to ``totals[key]`` while active."""
    original = getattr(owner, name)

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - t0

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


def bench_env(steps: int, batch_size: int, decoder: str = "fused", seed: int = 0) -> dict[str, Any]:
    """Median step time and its split on the default env with random actions."""
    import gymnasium as gym

    import datagen_gym  # noqa: F401
    from datagen_gym.backends.transformers_backend import TransformersBackend
    from datagen_gym.config import Config
    from datagen_gym.generators.rouge_filter import RougeLFilter

    config = Config()
    config.sampling.decoder = decoder
    env = gym.make("DataGen-v0", batch_size=batch_size, num_iterations=10, config=config)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    env.step(env.action_space.sample())  # warm-up: lazy imports, the KV-cache workspace
    env.reset(seed=seed)
    parts: dict[str, list[float]] = {
        k: [] for k in ("step", "generation", "target", "decoding", "rouge", "rest", "env")
    }
    rewards = []
    done = False
    for _ in range(steps):
        if done:
            env.reset()
        totals = {"decoding": 0.0, "rouge": 0.0}
        with (
            _timed(TransformersBackend, "generate", totals, "decoding"),
            _timed(RougeLFilter, "filter", totals, "rouge"),
            _timed(RougeLFilter, "add", totals, "rouge"),
        ):
            t0 = time.perf_counter()
            _, reward, _, done, _ = env.step(env.action_space.sample())
            total = time.perf_counter() - t0
        seconds = env.unwrapped.last_step_seconds
        gen, tgt = seconds["time_generation_s"], seconds["time_target_s"]
        for key, value in (
            ("step", total),
            ("generation", gen),
            ("target", tgt),
            ("decoding", totals["decoding"]),
            ("rouge", totals["rouge"]),
            ("rest", gen - totals["decoding"] - totals["rouge"]),
            ("env", total - gen - tgt),
        ):
            parts[key].append(value)
        rewards.append(reward)
    env.close()
    return {**{k: statistics.median(v) for k, v in parts.items()}, "rewards": rewards}


# ------------------------------------------------------------------------------- decoders
def _prompts(batch_size: int) -> list[str]:
    from datagen_gym.backends import EMBEDDED_TEACHER, TransformersBackend
    from datagen_gym.generators.generator import Generator
    from datagen_gym.sampler import Sampler

    gen = Generator(sampler=Sampler(TransformersBackend(EMBEDDED_TEACHER)), seed=0)
    return gen.self_instruct.bootstrap_prompts(batch_size)


def _time_interleaved(runs: dict[str, Callable[[int], int]], repeats: int) -> dict[str, dict]:
    """Median seconds and tokens of each ``run(seed) -> tokens generated``, after a warm-up
    run each; the repeats take turns, so a change of machine load falls on every one alike."""
    for run in runs.values():
        run(-1)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    tokens: dict[str, list[int]] = {name: [] for name in runs}
    for r in range(repeats):
        for name, run in runs.items():
            # Thread pools spin for a while after their work (OpenMP's, CTranslate2's): let
            # the previous run's go idle so they do not take this one's cores.
            time.sleep(0.3)
            t0 = time.perf_counter()
            tokens[name].append(run(r))
            seconds[name].append(time.perf_counter() - t0)
    out = {}
    for name in runs:
        s, n = statistics.median(seconds[name]), statistics.median(tokens[name])
        out[name] = {"seconds": s, "tokens": n, "tokens_per_s": n / s}
    return out


def bench_decoders(batch_size: int, repeats: int) -> dict[str, dict[str, float]]:
    """Each decoder on the same ``batch_size`` bootstrap prompts."""
    from datagen_gym.backends import EMBEDDED_TEACHER, TransformersBackend

    prompts = _prompts(batch_size)
    runs = {}
    for decoder in ("fused", "compact", "generate"):
        backend = TransformersBackend(EMBEDDED_TEACHER, decoder=decoder)

        def run(seed: int, backend=backend) -> int:
            texts = backend.generate(
                prompts,
                temperature=TEMPERATURE,
                top_p=TOP_P,
                max_new_tokens=NEW_TOKENS,
                seed=max(seed, 0),
            )
            return sum(len(backend.tokenizer(t)["input_ids"]) for t in texts)

        runs[decoder] = run
    out = _time_interleaved(runs, repeats)
    # CTranslate2 in a process of its own: once its thread pool has run, this process's torch
    # decoders ran 30-50% slower (measured), which would bias every comparison after it.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        out.update(
            pool.submit(_bench_ctranslate2, batch_size, repeats, torch.get_num_threads()).result()
        )
    return out


def _bench_ctranslate2(batch_size: int, repeats: int, threads: int) -> dict[str, dict]:
    torch.set_num_threads(threads)
    return _time_interleaved(_ctranslate2_runs(_prompts(batch_size)), repeats)


def _ctranslate2_runs(prompts: list[str]) -> dict[str, Callable[[int], int]]:
    """CTranslate2's generator on the same prompts, when the package is installed (the model
    converted into a folder that lasts as long as the process)."""
    try:
        import ctranslate2
        from ctranslate2.converters import TransformersConverter
    except ImportError:
        return {}
    from datagen_gym.backends import EMBEDDED_TEACHER, TransformersBackend

    tok = TransformersBackend(EMBEDDED_TEACHER).tokenizer
    tokens = [tok.convert_ids_to_tokens(tok(p)["input_ids"]) for p in prompts]
    folder = tempfile.mkdtemp(prefix="datagen_ct2_")
    atexit.register(shutil.rmtree, folder, True)
    with contextlib.redirect_stderr(open(os.devnull, "w")):
        TransformersConverter(str(EMBEDDED_TEACHER)).convert(folder, force=True)
    runs = {}
    for compute_type in ("float32", "int8"):
        generator = ctranslate2.Generator(
            folder,
            device="cpu",
            compute_type=compute_type,
            intra_threads=torch.get_num_threads(),
            inter_threads=1,
        )

        def run(seed: int, generator=generator) -> int:
            ctranslate2.set_random_seed(max(seed, 0))
            results = generator.generate_batch(
                tokens,
                max_length=NEW_TOKENS,
                sampling_topk=0,
                sampling_topp=TOP_P,
                sampling_temperature=TEMPERATURE,
                include_prompt_in_result=False,
                end_token=tok.eos_token,
            )
            texts = tok.batch_decode([r.sequences_ids[0] for r in results])
            return sum(len(tok(t)["input_ids"]) for t in texts)

        runs[f"ctranslate2 {compute_type}"] = run
    return runs


# ---------------------------------------------------------------------------------- floor
def floor(batch_size: int, prompt_tokens: float, context: float) -> dict[str, float]:
    """The arithmetic floor: FLOPs per generated token and per prefilled prompt token against
    the GFLOP/s of this machine's matmuls at the model's shapes (``batch_size`` rows for
    decoding, a prefill piece's rows for prompts). ``context``: the mean attended length."""
    from transformers import AutoConfig

    from datagen_gym.backends import EMBEDDED_TEACHER

    config = AutoConfig.from_pretrained(EMBEDDED_TEACHER, local_files_only=True)
    width, inner, layers, vocab = config.n_embd, config.n_inner, config.n_layer, config.vocab_size
    shapes = [(width, 3 * width), (width, width), (width, inner), (inner, width)]
    attention = 2 * 2 * context * width  # scores and weighted values, per layer
    decode_flops = layers * (sum(2 * a * b for a, b in shapes) + attention) + 2 * width * vocab
    prefill_flops = layers * (sum(2 * a * b for a, b in shapes) + attention)

    def gflops(rows: int) -> float:
        seconds, flops = 0.0, 0.0
        for k, n in [*shapes, (width, vocab)]:
            a, b = torch.randn(rows, k), torch.randn(k, n)
            for _ in range(3):
                a @ b
            reps = max(5, int(2e8 / (2 * rows * k * n)))
            t0 = time.perf_counter()
            for _ in range(reps):
                a @ b
            seconds += (time.perf_counter() - t0) / reps
            flops += 2 * rows * k * n
        return flops / seconds / 1e9

    decode_peak, prefill_peak = gflops(batch_size), gflops(1024)
    # Per generated token: its decode step, plus its share of the prompts prefilled.
    per_token_s = decode_flops / (decode_peak * 1e9) + prompt_tokens * prefill_flops / (
        prefill_peak * 1e9
    )
    # Memory: a decode step reads every cached key and value of its row once per layer.
    kv_bytes = layers * 2 * context * width * 4
    big = torch.ones(64 * 2**20)  # 256 MB, past every cache
    big.sum()
    t0 = time.perf_counter()
    for _ in range(5):
        big.sum()
    bandwidth = 5 * big.numel() * 4 / (time.perf_counter() - t0)
    return {
        "kv_bytes": kv_bytes,
        "bandwidth_gbs": bandwidth / 1e9,
        "memory_tokens_per_s": bandwidth / kv_bytes,
        "decode_mflop": decode_flops / 1e6,
        "prefill_mflop": prefill_flops / 1e6,
        "decode_gflops": decode_peak,
        "prefill_gflops": prefill_peak,
        "floor_tokens_per_s": 1.0 / per_token_s,
    }


# ---------------------------------------------------------------------- same distribution
def env_outputs(decoder: str, seeds: int, steps: int, batch_size: int) -> dict[str, list]:
    """Per (seed, step): records, correctness, kept fraction and metric, same actions."""
    import gymnasium as gym

    import datagen_gym  # noqa: F401
    from datagen_gym.config import Config

    config = Config()
    config.sampling.decoder = decoder
    env = gym.make("DataGen-v0", batch_size=batch_size, num_iterations=steps, config=config)
    out: dict[str, list] = {"records": [], "correctness": [], "kept_fraction": [], "metric": []}
    for seed in range(seeds):
        env.reset(seed=seed)
        env.action_space.seed(seed)
        for _ in range(steps):
            _, _, _, _, info = env.step(env.action_space.sample())
            out["records"].append(info["num_records"])
            out["kept_fraction"].append(info["kept_fraction"])
            out["metric"].append(info["metric"])
            if info.get("correctness") is not None and not math.isnan(info["correctness"]):
                out["correctness"].append(info["correctness"])
    env.close()
    return out


def compare(a: list[float], b: list[float]) -> dict[str, float]:
    from scipy import stats

    return {
        "a": float(np.mean(a)),
        "a_ci": t_ci(a),
        "b": float(np.mean(b)),
        "b_ci": t_ci(b),
        "p": float(stats.ttest_ind(a, b, equal_var=False).pvalue),
    }


# ---------------------------------------------------------------------------------- report
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=8, help="seeds of the distribution check")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()

    decoders = {b: bench_decoders(b, args.repeats) for b in sorted({16, args.batch_size})}
    from datagen_gym.backends import EMBEDDED_TEACHER, TransformersBackend

    tok = TransformersBackend(EMBEDDED_TEACHER).tokenizer
    prompts = _prompts(args.batch_size)
    prompt_len = statistics.mean(len(tok(p)["input_ids"]) for p in prompts)
    generated = decoders[args.batch_size]["fused"]["tokens"] / args.batch_size
    fl = floor(args.batch_size, prompt_len / generated, prompt_len + generated / 2)
    envs = {d: bench_env(args.steps, args.batch_size, d) for d in ("fused", "compact")}
    dist = {d: env_outputs(d, args.seeds, 5, 16) for d in ("fused", "compact")}

    base = decoders[args.batch_size]["compact"]["tokens_per_s"]
    lines = [
        "# DataGen-v0 step cost and the embedded teacher's decoders",
        "",
        f"`{command_line('benchmarks.env_step_bench', argv)}` on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads; medians; "
        f"{(time.perf_counter() - started) / 60:.1f} min.",
        "",
        f"## Decoders: bootstrap prompts x {NEW_TOKENS} new tokens (T={TEMPERATURE}, "
        f"top_p={TOP_P})",
        "",
        "| decoder | batch | seconds | tokens | tokens/s | vs compact |",
        "|---|---|---|---|---|---|",
    ]
    for batch, results in decoders.items():
        ref = results["compact"]["tokens_per_s"]
        for name, r in results.items():
            lines.append(
                f"| {name} | {batch} | {r['seconds']:.3f} | {r['tokens']:.0f} | "
                f"{r['tokens_per_s']:.0f} | {r['tokens_per_s'] / ref:.2f}x |"
            )
    fused_rate = decoders[args.batch_size]["fused"]["tokens_per_s"]
    lines += [
        "",
        f"## The floor at batch {args.batch_size}",
        "",
        "| measure | value |",
        "|---|---|",
        f"| FLOPs per generated token (4 layers, LM head, attention over "
        f"{prompt_len + generated / 2:.0f} positions) | {fl['decode_mflop']:.2f} MFLOP |",
        f"| FLOPs per prompt token (prefill, no LM head) | {fl['prefill_mflop']:.2f} MFLOP |",
        f"| prompt tokens per generated token in this batch | {prompt_len / generated:.2f} |",
        f"| matmul GFLOP/s at the decode shapes ({args.batch_size} rows) | "
        f"{fl['decode_gflops']:.0f} |",
        f"| matmul GFLOP/s at the prefill shapes (1024 rows) | {fl['prefill_gflops']:.0f} |",
        f"| arithmetic floor | {fl['floor_tokens_per_s']:.0f} tokens/s |",
        f"| KV cache read per generated token | {fl['kv_bytes'] / 1e3:.0f} kB |",
        f"| memory bandwidth (sum over 256 MB) | {fl['bandwidth_gbs']:.1f} GB/s |",
        f"| memory floor (KV reads alone) | {fl['memory_tokens_per_s']:.0f} tokens/s |",
        f"| fused decoder / floor | {fused_rate / fl['floor_tokens_per_s']:.2f} |",
        f"| fused decoder / compact decoder | {fused_rate / base:.2f}x |",
        "",
        f"## The env step at batch {args.batch_size} ({args.steps} random actions)",
        "",
        "| decoder | step | decoding | ROUGE-L filter | prompts, parsing, other filters | "
        "target fit + eval | env |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in envs.items():
        lines.append(
            f"| {name} | {e['step']:.3f} s | {e['decoding']:.3f} | {e['rouge']:.3f} | "
            f"{e['rest']:.3f} | {e['target']:.3f} | {e['env']:.3f} |"
        )
    lines += [
        "",
        f"fused / compact, env step: {envs['fused']['step'] / envs['compact']['step']:.3f}",
        "",
        f"## Same distribution: fused vs compact, {args.seeds} seeds x 5 steps, batch 16",
        "",
        "| per step | fused | compact | Welch p |",
        "|---|---|---|---|",
    ]
    for key in ("records", "correctness", "kept_fraction", "metric"):
        c = compare(dist["fused"][key], dist["compact"][key])
        lines.append(
            f"| {key} | {c['a']:.3f} +- {c['a_ci']:.3f} | {c['b']:.3f} +- {c['b_ci']:.3f} | "
            f"{c['p']:.2f} |"
        )
    lines.append("")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "env_step.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
