"""Who generated a cached batch, and in which world: the identity a replay cache must match.

* **teacher**: for a local model (the embedded teacher, ``backend: transformers``), a SHA-256 of
  its weight, config and tokenizer files plus the dtype; for a served model (OpenAI-compatible,
  vLLM by name) only its address and name can be hashed, so a server that swaps the weights
  behind the same name is not detected. A backend can define ``replay_identity() -> str`` to
  say itself what identifies it (test doubles do).
* **world**: a SHA-256 of the task world's code (``datagen_gym/world/tasks.py``), the human
  seed tasks themselves (the embedded ones or a ``seed_tasks_path`` file), the prompt formats
  (``datagen_gym/generators/prompts.py``), the generation settings that shape a batch (the
  ``generation`` config section, ``sampling.max_new_tokens``) and :data:`PIPELINE_VERSION`.
  The two source files count by what they do: their syntax tree without docstrings, comments,
  layout or type annotations (:func:`code_fingerprint`), so reformatting or documenting them
  keeps every cache valid while any change to code or prompt text does not.

Any change to these makes old caches refused rather than silently replayed.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

# Bump when the generators' behaviour changes in a way the hashed files do not show (the
# filters, the bootstrap / evol pipeline in self_instruct.py, evol_instruct.py, base.py).
# 2: a bootstrap continuation the token budget cut loses its last task on the completion path too.
# 3: the embedded teacher samples with the fused GPT-2 decoder (the same distribution, other
#    random numbers, so other records for a seed).
PIPELINE_VERSION = 3
#: 2: world sources hashed by :func:`code_fingerprint` (1: their raw bytes).
WORLD_HASH_SCHEME = 2
_PACKAGE = Path(__file__).resolve().parent.parent
WORLD_SOURCES = (_PACKAGE / "world" / "tasks.py", _PACKAGE / "generators" / "prompts.py")
# What a chat-format teacher is sent and how its replies are read (see teacher_identity).
CHAT_SOURCES = (
    _PACKAGE / "generators" / "parsing.py",
    _PACKAGE / "generators" / "chat_prompts.py",
)
# Files of a Hugging Face model directory that decide what it generates.
_MODEL_FILE_PATTERNS = (
    "*.safetensors",
    "*.bin",
    "config.json",
    "generation_config.json",
    "tokenizer*.json",
    "vocab.*",
    "merges.txt",
    "*.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)


@lru_cache(maxsize=8)
def _hash_model_dir(path: str, stamp: tuple) -> str:
    # ``stamp`` (names, sizes, mtimes) is part of the lru key, so an edited model is re-hashed.
    h = hashlib.sha256()
    for name, _size, _mtime in stamp:
        h.update(name.encode())
        with open(Path(path) / name, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def model_dir_hash(path: Path) -> str:
    """SHA-256 of the files of a model directory that decide its outputs, or of a single-file
    model (a ``.gguf`` holds the weights, the tokenizer and the chat template)."""
    path = Path(path)
    if path.is_file():
        stat = path.stat()
        return _hash_model_dir(str(path.parent), ((path.name, stat.st_size, stat.st_mtime_ns),))
    files = sorted(
        {p for pattern in _MODEL_FILE_PATTERNS for p in path.glob(pattern) if p.is_file()}
    )
    if not files:
        raise FileNotFoundError(
            f"{path}: no model files to hash (expected config.json, weights and tokenizer files)"
        )
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _hash_model_dir(str(path), stamp)


def teacher_identity(backend: Any) -> tuple[str, str]:
    """``(hash, description)`` of the backend a sampler calls."""
    if hasattr(backend, "replay_identity"):
        ident = str(backend.replay_identity())
        desc = f"{type(backend).__name__} {ident}"
    elif hasattr(backend, "model_path") and hasattr(backend, "model"):  # TransformersBackend
        dtype = str(getattr(backend.model, "dtype", ""))
        ident = f"hf:{model_dir_hash(backend.model_path)}:{dtype}"
        if getattr(backend, "prompt_format", "completion") == "chat":
            # The same weights generate other batches from chat-rendered prompts, the
            # instruct-model prompts and the chat-tolerant parsers, so the code of both is part
            # of the identity (completion models get no suffix and keep their caches' identity).
            h = hashlib.sha256()
            for source in CHAT_SOURCES:
                h.update(code_fingerprint(source))
            ident += ":chat:" + h.hexdigest()
        desc = f"{Path(backend.model_path).name} ({dtype})"
    elif hasattr(backend, "base_url") and hasattr(backend, "model"):  # OpenAIBackend
        ident = f"openai:{backend.base_url}:{backend.model}"
        desc = f"{backend.model} at {backend.base_url}"
    elif hasattr(backend, "model") and isinstance(backend.model, str):  # VLLMBackend
        local = Path(backend.model)
        ident = f"vllm:{model_dir_hash(local) if local.is_dir() else backend.model}"
        desc = f"vLLM {backend.model}"
    else:
        raise TypeError(
            f"cannot identify the teacher backend {type(backend).__name__} for a "
            "replay cache; give it a replay_identity() -> str method"
        )
    return hashlib.sha256(ident.encode()).hexdigest(), desc


def code_fingerprint(path: Path) -> bytes:
    """What a Python source file does, as bytes: its syntax tree with the docstrings, type
    annotations, comments and layout left out. Cached per file size and mtime: the teacher
    identity (which includes the chat parsers' fingerprint) is re-checked on replay misses."""
    stat = Path(path).stat()
    return _code_fingerprint(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _code_fingerprint(path: str, _size: int, _mtime_ns: int) -> bytes:
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            first = body[0].value if body and isinstance(body[0], ast.Expr) else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                node.body = body[1:] or [ast.Pass()]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
        elif isinstance(node, ast.arg):
            node.annotation = None
        elif isinstance(node, ast.AnnAssign):
            node.annotation = ast.Constant(None)
    return ast.dump(tree, include_attributes=False).encode()


def world_identity(
    seed_tasks: Sequence[dict[str, Any]], generation: dict[str, Any], max_new_tokens: int
) -> tuple[str, str]:
    """``(hash, description)`` of the world, seed tasks and batch-shaping settings."""
    h = hashlib.sha256(f"pipeline {PIPELINE_VERSION} scheme {WORLD_HASH_SCHEME}\n".encode())
    for source in WORLD_SOURCES:
        h.update(source.name.encode())
        h.update(code_fingerprint(source))
    shaping = {k: v for k, v in generation.items() if k != "seed_tasks_path"}
    h.update(
        json.dumps(
            {
                "seed_tasks": list(seed_tasks),
                "generation": shaping,
                "max_new_tokens": max_new_tokens,
            },
            sort_keys=True,
            default=str,
        ).encode()
    )
    return h.hexdigest(), (
        f"pipeline {PIPELINE_VERSION}, {len(seed_tasks)} seed tasks, "
        f"max_new_tokens {max_new_tokens}"
    )


def generator_identity(generator: Any) -> dict[str, str]:
    """The manifest identity of a live :class:`~datagen_gym.generators.generator.Generator`:
    ``teacher``, ``world`` and their descriptions."""
    teacher, teacher_desc = teacher_identity(generator.sampler.backend)
    # The prompt set in effect, not the prompt_style that chose it, and named only where it is
    # the instruct one: caches of the papers' prompts (every embedded-teacher cache) keep the
    # hash they had before the option existed.
    generation = {k: v for k, v in vars(generator.gen_config).items() if k != "prompt_style"}
    if generator.instruct_prompts:
        generation["prompts"] = "instruct"
    world, world_desc = world_identity(
        generator.pool.human, generation, generator.sampler.max_new_tokens
    )
    return {
        "teacher": teacher,
        "teacher_description": teacher_desc,
        "world": world,
        "world_description": world_desc,
    }
