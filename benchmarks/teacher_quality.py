"""How well a teacher follows its prompt and how often its data is right, per task family.

    python -m benchmarks.teacher_quality [--teacher PATH] [--baseline-rev REV | --baseline PATH]
        [--seeds 2] [--records 64] [--temperatures 0.4 1.0 1.3] [--top-p 0.9] [--threads 1]

Three measurements, each with the real generators on the embedded world (a teacher directory
is any local Hugging Face causal LM; by default the embedded one):

* **focus**: ``Generator.set_focus(family)`` puts only that family's tasks in the Self-Instruct
  prompt (the seed pool's 4 human tasks, plus 2 machine tasks of the focus from the second
  round on); two rounds of ``--records`` records per family and seed, plain ``self_instruct``
  template, T=1.0 / top_p 0.9 (the env's start). Reported: the share of the focused family
  among the records (the checker's ``family_counts``), next to its share without a focus.
* **correctness**: records of the four Self-Instruct templates, ``--records`` each per seed,
  at each temperature (top_p ``--top-p``); the checker's verdict per family (records whose
  instruction no grammar knows count as ``unknown``, always wrong), the unique-instruction
  ratio, and the number of distinct records (diversity).
* **instances**: the instance prompts alone (input-first for generative families,
  output-first for classification ones) on 24 valid tasks per family: how often the teacher's
  first answer is the exact output, with the task given.

Writes ``benchmarks/results/teacher_quality.md`` and ``.json``. With ``--baseline-rev`` the
teacher committed at that git revision is measured too, same command, same seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
TEACHER_DIR = "datagen_gym/world/teacher"
SI_TEMPLATES = (
    "self_instruct",
    "self_instruct_classification",
    "self_instruct_text",
    "self_instruct_math",
)


def teacher_at_revision(rev: str, dest: Path) -> Path:
    """Copy the embedded teacher committed at ``rev`` into ``dest``."""
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{rev}:{TEACHER_DIR}"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        blob = subprocess.run(
            ["git", "show", f"{rev}:{TEACHER_DIR}/{name}"],
            cwd=REPO,
            check=True,
            capture_output=True,
        ).stdout
        (dest / name).write_bytes(blob)
    return dest


def machine(threads: int) -> str:
    """The report's machine line: cores, CPU, torch build and torch threads."""
    return (
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}, {threads} torch thread(s)"
    )


def _generator(backend, seed: int, temperature: float, top_p: float):
    from datagen_gym.generators.generator import Generator
    from datagen_gym.sampler import Sampler

    return Generator(sampler=Sampler(backend, temperature=temperature, top_p=top_p), seed=seed)


def focus_share(
    backend,
    families: list[str],
    seeds: list[int],
    records: int,
    rounds: int = 2,
    temperature: float = 1.0,
    top_p: float = 0.9,
) -> dict[str, Any]:
    """Per family: records generated with the focus on it, and how many are of that family."""
    from datagen_gym.world import checker

    out: dict[str, Any] = {}
    unfocused: Counter = Counter()
    n_unfocused = 0
    for seed in seeds:
        gen = _generator(backend, seed, temperature, top_p)
        gen.select_template("self_instruct")
        for _ in range(rounds):
            data = gen.generate(records).data
            unfocused.update(checker.family_counts(data))
            n_unfocused += len(data)
    for family in families:
        counts: Counter = Counter()
        n = 0
        for seed in seeds:
            gen = _generator(backend, seed, temperature, top_p)
            gen.select_template("self_instruct")
            gen.set_focus(family)
            for _ in range(rounds):
                data = gen.generate(records).data
                counts.update(checker.family_counts(data))
                n += len(data)
        out[family] = {
            "records": n,
            "focused": counts[family],
            "share": counts[family] / n if n else math.nan,
            "unknown": counts["unknown"],
            "share_without_focus": (unfocused[family] / n_unfocused if n_unfocused else math.nan),
        }
    total = sum(v["records"] for v in out.values())
    out["all"] = {
        "records": total,
        "focused": sum(v["focused"] for v in out.values()),
        "share": (sum(v["focused"] for v in out.values()) / total if total else math.nan),
        "unknown": sum(v["unknown"] for v in out.values()),
        "share_without_focus": 1.0 / len(families),
    }
    return out


def correctness(
    backend, families: list[str], seeds: list[int], records: int, temperature: float, top_p: float
) -> dict[str, Any]:
    """Checker verdicts per family on the Self-Instruct templates' records."""
    from datagen_gym.world import checker
    from datagen_gym.world.tasks import identify

    right: Counter = Counter()
    total: Counter = Counter()
    data_all = []
    for seed in seeds:
        for template in SI_TEMPLATES:
            gen = _generator(backend, seed, temperature, top_p)
            gen.select_template(template)
            data_all += gen.generate(records).data
    for r in data_all:
        family, _ = identify(str(r["instruction"]))
        name = family.name if family else "unknown"
        total[name] += 1
        right[name] += checker.is_correct(r)
    per = {
        f: {
            "correct": right[f],
            "records": total[f],
            "accuracy": right[f] / total[f] if total[f] else math.nan,
        }
        for f in families + ["unknown"]
    }
    n = len(data_all)
    per["all"] = {
        "correct": sum(right.values()),
        "records": n,
        "accuracy": sum(right.values()) / n if n else math.nan,
    }
    instructions = [str(r["instruction"]) for r in data_all]
    per["all"]["unique_instructions"] = len(set(instructions)) / n if n else math.nan
    per["all"]["distinct_records"] = len(
        {(r["instruction"], r["input"], r["output"]) for r in data_all}
    )
    return per


def instance_accuracy(
    backend,
    families: list[str],
    temperature: float,
    top_p: float,
    per_family: int = 24,
    seed: int = 0,
) -> dict[str, float]:
    """The instance prompts alone, on valid tasks: the share of exact first answers."""
    from datagen_gym.generators import prompts
    from datagen_gym.world.tasks import FAMILY_BY_NAME, expected_output

    rng = np.random.default_rng(seed)
    tasks, prompt_list = [], []
    for name in families:
        fam = FAMILY_BY_NAME[name]
        for i in range(per_family):
            inst = fam.sample_inline(rng)[0] if i % 2 else fam.sample_instruction(rng)
            tasks.append((name, inst, fam.is_classification))
            prompt_list.append(
                prompts.output_first_prompt(inst)
                if fam.is_classification
                else prompts.input_first_prompt(inst)
            )
    texts = backend.generate(
        prompt_list, temperature=temperature, top_p=top_p, max_new_tokens=64, seed=seed
    )
    right: Counter = Counter()
    for (name, inst, is_cls), text in zip(tasks, texts):
        pairs = prompts.parse_output_first(text) if is_cls else prompts.parse_input_first(text)
        if pairs:
            x, y = pairs[0]
            right[name] += expected_output(inst, x) == y
    out = {name: right[name] / per_family for name in families}
    out["all"] = sum(right.values()) / (per_family * len(families))
    return out


def measure(
    path: Path,
    seeds: list[int],
    records: int,
    temperatures: list[float],
    top_p: float,
    threads: int,
) -> dict[str, Any]:
    from datagen_gym.backends import TransformersBackend
    from datagen_gym.world.tasks import FAMILIES

    families = [f.name for f in FAMILIES]
    backend = TransformersBackend(path, num_threads=threads)
    n_params = sum(p.numel() for p in backend.model.parameters())
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "path": str(path),
        "parameters": n_params,
        "vocab": len(backend.tokenizer),
        "focus": focus_share(backend, families, seeds, records),
        "correctness": {},
        "instances": {},
    }
    for t in temperatures:
        result["correctness"][str(t)] = correctness(backend, families, seeds, records, t, top_p)
        result["instances"][str(t)] = instance_accuracy(backend, families, t, top_p)
    result["seconds"] = time.perf_counter() - t0
    return result


# ---------------------------------------------------------------------------- report
def _pct(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


def render(report: dict[str, Any]) -> str:
    labels = list(report["teachers"])
    teachers = report["teachers"]
    families = report["families"]
    temps = report["temperatures"]
    lines = [
        "# Teacher quality: does it follow its prompt, is its data right?",
        "",
        f"`{report['command']}`",
        "",
        f"{report['machine']}. Seeds {report['seeds']}, {report['records']} records per "
        f"generate call, top_p {report['top_p']}.",
        "",
    ]
    lines += ["| teacher | parameters | vocabulary | measured in |", "|---|---|---|---|"]
    for label in labels:
        t = teachers[label]
        lines.append(
            f"| {label} | {t['parameters'] / 1e6:.2f}M | {t['vocab']} | {t['seconds']:.0f} s |"
        )
    lines += [
        "",
        "## Focus: share of the focused family among the records",
        "",
        "`Generator.set_focus(family)`, template `self_instruct`, T=1.0, top_p 0.9, two "
        "rounds per seed. *without focus*: the family's share of the unfocused "
        "`self_instruct` records.",
        "",
    ]
    head = (
        "| family | "
        + " | ".join(f"{lb}: focused / records | {lb}: share" for lb in labels)
        + " | without focus (new) |"
    )
    lines += [head, "|---|" + "---|---|" * len(labels) + "---|"]
    for f in families + ["all"]:
        row = [f]
        for lb in labels:
            v = teachers[lb]["focus"][f]
            row += [f"{v['focused']} / {v['records']}", _pct(v["share"])]
        row.append(_pct(teachers[labels[-1]]["focus"][f]["share_without_focus"]))
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## Correctness per family (checker), Self-Instruct templates",
        "",
        "Records of `self_instruct`, `_classification`, `_text` and `_math`; correct / "
        "records. `unknown`: instructions no grammar knows (always wrong).",
        "",
    ]
    cols = [(lb, t) for lb in labels for t in temps]
    lines.append("| family | " + " | ".join(f"{lb} T={t}" for lb, t in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for f in families + ["unknown", "all"]:
        row = [f]
        for lb, t in cols:
            v = teachers[lb]["correctness"][str(t)][f]
            row.append(
                f"{v['correct']}/{v['records']} ({_pct(v['accuracy'])})" if v["records"] else "0/0"
            )
        lines.append("| " + " | ".join(row) + " |")
    row = ["unique instructions"]
    row += [
        _pct(teachers[lb]["correctness"][str(t)]["all"]["unique_instructions"]) for lb, t in cols
    ]
    lines.append("| " + " | ".join(row) + " |")
    row = ["distinct records"]
    row += [str(teachers[lb]["correctness"][str(t)]["all"]["distinct_records"]) for lb, t in cols]
    lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## Instance answers on valid tasks",
        "",
        "The instance prompt alone (input-first; output-first for classification) on 24 "
        "valid tasks per family (half with the input inline): share of exact first "
        "answers.",
        "",
    ]
    lines.append("| family | " + " | ".join(f"{lb} T={t}" for lb, t in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for f in families + ["all"]:
        lines.append(
            "| "
            + " | ".join([f] + [_pct(teachers[lb]["instances"][str(t)][f]) for lb, t in cols])
            + " |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--teacher",
        type=Path,
        default=None,
        help="teacher directory (default: the embedded teacher)",
    )
    parser.add_argument("--label", default="new", help="the teacher's name in the report")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--baseline-rev",
        default=None,
        help="also measure the embedded teacher committed at this git revision",
    )
    group.add_argument(
        "--baseline", type=Path, default=None, help="also measure this teacher directory"
    )
    parser.add_argument("--baseline-label", default="old")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--records", type=int, default=64)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.4, 1.0, 1.3])
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from datagen_gym.backends import EMBEDDED_TEACHER
    from datagen_gym.world.tasks import FAMILIES

    seeds = list(range(args.seeds))
    teachers: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline_rev:
            teachers[f"{args.baseline_label} ({args.baseline_rev})"] = teacher_at_revision(
                args.baseline_rev, Path(tmp) / "baseline"
            )
        elif args.baseline:
            teachers[args.baseline_label] = args.baseline
        teachers[args.label] = args.teacher or EMBEDDED_TEACHER
        results = {}
        for label, path in teachers.items():
            print(f"measuring {label} ({path})", flush=True)
            results[label] = measure(
                path, seeds, args.records, args.temperatures, args.top_p, args.threads
            )
    report = {
        "command": "python -m benchmarks.teacher_quality "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(args.threads),
        "seeds": seeds,
        "records": args.records,
        "temperatures": args.temperatures,
        "top_p": args.top_p,
        "families": [f.name for f in FAMILIES],
        "teachers": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "teacher_quality.json").write_text(json.dumps(report, indent=1))
    text = render(report)
    (args.out / "teacher_quality.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
