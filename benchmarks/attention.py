"""Eager attention against scaled-dot-product attention (SDPA) for xlt's training step, side by side in one run.

Usage: PYTHONPATH=src python benchmarks/attention.py [--device cuda] [--dtype bf16] [--batch 4] [--steps 3]

An mT5-small-shaped model (8+8 layers, random weights) with a 50-token soft prompt, trained on span corruption
(256 input tokens, two rows padded short, 58 targets) through ``XLTModel`` with the fused loss: once with
transformers' eager attention (T5's relative position bias added to the scores), once with SDPA (the bias
passed as SDPA's additive mask), alternating step by step; then the same for a GPT-2 shape with a language
adapter (causal LM, 256 tokens). Prints the median step of each and the ratio, and checks the losses agree.
Which path xlt's ``load_model`` picks on each device follows from these numbers (``Host.cpu_attention``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from collections.abc import Callable

import torch
from shared import clock, device_name, pick_device
from transformers import GPT2Config, GPT2LMHeadModel, MT5Config, MT5ForConditionalGeneration, PreTrainedModel

from xlt import BottleneckConfig, PromptConfig, XLTModel


def mt5(implementation: str) -> PreTrainedModel:
    config = MT5Config(
        vocab_size=250_112, d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_decoder_layers=8, num_heads=6,
        tie_word_embeddings=False, dropout_rate=0.0, attn_implementation=implementation,
    )  # fmt: skip
    return MT5ForConditionalGeneration(config)


def gpt2(implementation: str) -> PreTrainedModel:
    config = GPT2Config(vocab_size=50_257, n_embd=768, n_layer=12, n_head=12, attn_implementation=implementation)
    return GPT2LMHeadModel(config)


def compare(name: str, build: Callable[[str], PreTrainedModel], args: argparse.Namespace) -> None:
    device = pick_device(args.device)
    models = {}
    for implementation in ("eager", "sdpa"):
        torch.manual_seed(0)
        model = XLTModel(build(implementation).to(device).train())
        if model.host.family == "encoder_decoder":
            model.add_language("sk", PromptConfig(num_virtual_tokens=50, init="vocab"))
            plan = "sk/prompt"
        else:
            model.add_language("sk", BottleneckConfig(reduction_factor=16))
            plan = "sk/bottleneck"
        model.to(device).train_reps(plan)
        models[implementation] = (model, plan)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 50_000, (args.batch, 256), generator=g)
    mask = torch.ones_like(ids)
    mask[-1, 128:] = 0
    if args.batch > 1:
        mask[-2, 200:] = 0
    if name.startswith("span"):
        labels = torch.randint(5, 50_000, (args.batch, 58), generator=g)
    else:
        labels = ids.masked_fill(mask == 0, -100)
    ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.dtype == "bf16" else contextlib.nullcontext()
    times: dict[str, list[float]] = {k: [] for k in models}
    losses: dict[str, float] = {}
    for step in range(args.steps + 1):
        for implementation, (model, plan) in models.items():
            start = clock(device)
            with autocast:
                out = model(ids, mask, plan=plan, labels=labels, logits=False)
            out.loss.backward()
            if step:  # the first is a warm-up
                times[implementation].append(clock(device) - start)
            losses[implementation] = out.loss.item()
            model.zero_grad(set_to_none=True)
    eager, sdpa = (statistics.median(times[k]) for k in ("eager", "sdpa"))
    print(
        f"{name}: eager {eager * 1000:.0f} ms, sdpa {sdpa * 1000:.0f} ms per step (median of {args.steps}); "
        f"sdpa / eager speed {eager / sdpa:.2f}x; losses {losses['eager']:.5f} / {losses['sdpa']:.5f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's own choice)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"{device_name(pick_device(args.device))}, {args.dtype}, batch {args.batch}")
    compare("span corruption, mT5-small shape + 50-token prompt", mt5, args)
    compare("causal LM, GPT-2 shape + language adapter", gpt2, args)


if __name__ == "__main__":
    main()
