"""LLM backends behind the :class:`~datagen_gym.sampler.Sampler`."""

from __future__ import annotations

import importlib
import json
from functools import lru_cache
from pathlib import Path

from datagen_gym.backends.base import BackendError, LLMBackend
from datagen_gym.config import ConfigError, SamplingConfig

EMBEDDED_TEACHER = Path(__file__).resolve().parent.parent / "world" / "teacher"

# Backends load their heavy dependencies (torch, transformers, vllm) on first use only.
_LAZY = {
    "TransformersBackend": "datagen_gym.backends.transformers_backend",
    "OpenAIBackend": "datagen_gym.backends.openai_backend",
    "PartialBatchError": "datagen_gym.backends.openai_backend",
    "VLLMBackend": "datagen_gym.backends.vllm_backend",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'datagen_gym.backends' has no attribute {name!r}")


@lru_cache(maxsize=4)
def _cached_transformers(
    path: str,
    device: str,
    dtype,
    max_batch_size: int,
    num_threads: int | None,
    decoder: str,
    share_prefix: bool,
    prompt_format: str,
):
    from datagen_gym.backends.transformers_backend import TransformersBackend

    # Many envs in one process share one copy of the weights; generate() holds no state.
    return TransformersBackend(
        path,
        device=device,
        dtype=dtype,
        max_batch_size=max_batch_size,
        num_threads=num_threads,
        decoder=decoder,
        share_prefix=share_prefix,
        prompt_format=prompt_format,
    )


@lru_cache(maxsize=1)
def _cached_vllm(
    model: str,
    dtype: str,
    tensor_parallel_size: int,
    gpu_memory_utilization: float,
    max_model_len: int | None,
    extra_sampling: str = "{}",
):
    from datagen_gym.backends.vllm_backend import VLLMBackend

    # One engine per process: it pre-allocates most of the GPU, so envs in a process share it.
    return VLLMBackend(
        model,
        dtype=dtype,
        tensor_parallel_size=tensor_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization,
        max_model_len=max_model_len,
        extra_sampling=json.loads(extra_sampling),
    )


def make_backend(config: SamplingConfig) -> LLMBackend:
    """The backend a sampling config names."""
    if config.teacher is not None:
        return _teacher_preset(config)
    if config.backend == "embedded":
        return _local_transformers(config, str(EMBEDDED_TEACHER))
    if config.backend == "transformers":
        if not config.model_path:
            raise ConfigError(
                "sampling.model_path must name a local model directory when "
                "sampling.backend is 'transformers'"
            )
        return _local_transformers(config, config.model_path)
    if config.backend == "openai":
        if not config.base_url or not config.model:
            raise ConfigError(
                "sampling.base_url and sampling.model must be set when sampling.backend is 'openai'"
            )
        # Not cached: it holds no weights, and the key is read from the environment now.
        from datagen_gym.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(
            config.base_url,
            config.model,
            api_key_env=config.api_key_env,
            endpoint=config.endpoint,
            max_concurrency=config.max_concurrency,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            extra_body=config.extra_body,
        )
    if config.backend == "vllm":
        model = config.model or config.model_path
        if not model:
            raise ConfigError(
                "sampling.model (a hub id or local directory) must be set when "
                "sampling.backend is 'vllm'"
            )
        return _cached_vllm(
            model,
            config.dtype or "auto",
            config.tensor_parallel_size,
            config.gpu_memory_utilization,
            config.max_model_len,
            json.dumps(config.extra_body or {}, sort_keys=True),  # hashable, for the cache
        )
    raise ConfigError(f"sampling.backend={config.backend!r} is not supported")


def _local_transformers(
    config: SamplingConfig, model_path: str, num_threads: int | None = None
) -> LLMBackend:
    """The (cached) transformers backend on ``model_path`` with the config's device, dtype,
    batch, decoder and prompt-format settings (``num_threads``: the config's by default)."""
    return _cached_transformers(
        model_path,
        config.device,
        config.dtype,
        config.max_batch_size,
        config.num_threads if num_threads is None else num_threads,
        config.decoder,
        config.share_prefix,
        config.prompt_format,
    )


def _teacher_preset(config: SamplingConfig) -> LLMBackend:
    """The packaged model ``sampling.teacher`` names, on the transformers backend with the
    config's device, dtype, batch, thread, decoder and prompt-format settings."""
    if config.backend not in ("embedded", "transformers"):
        raise ConfigError(
            f"sampling.teacher={config.teacher!r} runs on the local transformers backend; "
            f"sampling.backend must be 'embedded' or 'transformers', got {config.backend!r}"
        )
    if config.model_path:
        raise ConfigError(
            f"sampling.teacher={config.teacher!r} and sampling.model_path both name the "
            "teacher model; set only one"
        )
    if config.teacher != "smollm2":
        raise ConfigError(f"sampling.teacher={config.teacher!r} is not supported")
    from datagen_gym.backends.smollm2 import gguf_path

    return _local_transformers(config, str(gguf_path()))


__all__ = [
    "BackendError",
    "LLMBackend",
    "TransformersBackend",
    "OpenAIBackend",
    "PartialBatchError",
    "make_backend",
    "EMBEDDED_TEACHER",
    "VLLMBackend",
]
