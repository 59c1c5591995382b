"""A backend over vLLM's offline engine (``vllm.LLM``): high-throughput sampling on CUDA GPUs.

    backend = VLLMBackend("meta-llama/Llama-3.1-8B-Instruct", dtype="bfloat16")
    backend.generate(prompts, temperature=0.8, top_p=0.95, max_new_tokens=256, seed=0)

vLLM is an optional dependency (``pip install "datagen-gym[vllm]"``) and needs a CUDA GPU;
nothing is imported until a :class:`VLLMBackend` is built, so ``import datagen_gym`` never pays
for it. To use a vLLM *server* instead (``vllm serve ...``), the OpenAI-compatible backend
(``sampling.backend: openai``) needs no GPU in the env's process at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datagen_gym.backends.base import BackendError, Completion

INSTALL_HINT = (
    'vLLM is not installed: pip install "datagen-gym[vllm]" (or pip install vllm); '
    "it needs Linux and a CUDA GPU. Without a GPU in this process, serve the model "
    "with `vllm serve MODEL` elsewhere and use sampling.backend='openai' with "
    "base_url=http://HOST:8000/v1."
)


class VLLMNotInstalledError(ImportError, BackendError):
    """vLLM cannot be imported; the message says how to install it (it needs a CUDA GPU).

    Both an :class:`ImportError` (what it is) and a :class:`BackendError` (what callers of a
    backend catch).
    """


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise VLLMNotInstalledError(f"{INSTALL_HINT} (import failed: {exc})") from exc
    return vllm


class VLLMBackend:
    """Batched sampling with ``vllm.LLM.generate``; completions come back in prompt order.

    Args:
        model: a Hugging Face model id or a local model directory.
        dtype: ``"auto"`` (the checkpoint's), ``"bfloat16"``, ``"float16"``, ``"float32"``.
        tensor_parallel_size: GPUs to shard the model over.
        gpu_memory_utilization: share of GPU memory vLLM may take (weights + KV cache).
        max_model_len: context length cap (lower it to fit a long-context model's KV cache).
        extra_sampling: more ``SamplingParams`` fields for every request (``sampling.extra_body``).
        **llm_kwargs: passed on to ``vllm.LLM`` (``quantization``, ``enforce_eager``,
            ``download_dir``, ``trust_remote_code``...).

    ``temperature == 0`` decodes greedily. With a ``seed``, prompt ``i`` is sampled with seed
    ``seed + i`` (one seed for all would make identical prompts give identical completions).
    ``deterministic`` is False: vLLM's continuous batching can change the batch a request
    shares, and with it the floating-point results, so runs are not bit-reproducible.
    """

    deterministic = False
    accepts_stop = True

    def __init__(
        self,
        model: str,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        extra_sampling: dict[str, Any] | None = None,
        **llm_kwargs: Any,
    ) -> None:
        vllm = _import_vllm()
        if not 0.0 < gpu_memory_utilization <= 1.0:
            raise ValueError(
                f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}"
            )
        if tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
        self._SamplingParams = vllm.SamplingParams
        # sampling.extra_body: more SamplingParams fields (top_k, min_p, repetition_penalty...)
        self.extra_sampling = dict(extra_sampling or {})
        kwargs = dict(
            model=model,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            **llm_kwargs,
        )
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        try:
            self.llm = vllm.LLM(**kwargs)
        except Exception as exc:  # CUDA missing, out of memory, unknown model...
            raise BackendError(
                f"vllm.LLM could not load {model!r}: {type(exc).__name__}: {exc}"
            ) from exc
        self.model = model

    def generate(
        self,
        prompts: Sequence[str],
        *,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        """One completion per prompt (the continuation only), in prompt order; ``stop``:
        strings the engine stops at (not included in the text)."""
        prompts = list(prompts)
        if not prompts:
            return []
        greedy = temperature <= 0
        base = dict(
            **self.extra_sampling,
            temperature=0.0 if greedy else float(temperature),
            top_p=1.0 if greedy else float(top_p),
            max_tokens=int(max_new_tokens),
        )
        if stop:
            base["stop"] = list(stop)
        if seed is None:
            params: Any = self._SamplingParams(**base)
        else:
            params = [self._SamplingParams(**base, seed=int(seed) + i) for i in range(len(prompts))]
        try:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        except Exception as exc:
            raise BackendError(
                f"vllm generate failed on {self.model!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if len(outputs) != len(prompts):
            raise BackendError(f"vllm returned {len(outputs)} results for {len(prompts)} prompts")
        # LLM.generate returns results in input order; each has n=1 completion.
        # CompletionOutput.finish_reason: "stop" (EOS or a stop string) or "length"
        return [
            Completion(out.outputs[0].text, getattr(out.outputs[0], "finish_reason", None))
            if out.outputs
            else Completion("")
            for out in outputs
        ]

    def __repr__(self) -> str:
        return f"VLLMBackend(model={self.model!r})"


__all__ = ["VLLMBackend", "VLLMNotInstalledError", "INSTALL_HINT"]
