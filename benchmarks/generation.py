"""Routed text-to-text evaluation: the matrix's shared batches against one call per (target, configuration).

Usage:
    PYTHONPATH=src python benchmarks/generation.py                # the measurement (minutes on 2 CPU cores)
    PYTHONPATH=src python benchmarks/generation.py --small        # smoke run: tiny model, under a minute
    PYTHONPATH=src python benchmarks/generation.py --examples-per-target 16 --batch-size 32 --json out.json

The model: an mT5-small-shaped ``MT5ForConditionalGeneration`` (d_model 512, 8 + 8 layers, 6 heads, d_kv 64,
d_ff 1024, gated-gelu, vocabulary 250,112, untied head: google/mt5-small's config) with random weights
(seeded), and a word-level tokenizer built here from random pseudo-words (a slice of words per language). The
time of a generation step does not depend on the weight values or on which words a row holds, only on the
shapes, so no hub download is needed.

The representations: for each of the paper's 16 languages a soft language prompt (50 virtual tokens) and a
language adapter (Pfeiffer bottleneck, reduction 16); one task prompt (50 tokens) and one task adapter. Every
representation's weights get seeded noise on top of their initialisation, so each target's plan changes what
the model generates (checked: the summary counts the rows whose output differs from the same row without
representations); otherwise identical outputs would prove nothing about routing.

The data: ``--examples-per-target`` QA-like rows per target (``question : … ? context : …``), 20 to 120 tokens
with the end-of-sequence token, lengths drawn uniformly (seeded).

The comparison, for each of the paper's 7 configurations (``xlt.matrix.configurations``):
  (A) routed, as the matrix evaluates: the matrix groups cells by task representation, and one group is one
      configuration's task representation × every target; the rows of all 16 targets are sorted by length
      and cut into batches of ``--batch-size``, and every row carries its own target's plan (its language
      representation + the shared task representation), one ``XLTModel.generate(..., plans=[...])`` per batch;
  (B) one call per (target, configuration): the same rows, each target's rows sorted by length and batched
      on their own under a single plan (``generate(..., plan=...)``): what evaluating one cell at a time does.
A third side, (A+), routes the rows of all 7 configurations together (sorted by input + prompt width, each row
its own plan): what a matrix could do if its configurations shared one task representation (in a real matrix each
configuration trains its own, so its groups are (A)'s).

Every call is greedy (``do_sample=False, num_beams=1``) with ``min_new_tokens = max_new_tokens``, so every row
generates exactly ``--max-new-tokens`` tokens on every side (the end-of-sequence token is suppressed until
then): the sides do equal work. The generated ids of (A), (A+) and (B) are compared row by row; the table says
whether they are identical, and the run exits non-zero if any row differs. Routing itself is exact (a routed
row's logits equal those of a batch of the same shape under that row's plan alone, bit for bit); the sides'
batches have other shapes, and a different shape may pick other float kernels, so where a random model's top
two logits nearly tie a greedy choice can flip (see README.md).
Timed: each configuration's (A) and (B) back to back, alternating which goes first, after one untimed warm-up
pass of a batch of each side; (A+) after them. Batches are built before timing. Reported: wall time per side,
B/A, generated tokens per second (rows × max_new_tokens / seconds) and the real (non-padding) input tokens
per second, the number of calls and the input padding of each side's batches (pad positions of the token
ids; soft-prompt positions are not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import string
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from shared import clock, device_name, pick_device
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import MT5Config, MT5ForConditionalGeneration, PreTrainedTokenizerFast

from xlt import BottleneckConfig, Plan, PromptConfig, XLTModel
from xlt.batching import pad
from xlt.languages import PAPER_LANGUAGES
from xlt.matrix.configurations import PAPER_CONFIGURATIONS, Configuration

STARTED = time.perf_counter()
PAD, EOS, UNK = 0, 1, 2
TASK = "qa"
PROMPT_TOKENS = 50  # the paper's prompt length, language and task alike
MT5_VOCAB = 250_112
NOISE = 0.02  # on every representation weight: each plan must change the output for the identity check to mean anything


@dataclass(frozen=True)
class Row:
    target: str
    ids: np.ndarray


@dataclass
class Side:
    """One side's time and work on one configuration (or, for (A+), on all of them)."""

    seconds: float = 0.0
    calls: int = 0
    rows: int = 0
    input_tokens: int = 0  # real tokens of the input, soft-prompt positions excluded
    padded_tokens: int = 0  # batch rows × batch width, summed over batches

    def add(self, other: Side) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)


# model, tokenizer, data ------------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (shared.device_name gives the thread count, not the model)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mt5_small(vocab: int, layers: int) -> MT5ForConditionalGeneration:
    config = MT5Config(
        vocab_size=vocab, d_model=512, d_kv=64, d_ff=1024, num_layers=layers, num_decoder_layers=layers,
        num_heads=6, feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=PAD,
        eos_token_id=EOS, decoder_start_token_id=PAD,
    )  # fmt: skip
    model = MT5ForConditionalGeneration(config).eval()
    # Hugging Face's T5 initialisation makes an untrained model answer the pad id at every step, whatever the
    # input: every plan would then generate the same ids and the identity check would prove nothing. Small
    # normal weights make the greedy choice depend on the input (and on each representation).
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.05)
    return model


def pseudo_words(rng: np.random.Generator, count: int, taken: set[str]) -> list[str]:
    letters = np.array(list(string.ascii_lowercase))
    out: list[str] = []
    while len(out) < count:
        word = "".join(rng.choice(letters, size=int(rng.integers(2, 10))))
        if word not in taken:
            taken.add(word)
            out.append(word)
    return out


def word_tokenizer(
    languages: Sequence[str], words_per_language: int, rng: np.random.Generator
) -> tuple[PreTrainedTokenizerFast, dict[str, list[str]]]:
    """A word-level tokenizer over random pseudo-words, each language a slice of its own, ``</s>`` appended as
    mT5's tokenizer does; ids 0-2 are mT5's pad, eos and unk."""
    taken = {"question", "context", ":", "?"}
    lexicon = {code: pseudo_words(rng, words_per_language, taken) for code in languages}
    vocab = {"<pad>": PAD, "</s>": EOS, "<unk>": UNK}
    for word in ["question", "context", ":", "?", *(w for words in lexicon.values() for w in words)]:
        vocab[word] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", EOS)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    return fast, lexicon


def qa_rows(
    tokenizer: PreTrainedTokenizerFast,
    lexicon: dict[str, list[str]],
    per_target: int,
    lengths: tuple[int, int],
    rng: np.random.Generator,
) -> list[Row]:
    """``question : … ? context : …`` of ``lengths`` tokens (with ``</s>``), drawn uniformly per row."""
    rows = []
    for code, words in lexicon.items():
        for _ in range(per_target):
            total = int(rng.integers(lengths[0], lengths[1] + 1))
            body = total - 6  # the four markers, "?" and </s>
            question = min(int(rng.integers(4, 16)), body - 1)
            picked = [words[int(i)] for i in rng.integers(0, len(words), size=body)]
            text = " ".join(["question", ":", *picked[:question], "?", "context", ":", *picked[question:]])
            ids = np.asarray(tokenizer(text)["input_ids"], dtype=np.int64)
            assert len(ids) == total and UNK not in ids, (len(ids), total)
            rows.append(Row(code, ids))
    return rows


def build_model(args: argparse.Namespace, device: torch.device) -> tuple[XLTModel, list[Row]]:
    rng = np.random.default_rng(args.seed)
    languages = list(PAPER_LANGUAGES)[: args.languages]
    tokenizer, lexicon = word_tokenizer(languages, args.words_per_language, rng)
    if len(tokenizer) > args.vocab:
        raise SystemExit(f"the tokenizer has {len(tokenizer)} ids, more than --vocab {args.vocab}")
    with torch.random.fork_rng(devices=[]):  # the weights, then the reps' noise, the same run after run
        torch.manual_seed(args.seed)
        base = mt5_small(args.vocab, args.layers).to(device)
        model = XLTModel(base, tokenizer, name="mt5-small-shaped (random)").eval()
        for code in languages:
            model.add_language(code, PromptConfig(num_virtual_tokens=PROMPT_TOKENS, init="vocab"))
            model.add_language(code, BottleneckConfig())
        model.add_task(TASK, PromptConfig(num_virtual_tokens=PROMPT_TOKENS, init="vocab"))
        model.add_task(TASK, BottleneckConfig())
        with torch.no_grad():
            for rep in model.reps.values():
                for p in rep.parameters():
                    p.add_(torch.randn_like(p) * NOISE)
    return model, qa_rows(tokenizer, lexicon, args.examples_per_target, (args.min_length, args.max_length), rng)


# the sides ---------------------------------------------------------------------------------------------------
def task_rep(conf: Configuration, model: XLTModel) -> str | None:
    """The shared task representation of ``conf``: none for zero-shot (the frozen model answers alone)."""
    return f"{TASK}/{conf.task}" if conf.trains_task(model.host) else None


def virtual_tokens(plan: Plan) -> int:
    return PROMPT_TOKENS * sum(name.endswith("/prompt") for name in plan.reps)


@dataclass(frozen=True)
class Batch:
    rows: list[int]  # indices into the side's row list
    ids: torch.Tensor
    mask: torch.Tensor
    plans: list[Plan] | None  # one per row (routed)
    plan: Plan | None  # one for the batch (single-plan)


def make_batches(
    items: list[tuple[Row, Plan]], size: int, device: torch.device, routed: bool
) -> tuple[list[Batch], Side]:
    """``routed``: all items sorted by length in shared batches; else per target (and plan), each sorted by
    length, one plan a batch. Sorting is stable, so equal lengths keep their order."""
    if routed:
        streams = [list(range(len(items)))]
    else:
        keys: dict[tuple[str, Plan], list[int]] = {}
        for i, (row, plan) in enumerate(items):
            keys.setdefault((row.target, plan), []).append(i)
        streams = list(keys.values())
    batches, work = [], Side()
    for stream in streams:
        # by assembled width (input + soft-prompt positions): mixed configurations would otherwise put a row
        # without prompts beside one with 100 prompt positions, and pad it to that width
        order = sorted(stream, key=lambda i: len(items[i][0].ids) + virtual_tokens(items[i][1]))
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            ids, mask = pad([items[i][0].ids for i in chunk], PAD)
            plans = [items[i][1] for i in chunk]
            batches.append(
                Batch(chunk, ids.to(device), mask.to(device), plans if routed else None, None if routed else plans[0])
            )
            work.add(Side(0.0, 1, len(chunk), int(mask.sum()), mask.numel()))
    return batches, work


def run_batches(
    model: XLTModel, batches: list[Batch], count: int, new_tokens: int, device: torch.device
) -> tuple[list[torch.Tensor | None], float]:
    out: list[torch.Tensor | None] = [None] * count
    t0 = clock(device)
    for b in batches:
        route: dict[str, Any] = {"plans": b.plans} if b.plans is not None else {"plan": b.plan}
        ids = model.generate(
            b.ids,
            b.mask,
            **route,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,  # equal work: no row stops early on an end-of-sequence token
            do_sample=False,
            num_beams=1,
            pad_token_id=PAD,
        )
        for i, row in zip(b.rows, ids, strict=True):
            out[i] = row
    seconds = clock(device) - t0
    return out, seconds


def differing(got: list[torch.Tensor | None], want: list[torch.Tensor | None], new: int) -> int:
    """Rows whose generated ids differ (counted rather than raised at once, so a run still prints its timings;
    main exits non-zero if any row differs)."""
    bad = 0
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g is not None and w is not None, f"row {i} was not generated"
        # mT5 returns the decoder start token and then the new tokens: exactly ``new`` of them on every side
        assert g.shape[0] == w.shape[0] == new + 1, (i, g.shape, w.shape)
        bad += not torch.equal(g.cpu(), w.cpu())
    return bad


# report ------------------------------------------------------------------------------------------------------
def rate(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else float("nan")


def table(results: list[dict[str, Any]], new_tokens: int) -> str:
    head = (
        "| configuration | rows | (A) routed: calls, s | (B) per target: calls, s | B/A | (A) gen. tok/s | "
        "(B) gen. tok/s | (A) input tok/s | (B) input tok/s | padding (A / B) | identical |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        a, b = r["routed"], r["per_target"]
        gen = a["rows"] * new_tokens
        lines.append(
            f"| {r['configuration']} | {a['rows']} | {a['calls']}, {a['seconds']:.2f} | "
            f"{b['calls']}, {b['seconds']:.2f} | **{b['seconds'] / a['seconds']:.2f}×** | "
            f"{rate(gen, a['seconds']):.1f} | {rate(gen, b['seconds']):.1f} | "
            f"{rate(a['input_tokens'], a['seconds']):.0f} | {rate(b['input_tokens'], b['seconds']):.0f} | "
            f"{padding(a):.0%} / {padding(b):.0%} | {'yes' if r['identical'] else 'NO'} |"
        )
    return "\n".join(lines)


def padding(side: dict[str, Any]) -> float:
    return 1 - side["input_tokens"] / side["padded_tokens"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples-per-target", type=int, default=16, help="rows per target language")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per generate call, on every side")
    parser.add_argument("--max-new-tokens", type=int, default=8, help="tokens every row generates (exactly)")
    parser.add_argument("--min-length", type=int, default=20, help="shortest input, tokens with </s>")
    parser.add_argument("--max-length", type=int, default=120, help="longest input, tokens with </s>")
    parser.add_argument("--languages", type=int, default=16, help="targets, the first of the paper's 16")
    parser.add_argument("--layers", type=int, default=8, help="encoder and decoder layers (mT5-small: 8)")
    parser.add_argument("--vocab", type=int, default=MT5_VOCAB, help="vocabulary size (mT5: %(default)s)")
    parser.add_argument("--words-per-language", type=int, default=1500, help="pseudo-words in each language")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (0: torch's own choice); 1 by default, as training.py: on a machine shared with "
        "other jobs, two OpenMP threads per process on two cores make the timings scatter",
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device (default: %(default)s)"
    )
    parser.add_argument("--no-mixed", action="store_true", help="skip (A+), all configurations routed together")
    parser.add_argument(
        "--small", action="store_true", help="smoke run: 2 layers, vocab 32k, 4 targets of 2 rows up to 60 tokens"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON to OUT")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.small:  # every code path once on a small model: a smoke run, not a measurement
        args.layers, args.vocab, args.examples_per_target, args.max_new_tokens = 2, 32_128, 2, 4
        args.languages, args.words_per_language, args.max_length = 4, 500, 60
    if not 7 <= args.min_length <= args.max_length:
        raise SystemExit("--min-length must be at least 7 (the QA markers) and at most --max-length")
    device = pick_device(args.device)
    load_before = os.getloadavg()[0]
    model, rows = build_model(args, device)
    new = args.max_new_tokens
    configurations = list(PAPER_CONFIGURATIONS)

    def items(conf: Configuration) -> list[tuple[Row, Plan]]:
        rep = task_rep(conf, model)
        return [(row, conf.plan(row.target, rep)) for row in rows]

    with torch.inference_mode():
        # warm-up: one batch of each side under the widest plan (both prompts), untimed
        widest = items(configurations[-1])
        for routed in (True, False):
            batches, _ = make_batches(widest, args.batch_size, device, routed)
            run_batches(model, batches[:1], len(widest), new, device)

        results: list[dict[str, Any]] = []
        outputs: dict[str, list[torch.Tensor | None]] = {}
        for n, conf in enumerate(configurations):
            conf_items = items(conf)
            sides: dict[bool, tuple[list[Batch], Side]] = {
                routed: make_batches(conf_items, args.batch_size, device, routed) for routed in (True, False)
            }
            got: dict[bool, list[torch.Tensor | None]] = {}
            for routed in (True, False) if n % 2 == 0 else (False, True):  # alternate: load drifts hit both
                batches, work = sides[routed]
                got[routed], work.seconds = run_batches(model, batches, len(conf_items), new, device)
            bad = differing(got[True], got[False], new)
            outputs[conf.name] = got[True]
            results.append(
                {
                    "configuration": conf.name,
                    "routed": asdict(sides[True][1]),
                    "per_target": asdict(sides[False][1]),
                    "identical": bad == 0,
                    "rows_differing": bad,
                }
            )
            a, b = sides[True][1], sides[False][1]
            print(f"  {conf.name}: routed {a.seconds:.2f} s, per target {b.seconds:.2f} s", flush=True)

        mixed: dict[str, Any] | None = None
        if not args.no_mixed:
            all_items = [it for conf in configurations for it in items(conf)]
            batches, work = make_batches(all_items, args.batch_size, device, routed=True)
            got_all, work.seconds = run_batches(model, batches, len(all_items), new, device)
            want = [o for conf in configurations for o in outputs[conf.name]]
            mixed = {**asdict(work), "rows_differing": differing(got_all, want, new)}

    zero = outputs[configurations[0].name]
    changed = {
        conf.name: sum(not torch.equal(x, z) for x, z in zip(outputs[conf.name], zero, strict=True))  # type: ignore[arg-type]
        for conf in configurations[1:]
    }
    total_a, total_b = Side(), Side()
    for r in results:
        total_a.add(Side(**r["routed"]))
        total_b.add(Side(**r["per_target"]))
    bad_total = sum(r["rows_differing"] for r in results)
    totals = {
        "configuration": "*all 7*",
        "routed": asdict(total_a),
        "per_target": asdict(total_b),
        "identical": bad_total == 0,
        "rows_differing": bad_total,
    }
    elapsed = time.perf_counter() - STARTED

    vocab = "mT5's 250,112" if args.vocab == MT5_VOCAB else f"{args.vocab:,} (smaller than mT5's 250,112)"
    lengths = [len(r.ids) for r in rows]
    print()
    print(table([*results, totals], new))
    print()
    if mixed is not None:
        m = mixed
        print(
            f"(A+) all 7 configurations routed together: {m['calls']} calls, {m['seconds']:.2f} s "
            f"({total_b.seconds / m['seconds']:.2f}× faster than (B), {total_a.seconds / m['seconds']:.2f}× than (A)); "
            f"{rate(m['rows'] * new, m['seconds']):.1f} generated tok/s, padding {padding(m):.0%}; "
            + ("ids identical to (A) and (B)." if not m["rows_differing"] else f"{m['rows_differing']} rows DIFFER.")
        )
    print(
        f"Rows whose ids differ from the same row with no representation (zero-shot): "
        f"{', '.join(f'{k} {v}/{len(rows)}' for k, v in changed.items())}."
    )
    print(
        f"Model: mT5-small shape, {args.layers}+{args.layers} layers, vocabulary {vocab}, random weights; "
        f"{len(model.reps)} representations ({args.languages} languages × language prompt of {PROMPT_TOKENS} tokens "
        f"and language adapter, reduction 16; task prompt of {PROMPT_TOKENS} tokens and task adapter)."
    )
    print(
        f"Data: {args.examples_per_target} rows per target × {args.languages} targets = {len(rows)} rows per "
        f"configuration, {min(lengths)}-{max(lengths)} tokens (mean {np.mean(lengths):.0f}); batches of "
        f"{args.batch_size}; greedy, exactly {new} new tokens per row; "
        f"{'small smoke run; ' if args.small else ''}total {elapsed:.0f} s."
    )
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, device {device_name(device)}, torch threads "
        f"{torch.get_num_threads()}, load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after; "
        f"torch {torch.__version__}, transformers {transformers.__version__}; fp32."
    )
    if args.json is not None:
        record = {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": {
                "cpu": cpu_model(),
                "cpus": os.cpu_count(),
                "device": device_name(device),
                "threads": torch.get_num_threads(),
                "load_before": load_before,
                "load_after": os.getloadavg()[0],
            },
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "rows_per_configuration": len(rows),
            "max_new_tokens": new,
            "configurations": results,
            "all": totals,
            "all_configurations_routed_together": mixed,
            "rows_changed_by_representations": changed,
            "seconds_total": elapsed,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    if bad_total or (mixed is not None and mixed["rows_differing"]):
        raise SystemExit("generated ids differ between the sides (see the table)")


if __name__ == "__main__":
    main()
