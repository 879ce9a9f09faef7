"""Task training with and without length buckets, on the demo's own task and model, side by side in one run.

Usage: PYTHONPATH=src python benchmarks/buckets.py [--steps 12] [--batch 16] [--device cuda] [--e5-config DIR]

The emoji-group task's English training names (CLDR), the e5 tokenizer and the real multilingual-e5-small (or,
with ``--e5-config DIR``, its shape with random weights) with a task adapter and head, trained as
``xlt.training.task`` does: micro-batches of ``--batch`` rows drawn at random (padded to their longest row, as
before buckets) or within one of up to 8 length buckets (``xlt.training.buckets``; on a GPU padded to the
bucket's bound). Prints the share of padding over 400 batches of each stream, then the median step time
(forward, backward, AdamW update) over ``--steps`` batches of each, the two sides alternating step by step,
and the ratio; and the distinct batch shapes each stream makes a GPU compile for.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path

import torch
from shared import clock, device_name, e5_label, e5_model, pick_device

from xlt import BottleneckConfig, XLTModel
from xlt.e5 import E5_MODEL_ID
from xlt.tasks import emoji_task
from xlt.training.buckets import bucket_bounds, bucketed_epochs, padded_bounds, padded_to_bounds
from xlt.training.task import TaskFormat, epochs

SEED = 42


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per side (median reported)")
    parser.add_argument("--batch", type=int, default=16, help="rows per micro-batch (the demo's 16)")
    parser.add_argument("--buckets", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's own choice)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--e5-config", type=Path, metavar="DIR", help="e5's shape from DIR, random weights")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    base, tokenizer = e5_model(args.e5_config)
    model = XLTModel(base, tokenizer, name=E5_MODEL_ID).to(device)
    task = emoji_task()
    data = task.training_data("en")
    model.add_task("emoji", BottleneckConfig(reduction_factor=16), head=task.head("en"))
    fmt = TaskFormat(model, task, data.labels, 128, source="en")
    lengths = fmt.lengths(data.train)
    bounds = bucket_bounds(lengths, args.buckets, multiple=1)
    collate = fmt.collate
    if device.type == "cuda":
        collate = padded_to_bounds(fmt.collate, padded_bounds(bounds), fmt.pad, fmt.token_labels)
    streams = {
        "random batches": lambda: epochs(data.train, SEED),
        f"{len(bounds)} length buckets": lambda: bucketed_epochs(data.train, lengths, bounds, args.batch, SEED),
    }
    print(f"{len(data.train)} training names, {min(lengths)}-{max(lengths)} tokens; bounds {bounds}")
    print(f"{e5_label(base.config, args.e5_config is not None)} + task adapter and head on {device_name(device)}")
    batches = {}
    for name, stream in streams.items():
        rows = stream()
        drawn = [collate([next(rows) for _ in range(args.batch)]) for _ in range(400)]
        real = sum(int(b["attention_mask"].sum()) for b in drawn)
        padded = sum(b["input_ids"].numel() for b in drawn)
        shapes = len({tuple(b["input_ids"].shape) for b in drawn})
        print(f"  {name}: {100 * (1 - real / padded):.1f}% padding over 400 batches, {shapes} batch shapes")
        batches[name] = drawn[: args.steps + 1]
    params = model.train_reps("emoji/bottleneck")
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    model.train()
    times: dict[str, list[float]] = {name: [] for name in streams}
    tokens: dict[str, list[int]] = {name: [] for name in streams}
    for index, name in itertools.product(range(args.steps + 1), streams):
        batch = {k: v.to(device) for k, v in batches[name][index].items()}
        start = clock(device)
        out = model(batch["input_ids"], batch["attention_mask"], plan="emoji/bottleneck", labels=batch["labels"])
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if index:  # the first step of each side is a warm-up
            times[name].append(clock(device) - start)
            tokens[name].append(int(batch["attention_mask"].sum()))
    base_name = next(iter(streams))
    base_rate = sum(tokens[base_name]) / sum(times[base_name])
    for name in streams:
        rate = sum(tokens[name]) / sum(times[name])
        print(
            f"  {name}: {statistics.median(times[name]) * 1000:.0f} ms/step (median of {args.steps}), "
            f"{rate:.0f} real tokens/s, {rate / base_rate:.2f}x"
        )


if __name__ == "__main__":
    main()
