"""A backend over a local Hugging Face causal LM: a model directory (the embedded teacher
included) or a single GGUF file."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from datagen_gym.backends import EMBEDDED_TEACHER, compact_decoding, fused_gpt2
from datagen_gym.backends.base import BackendError, Completion

DECODERS = ("fused", "compact", "generate")
PROMPT_FORMATS = ("auto", "completion", "chat")

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet_loading(quiet: bool) -> Iterator[None]:
    """Hide transformers' "Loading weights" bar for the embedded teacher: it loads in well under
    a second on every env / tuner construction, so in library use (``gym.make``) the bar is
    noise on the user's terminal. Large user models keep the bar (their loading takes long).
    The global setting is restored afterwards."""
    from transformers.utils import logging as hf_logging

    if not quiet or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


class TransformersBackend:
    """Batched, KV-cached sampling from a Hugging Face causal LM.

    Args:
        model_path: a local model directory (weights + tokenizer), or a ``.gguf`` file (model
            and tokenizer in one file, dequantised on loading; needs the ``gguf`` package);
            nothing is downloaded.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ignored when ``device_map`` is given.
        dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"`` (default: the checkpoint's).
        device_map: passed to ``from_pretrained`` (e.g. ``"auto"`` to spread a large model).
        max_batch_size: prompts per ``generate`` call; larger requests are split.
        num_threads: torch CPU threads while generating (restored afterwards); ``None`` keeps
            torch's setting (a vector env's workers set 1 each, so they do not share cores).
        decoder: ``"fused"`` (default) samples GPT-2 models on the CPU (the embedded teacher)
            with :func:`fused_gpt2.sample`, a hand-fused forward pass and sampler that draws
            from the same distribution as ``model.generate`` but not the same random
            numbers; ``"compact"`` samples with :func:`compact_decoding.sample`, which returns
            the tokens ``model.generate`` returns for the same seed but stops computing rows
            that have finished; ``"generate"`` calls ``model.generate``. A model a decoder
            does not serve falls back to the next one, with the reason logged (``fused``:
            not GPT-2 or not on the CPU; ``compact``: windowed attention, a generation config
            with a repetition penalty, ...: ``compact_decoding.unsupported_reason``).
        share_prefix: with the fused or compact decoder, compute the prompt prefix that all
            prompts of a batch share (the few-shot header of Evol-Instruct and classification
            prompts) once instead of once per row. Off, the compact decoder returns exactly
            ``model.generate``'s tokens; on, its logits differ by float rounding only.
        prompt_format: ``"completion"`` feeds each prompt to the model as raw text to
            continue; ``"chat"`` renders it as one user turn with the tokenizer's chat
            template, ending in the assistant's header, which is what an instruct model was
            trained to answer; ``"auto"`` (default) is chat when the tokenizer has a chat
            template and the model is not the embedded teacher (trained on the raw prompt
            formats), else completion.

    Temperature 0 decodes greedily; otherwise it samples with the given temperature and top_p.
    Runs are repeatable for a given ``seed`` on the same machine and thread count.
    """

    deterministic = True

    def __init__(
        self,
        model_path: str | Path = EMBEDDED_TEACHER,
        device: str = "cpu",
        dtype: str | None = None,
        device_map: str | None = None,
        max_batch_size: int = 128,
        num_threads: int | None = None,
        decoder: str = "fused",
        share_prefix: bool = True,
        prompt_format: str = "auto",
    ) -> None:
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(
                f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}"
            )
        path = Path(model_path)
        source, files = path, {}
        if path.suffix == ".gguf":
            if not path.is_file():
                raise BackendError(f"no GGUF model file at {path}")
            if importlib.util.find_spec("gguf") is None:
                raise BackendError(f"loading {path.name} needs the gguf package: pip install gguf")
            # from_pretrained reads a GGUF file by name from its folder.
            source, files = path.parent, {"gguf_file": path.name}
        elif not (path / "config.json").is_file():
            raise BackendError(
                f"no Hugging Face model at {path} (expected config.json, "
                "weights and tokenizer files in that directory, or a .gguf file)"
            )
        kwargs = {"local_files_only": True, **files}
        if dtype is not None:
            kwargs["dtype"] = getattr(torch, dtype)
        if device_map is not None:
            kwargs["device_map"] = device_map
        self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True, **files)
        self.tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
        self.tokenizer.truncation_side = "left"  # an over-long prompt keeps the end it continues
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        with _quiet_loading(path == EMBEDDED_TEACHER):
            self.model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        if device_map is None:
            self.model.to(device)
        self.model.eval()
        self.model_path = path
        self.max_batch_size = max_batch_size
        self.num_threads = num_threads
        self.decoder = decoder
        self._fused: fused_gpt2.FusedGPT2 | None = None
        if decoder == "fused":
            reason = fused_gpt2.unsupported_reason(self.model)
            if reason is None and self.device.type != "cpu":
                reason = f"it runs on {self.device.type}"
            if reason:
                logger.info(
                    "%s: decoding with the compact decoder, not the fused one: %s", path, reason
                )
                self.decoder = "compact"
            else:
                self._fused = fused_gpt2.FusedGPT2(self.model)
        reason = (
            compact_decoding.unsupported_reason(self.model) if self.decoder == "compact" else None
        )
        if reason:
            logger.info(
                "%s: decoding with model.generate, not the compact decoder: %s", path, reason
            )
            self.decoder = "generate"
        self.share_prefix = share_prefix
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if prompt_format == "auto":
            prompt_format = "chat" if has_template and path != EMBEDDED_TEACHER else "completion"
        elif prompt_format == "chat" and not has_template:
            raise BackendError(
                f"prompt_format='chat' needs a chat template; the tokenizer of {path} has none"
            )
        self.prompt_format = prompt_format

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[str],
        *,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int | None = None,
    ) -> list[str]:
        if not prompts:
            return []
        if seed is not None:
            torch.manual_seed(seed)
        threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            # Similar lengths in one batch waste less compute on padding.
            order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
            out: list[str] = [""] * len(prompts)
            for start in range(0, len(order), self.max_batch_size):
                idx = order[start : start + self.max_batch_size]
                texts = self._generate_batch(
                    [prompts[i] for i in idx], temperature, top_p, max_new_tokens
                )
                for i, text in zip(idx, texts):
                    out[i] = text
            return out
        finally:
            torch.set_num_threads(threads)

    def render(self, prompts: Sequence[str]) -> list[str]:
        """The text the model reads for each prompt: the prompt itself (completion format), or
        one user turn and the assistant's header in the tokenizer's chat template (chat)."""
        if self.prompt_format == "completion":
            return list(prompts)
        return [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
            for prompt in prompts
        ]

    def _generate_batch(
        self, prompts: list[str], temperature: float, top_p: float, max_new_tokens: int
    ) -> list[str]:
        # A prompt longer than the context leaves no room to generate: keep its end, which
        # is what the model continues from.
        limit = getattr(self.model.config, "max_position_embeddings", None)
        trunc = {}
        if limit:
            max_new_tokens = min(max_new_tokens, limit // 2)
            trunc = {"truncation": True, "max_length": limit - max_new_tokens}
        # A rendered chat prompt holds its special tokens already: adding a BOS again would
        # give the model a prompt it never saw in training.
        special = self.prompt_format == "completion"
        enc = self.tokenizer(
            self.render(prompts),
            return_tensors="pt",
            padding=True,
            add_special_tokens=special,
            **trunc,
        ).to(self.device)
        try:
            if self.decoder in ("fused", "compact"):
                sample = fused_gpt2.sample if self.decoder == "fused" else compact_decoding.sample
                new = sample(
                    self._fused if self.decoder == "fused" else self.model,
                    enc["input_ids"],
                    enc["attention_mask"],
                    temperature=temperature,
                    top_p=top_p,
                    max_new_tokens=max_new_tokens,
                    eos_token_id=self.tokenizer.eos_token_id,
                    pad_token_id=self.tokenizer.pad_token_id,
                    share_prefix=self.share_prefix,
                )
            else:
                new = self._generate_hf(enc, temperature, top_p, max_new_tokens)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise BackendError(
                f"{self.decoder!r} decoding failed on {self.model_path}: {exc}"
            ) from exc
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        # Rows are padded after their EOS; a row with none ran into the token budget.
        ended = _ended_by_eos(new, self.tokenizer.eos_token_id)
        cut = new.shape[1] >= max_new_tokens
        return [Completion(t, "stop" if e or not cut else "length") for t, e in zip(texts, ended)]

    def _generate_hf(
        self, enc, temperature: float, top_p: float, max_new_tokens: int
    ) -> torch.Tensor:
        sampled = temperature > 0
        gen_kwargs = dict(
            max_new_tokens=max_new_tokens,
            do_sample=sampled,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        if sampled:
            gen_kwargs.update(temperature=float(temperature), top_p=float(top_p), top_k=0)
        else:
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        ids = self.model.generate(**enc, **gen_kwargs)
        return ids[:, enc["input_ids"].shape[1] :]


def _ended_by_eos(new: torch.Tensor, eos_token_id: int | list[int] | None) -> list[bool]:
    """Per row of new tokens: whether it holds an EOS token."""
    if eos_token_id is None:
        return [False] * new.shape[0]
    ids = eos_token_id if isinstance(eos_token_id, list) else [eos_token_id]
    return torch.isin(new, torch.tensor(ids, device=new.device)).any(dim=1).tolist()
