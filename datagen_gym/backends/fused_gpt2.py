"""Sampling from a GPT-2 model with a hand-fused forward pass: the embedded teacher's decoder.

The embedded teacher is tiny (4 layers of width 160), so a decode step through the Hugging Face
forward is bound by per-operator overhead, not arithmetic: dozens of small tensors, cache
objects and mask rebuilds per layer and token, and a sampler that sorts and draws exponentials
over the whole vocabulary for every row. :func:`sample` runs the same network with

- the weights laid out once for ``addmm`` (``x @ W + b``; GPT-2's ``Conv1D`` stores ``W`` as
  ``in x out`` already), the tied LM head read through ``F.linear`` as it is stored;
- a preallocated KV cache per layer, written in place;
- a prompt prefix shared by every row (the few-shot header of Evol-Instruct and
  classification prompts) computed and stored once, with batch 1: each row's queries attend
  to it through one batched matmul over heads, so it is never copied per row;
- finished rows dropped from the batch (as :mod:`compact_decoding` does);
- nucleus (top-p) sampling by rejection, without sorting the vocabulary (see
  :func:`_nucleus_sample`).

It samples from the same distribution as ``model.generate(do_sample=True, top_k=0)`` with the
same temperature and top_p (the logits agree to float rounding; a test compares next-token
distributions and sampled frequencies), but not with the same random numbers, so its tokens
differ from the reference decoders' for the same seed. It draws the same count of uniform
numbers for every row of the original batch at every step, finished rows included, so a row's
tokens do not depend on when other rows finish.

It serves ``GPT2LMHeadModel`` checkpoints with GPT-2's standard attention (``scale_attn_weights``
on, no per-layer scaling, no upcast reordering) and no logits processor in their generation
config; :func:`unsupported_reason` says why another model is not served.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from datagen_gym.backends import compact_decoding

# Draws per row and step before nucleus sampling sorts the row (see _nucleus_sample): with
# top_p = 0.9 a row sorts once in 10,000 steps.
REJECTION_ROUNDS = 4
# A finished row stays in the batch until this share of the batch has finished (dropping rows
# moves some others' caches).
COMPACT_FRACTION = 0.25
MIN_SHARED_PREFIX = compact_decoding.MIN_SHARED_PREFIX
_MASKED = torch.finfo(torch.float32).min


def unsupported_reason(model: torch.nn.Module) -> str | None:
    """Why :func:`sample` cannot decode this model, or None."""
    config = model.config
    if getattr(config, "model_type", None) != "gpt2" or not hasattr(model, "transformer"):
        return f"it is not a GPT-2 model (model_type={getattr(config, 'model_type', None)!r})"
    if not getattr(config, "scale_attn_weights", True):
        return "it does not scale attention weights"
    if getattr(config, "scale_attn_by_inverse_layer_idx", False):
        return "it scales attention by the inverse layer index"
    if getattr(config, "reorder_and_upcast_attn", False):
        return "it reorders and upcasts attention"
    if getattr(config, "add_cross_attention", False):
        return "it has cross-attention layers"
    if config.activation_function not in ("gelu_new", "gelu_pytorch_tanh", "gelu"):
        return f"its activation is {config.activation_function}"
    if next(model.parameters()).dtype != torch.float32:
        return f"its weights are {next(model.parameters()).dtype}, not float32"
    return compact_decoding.unsupported_reason(model)


@dataclass
class _Layer:
    ln1: tuple[torch.Tensor, torch.Tensor]
    qkv: tuple[torch.Tensor, torch.Tensor]  # weight (width, 3 * width), bias
    proj: tuple[torch.Tensor, torch.Tensor]
    ln2: tuple[torch.Tensor, torch.Tensor]
    fc: tuple[torch.Tensor, torch.Tensor]
    out: tuple[torch.Tensor, torch.Tensor]


def _scaled_queries(
    weight: torch.Tensor, bias: torch.Tensor, width: int, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The query/key/value projection with the attention scale 1/sqrt(head_dim) folded into
    its query columns (a copy; the model's weights are left alone)."""
    weight, bias = weight.clone(), bias.clone()
    weight[:, :width] *= scale
    bias[:width] *= scale
    return weight, bias


class FusedGPT2:
    """A GPT-2 model's weights laid out for :func:`sample` (built once per model)."""

    def __init__(self, model: torch.nn.Module) -> None:
        reason = unsupported_reason(model)
        if reason:
            raise ValueError(f"the fused GPT-2 decoder cannot serve this model: {reason}")
        config = model.config
        t = model.transformer
        self.heads = config.n_head
        self.width = config.n_embd
        self.head_dim = self.width // self.heads
        self.eps = config.layer_norm_epsilon
        self.max_positions = config.n_positions
        self.exact_gelu = config.activation_function == "gelu"
        # The KV cache's memory, kept between calls (about 80 MB for the embedded teacher at
        # 64 prompts of 150 tokens and 96 new tokens); the lock makes calls from several
        # threads take turns with it.
        self.workspace: list[torch.Tensor] = []
        self.lock = threading.Lock()

        def pair(module: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
            return module.weight.detach(), module.bias.detach()

        self.wte = t.wte.weight.detach()
        self.wpe = t.wpe.weight.detach()
        self.head = model.lm_head.weight.detach()  # (vocab, width): the tied embedding
        self.ln_f = pair(t.ln_f)
        self.layers = [
            _Layer(
                pair(b.ln_1),
                _scaled_queries(*pair(b.attn.c_attn), self.width, 1.0 / math.sqrt(self.head_dim)),
                pair(b.attn.c_proj),
                pair(b.ln_2),
                pair(b.mlp.c_fc),
                pair(b.mlp.c_proj),
            )
            for b in t.h
        ]

    # -- the network -------------------------------------------------------------------------

    def _gelu(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x) if self.exact_gelu else F.gelu(x, approximate="tanh")

    def forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        cache: _Cache,
        own_bias: torch.Tensor,
        last_only: bool,
        first_row: int = 0,
    ) -> torch.Tensor:
        """Run ``ids`` (batch, new) at ``positions``, writing their keys and values into
        ``cache`` rows ``first_row:first_row + batch`` after its ``cache.length`` filled
        positions (the caller advances ``cache.length``); return the last position's logits,
        or the hidden states of every position (``last_only=False``, for a shared prefix).

        ``own_bias`` (batch, new, own length after this call) is added to the scores against
        the rows' own cached positions: 0 where a query may attend, a large negative number
        elsewhere (padding, the future). Every query attends to the whole shared prefix.
        """
        batch, new = ids.shape
        h, d = self.heads, self.head_dim
        x = self.wte[ids].add_(self.wpe[positions]).view(batch * new, self.width)
        start, end = cache.length, cache.length + new
        rows = slice(first_row, first_row + batch)
        for i, layer in enumerate(self.layers):
            a = F.layer_norm(x, (self.width,), *layer.ln1, self.eps)
            qkv = torch.addmm(layer.qkv[1], a, layer.qkv[0]).view(batch, new, 3, h, d)
            keys, values = cache.keys[i][rows], cache.values[i][rows]
            keys[:, :, start:end] = qkv[:, :, 1].transpose(1, 2)
            values[:, :, start:end] = qkv[:, :, 2].transpose(1, 2)
            q, bias = qkv[:, :, 0].transpose(1, 2), own_bias  # (batch, heads, new, head_dim)
            if last_only and new > 1 and i == len(self.layers) - 1:
                # Only the last position's output is read: the other positions' keys and
                # values are cached above, their attention output and MLP are not needed.
                q, bias, x, new = (
                    q[:, :, -1:],
                    bias[:, -1:],
                    x.view(batch, -1, self.width)[:, -1],
                    1,
                )
            ctx = _attend(q, keys[:, :, :end], values[:, :, :end], bias, cache, i)
            x = torch.addmm(x, ctx.transpose(1, 2).reshape(batch * new, self.width), layer.proj[0])
            x += layer.proj[1]
            m = self._gelu(
                torch.addmm(
                    layer.fc[1], F.layer_norm(x, (self.width,), *layer.ln2, self.eps), layer.fc[0]
                )
            )
            x = torch.addmm(x, m, layer.out[0])
            x += layer.out[1]
        if not last_only:
            return x.view(batch, new, self.width)
        last = x.view(batch, new, self.width)[:, -1]
        # F.linear on the (vocab, width) weight: 10-30% faster here than a matmul with its
        # transpose, and no copy of the weights.
        return F.linear(F.layer_norm(last, (self.width,), *self.ln_f, self.eps), self.head)

    def prefill_prefix(self, ids: torch.Tensor, cache: _Cache) -> None:
        """Compute a shared prefix, ``ids`` of shape (1, prefix), into ``cache``'s batch-1
        prefix store."""
        length = ids.shape[1]
        scratch = _Cache(self, 1, length)
        bias = torch.zeros((1, length, length)).masked_fill_(
            torch.ones(length, length, dtype=torch.bool).triu(1), _MASKED
        )
        self.forward(ids, torch.arange(length)[None], scratch, bias, last_only=False)
        scratch.length = length
        cache.prefix_keys = [k[0] for k in scratch.keys]
        cache.prefix_values = [v[0] for v in scratch.values]
        cache.prefix_length = length


# Prompts are prefilled this many tokens at a time (see sample()). 64 bootstrap prompts of
# ~150 tokens: 512 or 1024 -> 0.24-0.26 s, 2048 or 4096 -> 0.17-0.20 s, 8192 -> 0.20-0.21 s.
PREFILL_TOKENS = 2048
# Prefill attention runs over this many score entries at a time: a batch-64 prompt's scores
# in one piece (30 MB per layer) come from fresh pages of memory at every layer.
ATTENTION_CHUNK = 1 << 19


def _attend(
    q: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    bias: torch.Tensor,
    cache: _Cache,
    layer: int,
) -> torch.Tensor:
    """Attention of ``q`` (batch, heads, new, d; already scaled) over the shared prefix of
    ``cache`` and the rows' own ``keys``/``values`` (batch, heads, length, d), with ``bias``
    (batch, new, length) on the own scores; (batch, heads, new, d)."""
    batch, heads, new, d = q.shape
    prefix = cache.prefix_length
    rows = max(1, ATTENTION_CHUNK // (heads * new * (prefix + keys.shape[2])))
    if batch > rows:
        return torch.cat(
            [
                _attend(
                    q[r : r + rows],
                    keys[r : r + rows],
                    values[r : r + rows],
                    bias[r : r + rows],
                    cache,
                    layer,
                )
                for r in range(0, batch, rows)
            ]
        )
    scores = torch.matmul(q, keys.transpose(-1, -2))
    scores += bias[:, None]
    if not prefix:
        return torch.matmul(torch.softmax(scores, dim=-1), values)
    # The prefix is stored once (batch 1): fold the rows into the query dimension.
    pk, pv = cache.prefix_keys[layer], cache.prefix_values[layer]  # (heads, prefix, d)
    qh = q.transpose(0, 1).reshape(heads, batch * new, d)
    prefix_scores = torch.bmm(qh, pk.transpose(1, 2)).view(heads, batch, new, prefix)
    weights = torch.softmax(torch.cat([prefix_scores.transpose(0, 1), scores], dim=-1), dim=-1)
    ctx = torch.matmul(weights[..., prefix:], values)
    pw = weights[..., :prefix].transpose(0, 1).reshape(heads, batch * new, prefix)
    ctx += torch.bmm(pw, pv).view(heads, batch, new, d).transpose(0, 1)
    return ctx


class _Cache:
    """Preallocated keys and values per layer: a batch-1 shared prefix and the rows' own part.

    With ``workspace`` (a list of flat buffers, one per layer and keys/values, grown here when
    too small), the cache lives in memory kept from call to call: fresh buffers of this size
    come from the OS page by page, which cost a quarter of a batch-64 prefill.
    """

    def __init__(
        self,
        model: FusedGPT2,
        batch: int,
        capacity: int,
        workspace: list[torch.Tensor] | None = None,
    ) -> None:
        shape = (batch, model.heads, capacity, model.head_dim)
        size = math.prod(shape)
        if workspace is None:
            buffers = [torch.empty(size) for _ in range(2 * len(model.layers))]
        else:
            if len(workspace) != 2 * len(model.layers) or workspace[0].numel() < size:
                workspace[:] = [torch.empty(size) for _ in range(2 * len(model.layers))]
            buffers = workspace
        views = [b[:size].view(shape) for b in buffers]
        self.keys, self.values = views[::2], views[1::2]
        self.length = 0  # filled own positions
        self.prefix_length = 0
        self.prefix_keys: list[torch.Tensor] = []
        self.prefix_values: list[torch.Tensor] = []

    def move_rows(self, sources: torch.Tensor, targets: torch.Tensor) -> None:
        """Copy rows ``sources`` (their filled positions) onto rows ``targets``."""
        for buf in (*self.keys, *self.values):
            buf[targets, :, : self.length] = buf[sources, :, : self.length]


def _compaction(running: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """How to drop the finished rows of a batch by moving as few rows as possible: the
    running rows past the new batch size fill the finished rows' places before it.
    Returns the new order of the rows (old index per new row), and the rows to move and
    their targets."""
    kept = int(running.sum())
    order = torch.arange(kept)
    targets = (~running[:kept]).nonzero().squeeze(1)
    sources = running[kept:].nonzero().squeeze(1) + kept
    order[targets] = sources
    return order, sources, targets


def _invert(cum: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Per row, the index drawn by inverting the cumulative masses ``cum`` at ``uniform``."""
    total = cum[:, -1:]
    choice = torch.searchsorted(cum, uniform[:, None] * total, right=True)
    # uniform * total can round up to the total itself, past the last token with mass: that
    # token is the first whose cumulative mass reaches the total.
    return torch.minimum(choice, (cum < total).sum(-1, keepdim=True)).squeeze(1)


def _nucleus_sample(
    logits: torch.Tensor, temperature: float, top_p: float, uniforms: torch.Tensor
) -> torch.Tensor:
    """One token per row from softmax(logits / temperature) restricted to the top-p nucleus.

    The nucleus (Hugging Face's ``TopPLogitsWarper``) holds the tokens whose more probable
    tokens weigh less than ``top_p`` together. Sorting the vocabulary of every row at every
    step costs more than the forward pass of this model, so it samples by rejection: draw a
    token from the whole distribution (inverting its cumulative masses), keep it if it is in
    the nucleus (one pass over the row), else draw again. Kept tokens follow the nucleus
    distribution exactly; a draw is kept with probability at least ``top_p``. A row whose top
    token alone reaches ``top_p`` has a one-token nucleus; rows still without a token after
    ``uniforms.shape[1] - 1`` rounds sort their row. ``uniforms`` (rows, rounds + 1) holds the
    random numbers in [0, 1), a fixed number per row and step so rows stay independent.
    """
    probs = torch.softmax(logits / temperature if temperature != 1.0 else logits, dim=-1)
    cum = probs.cumsum(-1)
    if top_p >= 1.0:
        return _invert(cum, uniforms[:, 0])
    top, tokens = probs.max(dim=-1)
    one_token = top >= top_p  # the top token alone reaches top_p: the nucleus is that token
    rounds = uniforms.shape[1] - 1
    if rounds:
        # The first draw for every row at once (most rows keep it), without gathering rows.
        proposal = _invert(cum, uniforms[:, 0])
        mass = probs.gather(1, proposal[:, None])
        inside = probs.masked_fill(probs <= mass, 0.0).sum(-1) < top_p
        tokens = torch.where(one_token, tokens, proposal)
        one_token |= inside
    pending = (~one_token).nonzero().squeeze(1)
    for r in range(1, rounds):
        if not len(pending):
            return tokens
        row_probs = probs[pending]
        proposal = _invert(cum[pending], uniforms[pending, r])
        mass = row_probs.gather(1, proposal[:, None])
        inside = row_probs.masked_fill(row_probs <= mass, 0.0).sum(-1) < top_p
        tokens[pending[inside]] = proposal[inside]
        pending = pending[~inside]
    if len(pending):
        sorted_probs, order = probs[pending].sort(dim=-1, descending=True)
        sorted_cum = sorted_probs.cumsum(-1)
        sorted_probs.masked_fill_(sorted_cum - sorted_probs >= top_p, 0.0)
        choice = _invert(sorted_probs.cumsum(-1), uniforms[pending, -1])
        tokens[pending] = order.gather(1, choice[:, None]).squeeze(1)
    return tokens


@torch.inference_mode()
def sample(
    model: torch.nn.Module | FusedGPT2,
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

    The contract of :func:`compact_decoding.sample`: ``temperature == 0`` decodes greedily;
    decoding ends when every row has emitted an EOS token or after ``max_new_tokens`` steps;
    ``generator`` is the random source (default: torch's global one).
    """
    fused = model if isinstance(model, FusedGPT2) else FusedGPT2(model)
    batch = input_ids.shape[0]
    compact_decoding.check_left_padded(input_ids, attention_mask)
    if input_ids.device.type != "cpu":
        raise ValueError("the fused GPT-2 decoder runs on the CPU")
    if max_new_tokens == 0 or batch == 0:
        return torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long)
    eos = compact_decoding.eos_ids(eos_token_id, torch.device("cpu"))
    lengths = attention_mask.sum(-1)
    prefix = compact_decoding.common_prefix_length(attention_mask, input_ids) if share_prefix else 0
    if batch == 1 or prefix < MIN_SHARED_PREFIX:
        prefix = 0
    own = int(lengths.max()) - prefix  # the longest row's own tokens
    if prefix + own + max_new_tokens > fused.max_positions:
        raise ValueError(
            f"prompt ({prefix + own} tokens) plus {max_new_tokens} new tokens exceed the "
            f"model's {fused.max_positions} positions"
        )
    with fused.lock:
        return _decode(
            fused,
            input_ids,
            lengths,
            prefix=prefix,
            own=own,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            eos=eos,
            pad_token_id=pad_token_id,
            generator=generator,
        )


def _decode(
    fused: FusedGPT2,
    input_ids: torch.Tensor,
    lengths: torch.Tensor,
    *,
    prefix: int,
    own: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    eos: torch.Tensor,
    pad_token_id: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The body of :func:`sample`, holding ``fused``'s lock: ``prefix`` tokens shared by every
    row, ``own`` tokens of the longest row after them (``lengths``: each row's prompt)."""
    batch, width = input_ids.shape
    tokens = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long)
    cache = _Cache(fused, batch, own + max_new_tokens, fused.workspace)
    if prefix:
        start = width - int(lengths[0])
        fused.prefill_prefix(input_ids[:1, start : start + prefix], cache)
    # Own part: [padding][own tokens], as left-padded rows without the prefix.
    valid = torch.arange(own)[None] >= own - (lengths - prefix)[:, None]  # (batch, own)
    own_ids = input_ids[:, width - own :]
    positions = prefix + (valid.long().cumsum(-1) - 1).clamp_(min=0)
    allowed = valid[:, None, :] & torch.ones(own, own, dtype=torch.bool).tril()[None]
    bias = torch.zeros((batch, own, own)).masked_fill_(~allowed, _MASKED)
    # In pieces of rows: the activations of a piece stay in the CPU's caches (a whole batch's
    # are tens of MB, fetched page by page from the OS at every layer).
    piece = max(1, PREFILL_TOKENS // max(own, 1))
    logits = torch.cat(
        [
            fused.forward(
                own_ids[r : r + piece],
                positions[r : r + piece],
                cache,
                bias[r : r + piece],
                last_only=True,
                first_row=r,
            )
            for r in range(0, batch, piece)
        ]
    )
    cache.length = own

    # One row of attention bias per row for the whole run; each step exposes one more column.
    step_bias = torch.zeros((batch, 1, own + max_new_tokens))
    step_bias[:, 0, :own].masked_fill_(~valid, _MASKED)
    greedy = temperature == 0
    rows = torch.arange(batch)  # original index of each row in the batch
    running = torch.ones(batch, dtype=torch.bool)
    next_pos = positions[:, -1:] + 1
    for step in range(max_new_tokens):
        if greedy:
            next_tokens = logits.argmax(dim=-1)
        else:
            uniforms = torch.rand((batch, REJECTION_ROUNDS + 1), generator=generator)[rows]
            next_tokens = _nucleus_sample(logits, temperature, top_p, uniforms)
        next_tokens = torch.where(running, next_tokens, pad_token_id)
        tokens[rows, step] = next_tokens
        running &= ~torch.isin(next_tokens, eos)
        finished = int((~running).sum())  # the one sync per token
        if step + 1 == max_new_tokens or finished == len(rows):
            return tokens[:, : step + 1]
        if finished >= max(1, int(COMPACT_FRACTION * len(rows))):
            keep, sources, targets = _compaction(running)
            cache.move_rows(sources, targets)
            step_bias[targets] = step_bias[sources]
            rows, running = rows[keep], running[keep]
            next_tokens, next_pos = next_tokens[keep], next_pos[keep]
        n = len(rows)
        logits = fused.forward(
            next_tokens[:, None],
            next_pos,
            cache,
            step_bias[:n, :, : cache.length + 1],
            last_only=True,
        )
        cache.length += 1
        next_pos = next_pos + 1
    return tokens
