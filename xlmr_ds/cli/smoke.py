"""`xlmr-ds smoke`: build a model and train it a few steps on one random masked batch.

A quick check that the model runs forward and backward on this machine: the loss must fall as the model
memorizes the batch. It needs no data, no DeepSpeed launcher and no GPU.
"""

from __future__ import annotations

import argparse
import time

from xlmr_ds.cli.arguments import add_model_arguments, model_config_from_args, require_at_least
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.vocab import BOS_ID, EOS_ID, IGNORE_INDEX, PAD_ID, UNK_ID, mask_id


def register(commands) -> None:
    parser = commands.add_parser("smoke", help="forward/backward steps of a model on one random batch")
    add_model_arguments(parser, default="tiny")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps (default 8)")
    parser.add_argument("--batch", type=int, default=4, help="sequences per batch (default 4)")
    parser.add_argument("--seq", type=int, default=64, help="tokens per sequence (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run)


def random_masked_batch(vocab_size: int, batch: int, seq: int, generator):
    """<s> tokens </s> then padding (every other sequence is shorter), with 15% of the tokens labelled;
    `generator` is a torch.Generator."""
    import torch

    input_ids = torch.randint(4, vocab_size - 1, (batch, seq), generator=generator)
    lengths = [seq if i % 2 == 0 else max(3, seq // 2) for i in range(batch)]
    attention_mask = torch.zeros(batch, seq, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, 0], input_ids[row, length - 1] = BOS_ID, EOS_ID
        input_ids[row, length:] = PAD_ID
        attention_mask[row, :length] = 1
    chosen = (torch.rand(batch, seq, generator=generator) < 0.15) & (input_ids > UNK_ID)
    labels = torch.where(chosen, input_ids, IGNORE_INDEX)
    masked_inputs = torch.where(chosen, mask_id(vocab_size), input_ids)
    return masked_inputs, attention_mask, labels


def run(args: argparse.Namespace) -> int:
    require_at_least(args, 1, "steps", "batch", "seq")
    name, config = model_config_from_args(args)
    if args.seq < 3 or args.seq > config.max_sequence_length:
        raise XLMRDSError(f"--seq={args.seq} must be between 3 and {config.max_sequence_length} for model {name}")
    import torch

    from xlmr_ds.model.modeling import XLMRForMaskedLM

    torch.manual_seed(args.seed)
    model = XLMRForMaskedLM(config.replace(hidden_dropout=0.0, attention_dropout=0.0)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-6)
    batch = random_masked_batch(config.vocab_size, args.batch, args.seq, torch.Generator().manual_seed(args.seed))
    tokens = int(batch[1].sum())
    print(f"smoke: model {name}, {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"batch {args.batch} x {args.seq} ({tokens} real tokens, {int(batch[2].ne(IGNORE_INDEX).sum())} labelled)")
    losses = []
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        loss = model(*batch[:2], labels=batch[2]).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        print(f"step {step}: loss {losses[-1]:.4f}")
    elapsed = time.perf_counter() - start
    print(f"{args.steps * tokens / elapsed:,.0f} tokens/s; loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    if args.steps > 1 and not losses[-1] < losses[0]:
        raise XLMRDSError(f"the loss did not fall over {args.steps} steps ({losses[0]:.4f} -> {losses[-1]:.4f})")
    return 0
