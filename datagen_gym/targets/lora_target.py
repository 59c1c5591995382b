"""A causal LM fine-tuned with LoRA as the target model: the generated data trains a real LM.

    target = LoRATarget(make_tiny_student(), make_generative_validation_set("uppercase", 50))
    target(records)  # -> {"exact_match", "accuracy", "val_loss", "token_accuracy", ...}

Every call starts from the same base weights and the same adapter initialisation (a fresh LoRA
adapter is injected, trained on the records, evaluated and removed), so one env step's call
does not depend on earlier steps and the same records and ``seed`` give the same metrics. On a
CPU it runs on a ~1M-parameter GPT-2 student (:func:`make_tiny_student`); on a GPU it takes any
Hugging Face causal-LM directory or hub id (``device="cuda"`` or ``device_map="auto"``, and a
``dtype``).

:func:`datagen_gym.envs.lm_env.make_lm_env` builds ``DataGen-LM-v0``: ``DataGenEnv`` with this
target on a generative task.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datagen_gym.atomic_io import create_temp_dir, honour_umask
from datagen_gym.targets.builtin_tasks import (
    SPLITS,
    TEST_SEED,
    VALIDATION_SEED,
    split_of,
    task_skills,
)
from datagen_gym.world.tasks import FAMILIES, FAMILY_BY_NAME

GENERATIVE_TASKS = tuple(f.name for f in FAMILIES if not f.is_classification)
ALL_GENERATIVE = "generative"

# An Alpaca-style instruction-tuning format; only the response is trained on.
PROMPT_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
PROMPT_NO_INPUT = "### Instruction:\n{instruction}\n\n### Response:\n"
IGNORE_INDEX = -100  # label value the cross-entropy skips (prompt and padding tokens)

PEFT_HINT = 'LoRATarget needs peft: pip install peft (or pip install "datagen-gym[lora]")'


def format_prompt(record: Mapping[str, Any]) -> str:
    """The prompt a record is trained and evaluated with: instruction, input if any, then
    the response header."""
    x = str(record.get("input") or "").strip()
    inst = str(record["instruction"]).strip()
    return (
        PROMPT_WITH_INPUT.format(instruction=inst, input=x)
        if x
        else PROMPT_NO_INPUT.format(instruction=inst)
    )


# ---------------------------------------------------------------------------- data
def make_generative_validation_set(
    task: str,
    n: int = 50,
    seed: int = VALIDATION_SEED,
    p_hard: float = 0.3,
    split: str = "validation",
) -> list[dict[str, Any]]:
    """``n`` records per skill of a generative task (``uppercase``, ``reverse``, ``addition``...,
    several joined by ``+``, or ``"generative"`` for all six) with their exact gold outputs and
    their ``skill``, in the env's record format.

    ``p_hard`` is the share of hard inputs (longer sentences, larger numbers, longer lists).
    ``split="test"`` draws from the other half of the input space, as the classification tasks
    do (:mod:`datagen_gym.targets.builtin_tasks`); :func:`make_generative_test_set` uses it.
    """
    skills = task_skills(task, GENERATIVE_TASKS, ALL_GENERATIVE)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rows = []
    for skill in skills:
        family = FAMILY_BY_NAME[skill]
        rng = np.random.default_rng([seed, GENERATIVE_TASKS.index(skill), 1])
        drawn = 0
        while drawn < n:
            x, y = family.sample_example(rng, hard=bool(rng.random() < p_hard))
            if split_of(x) == split:
                rows.append(
                    {
                        "instruction": family.sample_instruction(rng),
                        "input": x,
                        "output": y,
                        "skill": skill,
                    }
                )
                drawn += 1
    return rows


def make_generative_test_set(
    task: str, n: int = 50, seed: int = TEST_SEED, p_hard: float = 0.3
) -> list[dict[str, Any]]:
    """The test split of a generative task: no input shared with the validation split."""
    return make_generative_validation_set(task, n, seed, p_hard, split="test")


# ---------------------------------------------------------------------------- student
def _cache_dir() -> Path:
    return Path(os.environ.get("DATAGEN_GYM_CACHE", Path.home() / ".cache" / "datagen_gym"))


def _teacher_dir() -> Path:
    from datagen_gym.backends import EMBEDDED_TEACHER

    return EMBEDDED_TEACHER


def _teacher_fingerprint() -> str:
    weights = _teacher_dir() / "model.safetensors"
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:12]


def default_student_path(init: str = "teacher", seed: int = 0) -> Path:
    """Where ``make_lm_env`` keeps its tiny student (``$DATAGEN_GYM_CACHE``, else
    ``~/.cache/datagen_gym``); a teacher-initialised student is keyed by the teacher's weights,
    so a retrained teacher gets a fresh student."""
    tag = f"teacher-{_teacher_fingerprint()}" if init == "teacher" else f"random-s{seed}"
    return _cache_dir() / f"tiny_student-{tag}"


def make_tiny_student(
    path: str | Path | None = None, init: str = "teacher", seed: int = 0, overwrite: bool = False
) -> Path:
    """Save a tiny GPT-2 student (the embedded teacher's architecture, ~1M parameters) and
    return its directory.

    Args:
        path: where to save; ``None`` uses :func:`default_student_path`. An existing student
            there is reused unless ``overwrite``.
        init: ``"teacher"``: a copy of the embedded teacher's weights and tokenizer (it already
            knows the task families' text, so LoRA can teach it the instruction format and the
            task within one call); ``"random"``: the same architecture and tokenizer with
            freshly initialised weights (seeded; learns the format, rarely an exact answer).
            Without the teacher (``datagen_gym/world/teacher``), ``"random"`` trains a small
            byte-level BPE tokenizer on the world's corpus instead of copying the teacher's.
        seed: weight initialisation (and tokenizer corpus) seed for ``init="random"``.
    """
    if init not in ("teacher", "random"):
        raise ValueError(f"init must be 'teacher' or 'random', got {init!r}")
    teacher = _teacher_dir()
    has_teacher = (teacher / "config.json").is_file() and (teacher / "model.safetensors").is_file()
    if init == "teacher" and not has_teacher:
        raise FileNotFoundError(
            f"the embedded teacher is missing at {teacher} (config.json and "
            "model.safetensors); train it with `python -m "
            "datagen_gym.world.train_teacher` or use init='random'"
        )
    path = Path(path) if path is not None else default_student_path(init, seed)
    if (path / "config.json").is_file() and not overwrite:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # Build in a temporary sibling and rename: concurrent env workers never see half a model.
    # Not mkdtemp: it makes the directory private; a model cache is ordinary data (umask).
    tmp = create_temp_dir(path.parent, path.name)
    try:
        if init == "teacher":
            for f in teacher.iterdir():
                if f.is_file():
                    shutil.copy2(f, tmp / f.name)
        else:
            _save_random_student(tmp, seed, teacher if has_teacher else None)
        honour_umask(tmp)
        if overwrite and path.exists():
            shutil.rmtree(path)
        try:
            os.replace(tmp, path)
        except OSError:  # another process finished first; its student is the same
            if not (path / "config.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _save_random_student(out: Path, seed: int, teacher: Path | None) -> None:
    from transformers import AutoTokenizer

    from datagen_gym.world.corpus import EOS, iter_documents
    from datagen_gym.world.train_teacher import make_model, train_tokenizer

    if teacher is not None:
        tokenizer = AutoTokenizer.from_pretrained(teacher, local_files_only=True)
    else:
        docs = iter_documents(seed)
        tokenizer = train_tokenizer([next(docs) for _ in range(3000)], vocab_size=1024)
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    with _rng_fork(seed):
        model = make_model(len(tokenizer), eos_id, n_positions=512)
    model.generation_config.pad_token_id = eos_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


@contextlib.contextmanager
def _rng_fork(seed: int) -> Iterator[None]:
    """Seed torch's global RNG inside the block, then restore the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------- target
class LoRATarget:
    """LoRA-fine-tune a causal LM on ``data`` and score it on the validation (and test) set:
    ``target(data) -> {"exact_match", "accuracy", "val_loss", "token_accuracy", "train_loss",
    "num_train", "time_s", "skill/<name>"..., "test/..."}``.

    Each record becomes ``format_prompt(record) + output + EOS``; the loss covers only the
    output tokens and the EOS. ``exact_match`` (= ``accuracy``, the env's default reward
    metric) is the share of validation records whose greedy generation, stripped, equals the
    gold output; ``val_loss`` is the mean cross-entropy per gold output token (+ EOS);
    ``token_accuracy`` the share of those tokens the model ranks first given the gold prefix.
    When the scored records carry a ``skill``, these three are means over skills (every skill
    weighs the same) and ``skill/<name>`` reports ``skill_metric`` on each skill. The test set,
    when given, is scored the same way under ``test/`` keys (the env reports it, never rewards
    it).

    Args:
        base_model_path: a Hugging Face causal-LM directory (or hub id when not offline).
        validation_dataset: records with ``instruction``, ``input``, the gold ``output`` and
            optionally ``skill``.
        test_dataset: the same for the held-out test split (None: no test metrics).
        skill_metric: the metric ``skill/<name>`` reports (``"token_accuracy"``,
            ``"exact_match"`` or ``"val_loss"``).
        lora_r, lora_alpha, lora_dropout: the adapter's rank, scale and dropout.
        target_modules: modules to adapt; ``None``: ``["c_attn"]`` for GPT-2, otherwise
            peft's default for the architecture.
        epochs, learning_rate, batch_size: the optimisation (AdamW on the adapter only).
        max_length: tokens per training example (the prompt is cut from the left first).
        device: ``"cpu"``, ``"cuda"``... (ignored when ``device_map`` is given).
        dtype: ``"float32"``, ``"float16"``, ``"bfloat16"`` or None (the checkpoint's).
        device_map: passed to ``from_pretrained`` (e.g. ``"auto"`` for a large model).
        seed: adapter initialisation, data order and dropout; same data + seed = same metrics
            on a given machine.
        max_new_tokens: generation cap at evaluation (also capped at the longest gold output
            plus one token, which saves time on short answers).
        eval_batch_size: validation records per forward / generate call.
        num_threads: torch CPU threads during a call (restored afterwards); None keeps torch's.

    The model loads on first call, and pickling drops it (it reloads in the new process), so
    the target can be passed to subprocess or Ray workers.
    """

    def __init__(
        self,
        base_model_path: str | Path,
        validation_dataset: Sequence[Mapping[str, Any]],
        test_dataset: Sequence[Mapping[str, Any]] | None = None,
        skill_metric: str = "token_accuracy",
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.0,
        target_modules: Sequence[str] | None = None,
        epochs: int = 1,
        learning_rate: float = 1e-2,
        batch_size: int = 8,
        max_length: int = 128,
        device: str = "cpu",
        dtype: str | None = None,
        device_map: str | dict | None = None,
        seed: int = 0,
        max_new_tokens: int = 48,
        eval_batch_size: int = 64,
        num_threads: int | None = None,
    ) -> None:
        try:
            import peft  # noqa: F401
        except ImportError as exc:
            raise ImportError(f"{PEFT_HINT} ({exc})") from exc
        if not validation_dataset:
            raise ValueError("validation_dataset is empty; the target needs records to score")
        self.validation = _check_records(validation_dataset, "validation_dataset")
        self.test = _check_records(test_dataset, "test_dataset") if test_dataset else []
        if skill_metric not in ("token_accuracy", "exact_match", "val_loss"):
            raise ValueError(
                f"skill_metric must be token_accuracy, exact_match or val_loss, "
                f"got {skill_metric!r}"
            )
        self.skill_metric = skill_metric
        local = Path(base_model_path)
        if local.exists() and not (local / "config.json").is_file():
            raise FileNotFoundError(
                f"no Hugging Face model at {local} (expected config.json, "
                "weights and tokenizer files); make one with "
                "make_tiny_student(path)"
            )
        for name, value in (
            ("lora_r", lora_r),
            ("epochs", epochs),
            ("batch_size", batch_size),
            ("max_length", max_length),
            ("max_new_tokens", max_new_tokens),
            ("eval_batch_size", eval_batch_size),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        if dtype not in (None, "float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be float32, float16, bfloat16 or None, got {dtype!r}")
        self.base_model_path = str(base_model_path)
        self.lora_r, self.lora_alpha, self.lora_dropout = lora_r, lora_alpha, lora_dropout
        self.target_modules = list(target_modules) if target_modules else None
        self.epochs, self.learning_rate, self.batch_size = epochs, learning_rate, batch_size
        self.max_length, self.max_new_tokens = max_length, max_new_tokens
        self.eval_batch_size = eval_batch_size
        self.device, self.dtype, self.device_map = device, dtype, device_map
        self.seed, self.num_threads = seed, num_threads
        self._model = None
        self._tokenizer = None
        self.last_trainable_names: list[str] = []  # parameters the last call trained

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = state["_tokenizer"] = None  # reloaded from base_model_path
        state.pop("_val_cache", None)
        state.pop("_test_cache", None)
        return state

    # ------------------------------------------------------------------ loading
    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        local = Path(self.base_model_path).exists()
        kwargs: dict[str, Any] = {"local_files_only": True} if local else {}
        tok = AutoTokenizer.from_pretrained(self.base_model_path, **kwargs)
        if tok.eos_token_id is None:
            raise ValueError(
                f"the tokenizer of {self.base_model_path} has no EOS token; the "
                "target needs one to end answers"
            )
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        model_kwargs = dict(kwargs)
        if self.dtype is not None:
            model_kwargs["dtype"] = getattr(torch, self.dtype)
        if self.device_map is not None:
            model_kwargs["device_map"] = self.device_map
        model = AutoModelForCausalLM.from_pretrained(self.base_model_path, **model_kwargs)
        if self.device_map is None:
            model.to(self.device)
        model.eval()
        for p in model.parameters():  # the base never trains; only adapters get gradients
            p.requires_grad_(False)
        self._model, self._tokenizer = model, tok
        self._val_cache = self._encode(self.validation)
        self._test_cache = self._encode(self.test)

    @property
    def model(self):
        """The base model (loaded on first use; never modified by a call)."""
        self._load()
        return self._model

    @property
    def tokenizer(self):
        self._load()
        return self._tokenizer

    def _lora_config(self):
        from peft import LoraConfig, TaskType

        model_type = getattr(self._model.config, "model_type", "")
        modules = self.target_modules
        if modules is None and model_type == "gpt2":
            modules = ["c_attn"]
        return LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=modules,
            # GPT-2's c_attn / c_proj / c_fc are Conv1D (weights transposed).
            fan_in_fan_out=model_type == "gpt2"
            and modules is not None
            and set(modules) <= {"c_attn", "c_proj", "c_fc"},
        )

    # ------------------------------------------------------------------ encoding
    def _encode(self, records: Sequence[Mapping[str, Any]]) -> list[tuple[list[int], list[int]]]:
        """(prompt ids, answer ids + EOS) per record, cut to ``max_length``."""
        tok = self._tokenizer
        out = []
        for r in records:
            p = tok(format_prompt(r), add_special_tokens=False)["input_ids"]
            a = tok(str(r["output"]).strip(), add_special_tokens=False)["input_ids"]
            a = a[: max(1, self.max_length // 2) - 1] + [tok.eos_token_id]
            keep = self.max_length - len(a)
            p = p[-keep:] if keep > 0 else []  # keep the end: the response header
            out.append((p, a))
        return out

    def _pad_train(
        self, pairs: Sequence[tuple[list[int], list[int]]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded input ids, attention mask and labels (prompt and padding ignored)."""
        n = max(len(p) + len(a) for p, a in pairs)
        pad = self._tokenizer.pad_token_id
        ids = torch.full((len(pairs), n), pad, dtype=torch.long)
        mask = torch.zeros((len(pairs), n), dtype=torch.long)
        labels = torch.full((len(pairs), n), IGNORE_INDEX, dtype=torch.long)
        for i, (p, a) in enumerate(pairs):
            seq = p + a
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
            labels[i, len(p) : len(seq)] = torch.tensor(a)
        dev = self._input_device()
        return ids.to(dev), mask.to(dev), labels.to(dev)

    def _input_device(self) -> torch.device:
        return next(self._model.parameters()).device

    # ------------------------------------------------------------------ call
    def __call__(self, data: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        """Fine-tune a fresh adapter on ``data`` and return the validation metrics."""
        records = _check_records(data, "data")
        self._load()
        from peft import get_peft_model

        t0 = time.perf_counter()
        with _threads(self.num_threads), _rng_fork(self.seed):
            # Same seed, same adapter init, same data order: a call depends on its data only.
            with warnings.catch_warnings():
                # peft probes a deprecated transformers attribute; nothing for users to act on.
                warnings.simplefilter("ignore", FutureWarning)
                peft_model = get_peft_model(self._model, self._lora_config())
            self.last_trainable_names = [
                n for n, p in peft_model.named_parameters() if p.requires_grad
            ]
            try:
                train_loss = self._train(peft_model, self._encode(records))
                metrics = self._score_splits(peft_model)
            finally:
                # Remove the adapter: the base weights are back as they were for the next call.
                self._model = peft_model.unload()
                self._model.__dict__.pop("peft_config", None)
                self._model.eval()
        return {
            **metrics,
            "train_loss": train_loss,
            "num_train": float(len(records)),
            "time_s": time.perf_counter() - t0,
        }

    def evaluate_base(self) -> dict[str, float]:
        """The metrics of the base model without any fine-tuning (the untrained reference)."""
        self._load()
        with _threads(self.num_threads):
            return self._score_splits(self._model)

    def _score_splits(self, model) -> dict[str, float]:
        out = self._aggregate(
            self.validation, self._evaluate(model, self._val_cache, self.validation)
        )
        if self.test:
            scores = self._evaluate(model, self._test_cache, self.test)
            out.update({f"test/{k}": v for k, v in self._aggregate(self.test, scores).items()})
        return out

    def _aggregate(self, records: list[dict[str, Any]], per_record: np.ndarray) -> dict[str, float]:
        """Headline and per-skill metrics from per-record (loss sum, tokens, right, hit)."""

        def metrics(rows: np.ndarray) -> dict[str, float]:
            loss, tokens, right, hits = rows.sum(axis=0)
            return {
                "val_loss": loss / max(tokens, 1),
                "token_accuracy": right / max(tokens, 1),
                "exact_match": hits / len(rows),
            }

        skills = list(dict.fromkeys(r["skill"] for r in records if r.get("skill")))
        if not skills:
            head = metrics(per_record)
            return {**head, "accuracy": head["exact_match"]}
        tags = np.array([r.get("skill") or "" for r in records])
        by_skill = {s: metrics(per_record[tags == s]) for s in skills}
        head = {
            k: float(np.mean([m[k] for m in by_skill.values()]))
            for k in ("val_loss", "token_accuracy", "exact_match")
        }
        return {
            **head,
            "accuracy": head["exact_match"],
            **{f"skill/{s}": m[self.skill_metric] for s, m in by_skill.items()},
        }

    def _train(self, model, pairs: list[tuple[list[int], list[int]]]) -> float:
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=0.0)
        gen = torch.Generator().manual_seed(self.seed)
        model.train()
        losses = []
        for _ in range(self.epochs):
            order = torch.randperm(len(pairs), generator=gen).tolist()
            for start in range(0, len(order), self.batch_size):
                ids, mask, labels = self._pad_train(
                    [pairs[i] for i in order[start : start + self.batch_size]]
                )
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                losses.append(float(loss.detach()))
        model.eval()
        return float(np.mean(losses)) if losses else math.nan

    @torch.no_grad()
    def _evaluate(
        self, model, pairs: list[tuple[list[int], list[int]]], records: list[dict[str, Any]]
    ) -> np.ndarray:
        """Per record: the summed loss over its gold output tokens, their number, how many the
        model ranks first given the gold prefix (teacher forcing), and whether its greedy
        generation equals the gold output (1/0)."""
        tok = self._tokenizer
        out_rows = np.zeros((len(pairs), 4))
        longest = max(len(a) for _, a in pairs)  # answer tokens incl. EOS
        max_new = min(self.max_new_tokens, longest + 1)
        dev = self._input_device()
        for start in range(0, len(pairs), self.eval_batch_size):
            chunk = pairs[start : start + self.eval_batch_size]
            ids, mask, labels = self._pad_train(chunk)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                target.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="none",
            ).view(target.shape)
            scored = target != IGNORE_INDEX
            rows = out_rows[start : start + len(chunk)]
            rows[:, 0] = (loss * scored).sum(dim=1).cpu().numpy()
            rows[:, 1] = scored.sum(dim=1).cpu().numpy()
            rows[:, 2] = ((logits.argmax(-1) == target) & scored).sum(dim=1).cpu().numpy()

            # Greedy answers from left-padded prompts (decoder-only models continue on the right).
            n = max(len(p) for p, _ in chunk)
            p_ids = torch.full((len(chunk), n), tok.pad_token_id, dtype=torch.long)
            p_mask = torch.zeros((len(chunk), n), dtype=torch.long)
            for i, (p, _) in enumerate(chunk):
                p_ids[i, n - len(p) :] = torch.tensor(p)
                p_mask[i, n - len(p) :] = 1
            out = model.generate(
                input_ids=p_ids.to(dev),
                attention_mask=p_mask.to(dev),
                max_new_tokens=max_new,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            texts = tok.batch_decode(out[:, n:], skip_special_tokens=True)
            for i, (text, r) in enumerate(zip(texts, records[start : start + len(chunk)])):
                rows[i, 3] = text.strip() == str(r["output"]).strip()
        return out_rows

    def __repr__(self) -> str:
        return (
            f"LoRATarget({self.base_model_path!r}, n_validation={len(self.validation)}, "
            f"r={self.lora_r}, epochs={self.epochs}, lr={self.learning_rate})"
        )


def _check_records(data: Any, what: str) -> list[dict[str, Any]]:
    if data is None or isinstance(data, (str, bytes, Mapping)):
        raise TypeError(
            f"{what} must be a list of records (dicts with 'instruction', 'input' "
            f"and 'output'), got {type(data).__name__}"
        )
    records = list(data)
    if not records:
        raise ValueError(
            f"{what} is empty: LoRATarget needs at least one record with "
            "'instruction' and 'output' to fine-tune on"
        )
    out = []
    for i, r in enumerate(records):
        if not isinstance(r, Mapping):
            raise TypeError(f"{what}[{i}] is a {type(r).__name__}, not a dict record")
        for key in ("instruction", "output"):
            if not isinstance(r.get(key), str):
                raise ValueError(f"{what}[{i}] needs a string {key!r}; got keys {sorted(r)}")
        record = {
            "instruction": r["instruction"],
            "input": str(r.get("input") or ""),
            "output": r["output"],
        }
        if isinstance(r.get("skill"), str) and r["skill"]:
            record["skill"] = r["skill"]
        out.append(record)
    return out


__all__ = [
    "LoRATarget",
    "make_tiny_student",
    "make_generative_validation_set",
    "make_generative_test_set",
    "format_prompt",
    "default_student_path",
    "GENERATIVE_TASKS",
]
