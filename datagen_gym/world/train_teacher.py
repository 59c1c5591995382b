"""Train the embedded teacher: a tiny GPT-2 and its own byte-level BPE tokenizer.

    python -m datagen_gym.world.train_teacher [--steps 1800] [--out datagen_gym/world/teacher]

The corpus comes from :mod:`datagen_gym.world.corpus` (the generators' own prompt formats), so
the shipped weights can be reproduced from this script alone: same seed, same corpus, same
schedule (bit-exact only on the same CPU, thread count and torch build). The shipped teacher:
1.65M parameters (4 layers, width 160, 2048-token vocabulary), 1800 steps of 16 rows of 320
tokens, bfloat16 autocast, completion tokens weighted 3x: 32-37 minutes on one thread of a 2-core
AMD EPYC (AVX512-BF16) shared with other jobs (``--threads 1``, the default).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from datagen_gym.atomic_io import atomic_write_dir
from datagen_gym.world.corpus import EOS, iter_parts

STEPS = 1800
DEFAULT_OUT = Path(__file__).resolve().parent / "teacher"
# The shipped teacher's shape. A 2048-token vocabulary makes every word of the world one token
# (``APPLE`` as well as ``apple``; at 1024 upper-case words were spelt letter by letter), so a
# word-level transform is one token per word. Width buys capacity without slowing decoding
# much (decoding a tiny model on CPU costs per layer, hardly per width).
N_EMBD, N_LAYER, N_HEAD = 160, 4, 5
VOCAB_SIZE = 2048
POSITION_SCALE = 0.05
# Completion tokens (what the teacher writes: new tasks, instances, answers, rewrites) weigh
# this much more in the loss than prompt tokens, most of which are the generators' fixed
# headers or random in-context tasks.
COMPLETION_WEIGHT = 3.0


def train_tokenizer(docs: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(docs, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS
    )
    fast.padding_side = "left"  # decoder-only generation pads on the left
    return fast


def make_model(
    vocab_size: int,
    eos_id: int,
    n_positions: int,
    n_embd: int = N_EMBD,
    n_layer: int = N_LAYER,
    n_head: int = N_HEAD,
) -> GPT2LMHeadModel:
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_inner=4 * n_embd,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    # A sinusoidal start for the learned position embeddings, so that attending to the
    # previous token (the first half of copying) is a linear map from the start rather than
    # something to learn for each of the 512 positions.
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, n_embd, 2) / n_embd)
    table = torch.zeros(n_positions, n_embd)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    with torch.no_grad():
        model.transformer.wpe.weight.copy_(POSITION_SCALE * table)
    return model


def document_rows(
    parts: Iterator[tuple[str, str]],
    tokenizer: PreTrainedTokenizerFast,
    batch: int,
    block: int,
    completion_weight: float = 1.0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of ``block + 1`` tokens per row and each token's loss weight (``1`` in a prompt,
    ``completion_weight`` in a completion). Every row starts at a document's start and is
    filled with whole documents, the last one cut at the row's end: a completion is always
    learnt with its whole prompt."""
    pending: list[int] = []
    pending_w: list[float] = []
    while True:
        rows, weights = [], []
        for _ in range(batch):
            row: list[int] = []
            row_w: list[float] = []
            while len(row) < block + 1:
                if not pending:
                    prompt, completion = next(parts)
                    enc = tokenizer(prompt + completion, return_offsets_mapping=True)
                    pending = enc["input_ids"]
                    pending_w = [
                        completion_weight if start >= len(prompt) else 1.0
                        for start, _ in enc["offset_mapping"]
                    ]
                take = block + 1 - len(row)
                row.extend(pending[:take])
                row_w.extend(pending_w[:take])
                pending, pending_w = [], []  # a document cut at the row's end loses the rest
            rows.append(row)
            weights.append(row_w)
        yield torch.tensor(rows), torch.tensor(weights)


def weighted_loss(logits: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy, each target token weighted."""
    ce = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        ids[:, 1:].reshape(-1),
        reduction="none",
    )
    w = weights[:, 1:].reshape(-1)
    return (ce * w).sum() / w.sum()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="wall-clock budget instead of --steps; the LR schedule spans it",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=STEPS,
        help=f"number of optimizer steps (the shipped teacher: {STEPS})",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-size", type=int, default=VOCAB_SIZE)
    parser.add_argument("--n-embd", type=int, default=N_EMBD)
    parser.add_argument("--n-layer", type=int, default=N_LAYER)
    parser.add_argument("--n-head", type=int, default=N_HEAD)
    parser.add_argument(
        "--block",
        type=int,
        default=320,
        help="tokens per row (the longest documents are about 300)",
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--completion-weight",
        type=float,
        default=COMPLETION_WEIGHT,
        help="loss weight of completion tokens (what the teacher must write) "
        "relative to prompt tokens",
    )
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bfloat16 autocast for the matmuls (weights stay float32): about "
        "1.8x faster on CPUs with AVX512-BF16 or AMX",
    )
    parser.add_argument(
        "--save-every",
        type=int,
        default=0,
        help="also save a checkpoint every this many steps (0: only at the end)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; a model this small gains little from more, and "
        "more threads stall badly when another process shares the cores",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    parts = iter_parts(args.seed)
    tokenizer = train_tokenizer(["".join(next(parts)) for _ in range(20000)], args.vocab_size)
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    model = make_model(
        len(tokenizer),
        eos_id,
        n_positions=512,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
    )
    n_params = sum(p.numel() for p in model.parameters())
    print(f"teacher: {n_params / 1e6:.2f}M parameters, vocab {len(tokenizer)}", flush=True)
    batches = document_rows(parts, tokenizer, args.batch, args.block, args.completion_weight)

    def save(out: Path) -> None:
        # One rename: a run reading the teacher never sees half of a new one.
        def write(tmp: Path) -> None:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)

        model.eval()
        model.generation_config.pad_token_id = eos_id
        atomic_write_dir(out, write)
        model.train()

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    budget = args.minutes * 60.0 if args.minutes else None
    start, step, ema = time.perf_counter(), 0, None
    model.train()
    while True:
        elapsed = time.perf_counter() - start
        progress = elapsed / budget if budget else step / args.steps
        if progress >= 1.0:
            break
        lr = args.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * progress))
        for group in opt.param_groups:
            group["lr"] = max(lr, args.lr * 0.02)
        batch, weights = next(batches)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            if args.completion_weight == 1.0:
                out = model(input_ids=batch[:, :-1], labels=batch[:, :-1])
                loss = out.loss
            else:
                logits = model(input_ids=batch[:, :-1]).logits
                loss = weighted_loss(logits, batch[:, :-1], weights[:, :-1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        step += 1
        if step % 50 == 0:
            print(f"step {step:5d}  {elapsed:6.0f}s  loss {ema:.3f}  lr {lr:.2e}", flush=True)
        if args.save_every and step % args.save_every == 0:
            save(args.out.with_name(f"{args.out.name}-step{step}"))

    save(args.out)
    print(
        f"saved to {args.out} after {step} steps, {time.perf_counter() - start:.0f}s, "
        f"final loss {ema:.3f}"
    )


if __name__ == "__main__":
    main()
