"""Train the embedded teacher: a tiny GPT-2 and its own byte-level BPE tokenizer.

    python -m datagen_gym.world.train_teacher [--steps 3000] [--out datagen_gym/world/teacher]

The corpus comes from :mod:`datagen_gym.world.corpus` (the generators' own prompt formats), so
the shipped weights can be reproduced from this script alone: same seed, same corpus, same
schedule. On a 2-core CPU the default 3000 steps take about 15-25 minutes.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from datagen_gym.world.corpus import EOS, iter_documents

DEFAULT_OUT = Path(__file__).resolve().parent / "teacher"


def train_tokenizer(docs: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS,
                                   unk_token=EOS, pad_token=EOS)
    fast.padding_side = "left"  # decoder-only generation pads on the left
    return fast


def make_model(vocab_size: int, eos_id: int, n_positions: int) -> GPT2LMHeadModel:
    config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=128, n_layer=4,
                        n_head=4, n_inner=512, bos_token_id=eos_id, eos_token_id=eos_id,
                        pad_token_id=eos_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--minutes", type=float, default=None,
                        help="wall-clock budget instead of --steps; the LR schedule spans it")
    parser.add_argument("--steps", type=int, default=3000,
                        help="number of optimizer steps (the shipped teacher: 3000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; a 1M-parameter model gains little from more, and "
                             "more threads stall badly when another process shares the cores")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    docs = iter_documents(args.seed)
    tokenizer = train_tokenizer([next(docs) for _ in range(20000)], args.vocab_size)
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    model = make_model(len(tokenizer), eos_id, n_positions=512)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"teacher: {n_params / 1e6:.2f}M parameters, vocab {len(tokenizer)}")

    buffer: list[int] = []

    def next_batch() -> torch.Tensor:
        need = args.batch * (args.block + 1)
        while len(buffer) < need:
            buffer.extend(tokenizer(next(docs))["input_ids"])
        chunk = buffer[:need]
        del buffer[:need]
        return torch.tensor(chunk).view(args.batch, args.block + 1)

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01,
                            betas=(0.9, 0.98))
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
        batch = next_batch()
        out = model(input_ids=batch[:, :-1], labels=batch[:, :-1])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = out.loss.item() if ema is None else 0.98 * ema + 0.02 * out.loss.item()
        step += 1
        if step % 50 == 0:
            print(f"step {step:5d}  {elapsed:6.0f}s  loss {ema:.3f}  lr {lr:.2e}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.generation_config.pad_token_id = eos_id
    model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)
    print(f"saved to {args.out} after {step} steps, {time.perf_counter() - start:.0f}s, "
          f"final loss {ema:.3f}")


if __name__ == "__main__":
    main()
