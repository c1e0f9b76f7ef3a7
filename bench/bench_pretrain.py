"""Pretraining throughput: tokens/s of one optimizer step loop on the tiny student's shape.

Usage: python bench/bench_pretrain.py [--steps N] [--layers L --embd E --heads H]
Prints the core count, the command, and training tokens/s (forward + backward + AdamW).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from story_env.agents.pretraining.pretrain import ModelConfig, build_model
from story_env.agents.students.tiny import TINY_RECIPE


def main() -> None:
    recipe = TINY_RECIPE
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--layers", type=int, default=recipe.model.n_layer)
    parser.add_argument("--embd", type=int, default=recipe.model.n_embd)
    parser.add_argument("--heads", type=int, default=recipe.model.n_head)
    parser.add_argument("--batch-size", type=int, default=recipe.batch_size)
    parser.add_argument("--block-size", type=int, default=recipe.block_size)
    args = parser.parse_args()
    config = ModelConfig(
        n_layer=args.layers, n_embd=args.embd, n_head=args.heads, vocab_size=recipe.model.vocab_size
    )
    model = build_model(config, eos_id=0, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, config.vocab_size, (args.batch_size, args.block_size + 1))
    print(
        f"cores: {os.cpu_count()}  torch threads: {torch.get_num_threads()}  "
        f"command: python {' '.join(sys.argv)}"
    )
    print(f"model: {config}  params: {model.num_parameters():,}")
    for step in range(args.steps + 3):
        if step == 3:  # warm-up steps excluded
            start = time.perf_counter()
        loss = model(input_ids=x[:, :-1], labels=x[:, :-1]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    elapsed = time.perf_counter() - start
    tokens = args.steps * args.batch_size * args.block_size
    print(
        f"pretraining: {tokens / elapsed:,.0f} tokens/s ({elapsed / args.steps * 1000:.0f} ms/step)"
    )


if __name__ == "__main__":
    main()
