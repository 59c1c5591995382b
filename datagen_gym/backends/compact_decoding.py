"""Batched sampling that stops computing a row once it has finished.

``model.generate`` keeps every row of a batch in each forward pass until the last row emits
EOS, and grows its KV cache with ``torch.cat`` (a copy of the whole cache per token and layer).
On the embedded teacher the mean generation is a third of the longest one in its batch, so most
of that work is thrown away. :func:`sample` decodes the same way, drops finished rows from the
batch, and writes the cache into buffers that grow by doubling. Optionally it also computes a
prompt prefix that all rows share (the few-shot header of Evol-Instruct and classification
prompts: 80-90% of their tokens) once instead of once per row.

It draws the same random numbers as ``model.generate``: ``torch.multinomial`` with one sample
is an exponential race (``argmax(p / q)``, ``q ~ Exp(1)`` over the whole batch and vocabulary),
and :func:`sample` draws ``q`` for the full original batch at every step, finished rows
included. Without prefix sharing it returns, for the same seed, the tokens ``model.generate``
returns (a test checks this). With it, the logits differ by float rounding, which changes a
sampled token only when two candidates are within that rounding of each other.

What it leaves out of ``generate``: beam search, stop strings, the logits processors other than
temperature and top-p (a repetition penalty in the model's generation config, ...), and models
whose forward takes no ``cache``/``position_ids`` or whose layers do not all attend to the
whole sequence (encoder-decoders, sliding-window and state-space models).
:func:`unsupported_reason` says which; ``TransformersBackend`` calls ``model.generate`` for
those.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence

import torch
from transformers.cache_utils import Cache, DynamicLayer
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

# A prompt prefix shared by every row is computed once when it is at least this long (shorter
# ones save less than the extra forward pass costs).
MIN_SHARED_PREFIX = 16
# A finished row stays in the batch until this share of the batch has finished: dropping rows
# copies the whole cache, so doing it for every single row would cost what it saves. Replaying
# the generate calls of 10 env steps: 0.125 -> 8.3 s, 0.25 -> 8.0 s, 0.5 -> 8.4 s, 0.75 -> 9.0 s.
COMPACT_FRACTION = 0.25


class GrowingCacheLayer(DynamicLayer):
    """A KV-cache layer over preallocated buffers: appending a token writes one slot.

    ``keys``/``values`` are views of the filled part, so attention reads only real positions
    (a static cache attends over its whole length). The buffers hold the prompt plus
    ``reserve`` tokens and double when full.
    """

    def __init__(self, reserve: int = 0) -> None:
        super().__init__()
        self.reserve = reserve
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.length = 0
        capacity = key_states.shape[-2] + self.reserve
        self._keys = key_states.new_empty(*key_states.shape[:-2], capacity, key_states.shape[-1])
        self._values = value_states.new_empty(
            *value_states.shape[:-2], capacity, value_states.shape[-1]
        )
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self._keys.shape[-2]:
            self._reallocate(self._keys.shape[0], max(end, 2 * self._keys.shape[-2]))
        self._keys[..., self.length : end, :] = key_states
        self._values[..., self.length : end, :] = value_states
        self.length = end
        self._refresh_views()
        return self.keys, self.values

    def _reallocate(self, batch: int, capacity: int) -> None:
        """New buffers of ``batch`` rows and ``capacity`` positions holding the filled part (a
        one-row cache is broadcast to every row)."""
        for name in ("_keys", "_values"):
            old = getattr(self, name)
            new = old.new_empty(batch, *old.shape[1:-2], capacity, old.shape[-1])
            new[..., : self.length, :] = old[..., : self.length, :]
            setattr(self, name, new)
        self._refresh_views()

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def _refresh_views(self) -> None:
        self.keys = self._keys[..., : self.length, :]
        self.values = self._values[..., : self.length, :]

    def expand_batch(self, batch: int, reserve: int) -> None:
        """Copy a one-row cache (a shared prompt prefix) into ``batch`` rows with room for more."""
        if self.is_initialized:
            self._reallocate(batch, self.length + reserve)

    # The rest of DynamicLayer's contract, applied to the buffers rather than the views.
    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self._refresh_views()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx.to(self.device))

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._keys = self._keys.repeat_interleave(repeats, dim=0)
            self._values = self._values.repeat_interleave(repeats, dim=0)
            self._refresh_views()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(
                f"crop takes a negative number of tokens to remove, got {tokens_to_remove}"
            )
        if self.is_initialized:
            self.length = max(0, self.length + tokens_to_remove)
            self._refresh_views()

    def offload(self) -> None:
        if self.is_initialized:
            self._keys = self._keys.to("cpu", non_blocking=True)
            self._values = self._values.to("cpu", non_blocking=True)
            self._refresh_views()

    def prefetch(self) -> None:
        if self.is_initialized and self._keys.device != self.device:
            self._keys = self._keys.to(self.device, non_blocking=True)
            self._values = self._values.to(self.device, non_blocking=True)
            self._refresh_views()

    def reset(self) -> None:
        self.length = 0
        super().reset()


# Generation-config fields that make model.generate add a logits processor, with their neutral
# values. The compact decoder applies temperature and top-p only (the env's sampler sets those,
# and top_k=0 like the backend's generate call), so a model that sets any of these is served by
# model.generate instead.
_PROCESSOR_FIELDS: dict[str, tuple] = {
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "min_p": (None, 0.0),
    "typical_p": (None, 1.0),
    "top_h": (None,),
    "epsilon_cutoff": (None, 0.0),
    "eta_cutoff": (None, 0.0),
    "suppress_tokens": (None, []),
    "begin_suppress_tokens": (None, []),
    "bad_words_ids": (None, []),
    "sequence_bias": (None, {}),
    "min_new_tokens": (None, 0),
    "min_length": (None, 0),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "exponential_decay_length_penalty": (None,),
    "renormalize_logits": (None, False),
    "guidance_scale": (None, 1.0),
    "watermarking_config": (None,),
    "remove_invalid_values": (None, False),
}


def unsupported_reason(model: torch.nn.Module) -> str | None:
    """Why :func:`sample` cannot stand in for ``model.generate`` on this model, or None.

    It needs a decoder-only model whose forward takes ``cache``, ``position_ids`` and
    ``logits_to_keep``, whose every layer attends to the whole sequence (a windowed layer would
    see the shared-prefix layout differently), and whose generation config adds no logits
    processor beyond temperature and top-p.
    """
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return "it is an encoder-decoder model"
    params = inspect.signature(model.forward).parameters
    missing = {"cache", "position_ids", "logits_to_keep"} - params.keys()
    if missing:
        return f"its forward takes no {', '.join(sorted(missing))}"
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    layer_types = set(getattr(text, "layer_types", None) or []) - {"full_attention"}
    if layer_types:
        return f"it has {', '.join(sorted(layer_types))} layers"
    if getattr(text, "use_sliding_window", None) is not False:
        for name in ("sliding_window", "window_size"):  # Mistral-style, GPT-Neo's local layers
            if getattr(text, name, None):
                return f"it attends through a window ({name}={getattr(text, name)})"
    generation = getattr(model, "generation_config", None)
    for name, neutral in _PROCESSOR_FIELDS.items():
        value = getattr(generation, name, None)
        if value not in neutral:
            return f"its generation config sets {name}={value!r}"
    return None


def growing_cache(reserve: int) -> Cache:
    """A cache whose layers (created on first use, one per model layer) are GrowingCacheLayers."""
    return Cache(layer_class_to_replicate=functools.partial(GrowingCacheLayer, reserve))


def logits_warpers(temperature: float, top_p: float) -> LogitsProcessorList:
    """The warpers ``model.generate`` applies for ``do_sample=True``, ``temperature``,
    ``top_p`` and ``top_k=0``."""
    warpers = LogitsProcessorList()
    if temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    return warpers


@torch.inference_mode()
def sample(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    eos_token_id: int | Sequence[int] | None,
    pad_token_id: int,
    share_prefix: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """New tokens for a left-padded batch, shape ``(batch, steps)``, padded after EOS.

    ``temperature == 0`` decodes greedily. Decoding ends when every row has emitted an EOS
    token or after ``max_new_tokens`` steps, as in ``model.generate``. ``share_prefix``
    computes the prompt prefix common to all rows (a few-shot header) once; see
    :func:`_prefill_shared_prefix`. ``generator`` is the random source (default: torch's
    global one, which ``model.generate`` uses).
    """
    batch = input_ids.shape[0]
    check_left_padded(input_ids, attention_mask)
    device = input_ids.device
    greedy = temperature == 0
    warpers = None if greedy else logits_warpers(temperature, top_p)
    eos = eos_ids(eos_token_id, device)
    tokens = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    if max_new_tokens == 0:
        return tokens

    prefix = common_prefix_length(attention_mask, input_ids) if share_prefix else 0
    if batch > 1 and prefix >= MIN_SHARED_PREFIX:
        cache, attention_mask, positions, out = _prefill_shared_prefix(
            model, input_ids, attention_mask, prefix, max_new_tokens
        )
    else:
        positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        cache = growing_cache(max_new_tokens)
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
    prompt_len = attention_mask.shape[1]
    # One mask buffer for the whole run; each step exposes one more column of it.
    mask = torch.ones(
        (batch, prompt_len + max_new_tokens), dtype=attention_mask.dtype, device=device
    )
    mask[:, :prompt_len] = attention_mask
    rows = torch.arange(batch, device=device)  # original index of each row in the batch
    running = torch.ones(batch, dtype=torch.bool, device=device)
    next_pos = positions[:, -1:] + 1
    step = 0
    while True:
        logits = out.logits[:, -1].to(dtype=torch.float32)
        if greedy:
            next_tokens = logits.argmax(dim=-1)
        else:
            probs = torch.softmax(warpers(None, logits), dim=-1)
            race = torch.empty((batch, probs.shape[-1]), dtype=probs.dtype, device=device)
            race.exponential_(1, generator=generator)
            next_tokens = (probs / race[rows]).argmax(dim=-1)
        next_tokens = torch.where(running, next_tokens, pad_token_id)
        tokens[rows, step] = next_tokens
        running &= ~torch.isin(next_tokens, eos)
        step += 1
        finished = int((~running).sum())  # the one device-to-host sync per token
        if step == max_new_tokens or finished == len(rows):
            return tokens[:, :step]
        if finished >= max(1, int(COMPACT_FRACTION * len(rows))):
            keep = running.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows, running = rows[keep], running[keep]
            next_tokens, next_pos, mask = next_tokens[keep], next_pos[keep], mask[keep]
        out = model(
            input_ids=next_tokens[:, None],
            attention_mask=mask[:, : prompt_len + step],
            position_ids=next_pos,
            cache=cache,
            use_cache=True,
        )
        next_pos = next_pos + 1


def check_left_padded(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
    """Refuse right-padded prompts: a decoder continues every row from the right edge."""
    if input_ids.shape[1] and not bool(attention_mask[:, -1].all()):
        raise ValueError(
            "sample() needs left-padded prompts (padding_side='left'): the last "
            "column of attention_mask must be all ones"
        )


def eos_ids(eos_token_id: int | Sequence[int] | None, device: torch.device) -> torch.Tensor:
    """The EOS token ids as a tensor (empty for ``None``), for ``torch.isin``."""
    if eos_token_id is None:
        ids = []
    else:
        ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    return torch.tensor(ids, dtype=torch.long, device=device)


def common_prefix_length(attention_mask: torch.Tensor, input_ids: torch.Tensor) -> int:
    """How many tokens every row's prompt starts with (rows are left-padded), leaving each row
    at least one token of its own to predict from."""
    lengths = attention_mask.sum(-1)
    shortest = int(lengths.min())
    columns = torch.arange(shortest, device=input_ids.device)
    starts = (input_ids.shape[1] - lengths)[:, None]
    heads = input_ids.gather(1, starts + columns)  # each row's first `shortest` real tokens
    differs = (heads != heads[:1]).any(dim=0).nonzero()
    return int(differs[0]) if len(differs) else shortest - 1


def _prefill_shared_prefix(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prefix: int,
    max_new_tokens: int,
):
    """Prefill the shared prefix on one row, copy its cache to every row, prefill the rest.

    The rows are laid out ``[prefix][padding][own tokens]``: the padding moves from the left
    edge to after the prefix, masked out as before, and positions count real tokens only, so
    every row sees the prompt it would see alone. The logits differ from a full prefill only
    by float rounding (the same sums in another order).
    """
    batch, width = input_ids.shape
    lengths = attention_mask.sum(-1)
    rest = int(lengths.max()) - prefix  # the longest row's own tokens
    start = width - int(lengths[0])
    cache = growing_cache(0)
    model(
        input_ids=input_ids[:1, start : start + prefix],
        position_ids=torch.arange(prefix, device=input_ids.device)[None],
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    for layer in cache.layers:
        layer.expand_batch(batch, rest + max_new_tokens)
    own = torch.arange(rest, device=input_ids.device)[None] >= rest - (lengths - prefix)[:, None]
    mask = torch.cat([attention_mask.new_ones((batch, prefix)), own.to(attention_mask.dtype)], 1)
    positions = (mask.long().cumsum(-1) - 1)[:, prefix:].masked_fill(~own, 0)
    out = model(
        input_ids=input_ids[:, width - rest :],
        attention_mask=mask,
        position_ids=positions,
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    return cache, mask, positions, out
