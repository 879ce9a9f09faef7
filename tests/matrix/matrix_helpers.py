"""A tiny world for matrix tests: a tiny model saved like a hub checkpoint, a task with test sets per language,
corpora per language, and a config that trains everything in seconds."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))

from training_helpers import base, lm_corpus, task_rows, tokenizer, write_jsonl

LANGUAGES = ["en", "de", "sk", "sw"]


def save_model(directory: Path, arch: str = "bert") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model = base(arch)
    model.config._name_or_path = f"tiny-{arch}"
    model.save_pretrained(directory)
    tokenizer().save_pretrained(directory)
    return directory


def world(root: Path, arch: str = "bert", languages: list[str] | None = None) -> dict[str, Any]:
    """Files on disk and the config mapping of a small grid over them."""
    languages = languages or LANGUAGES
    data = root / "data"
    (data / "test").mkdir(parents=True, exist_ok=True)
    write_jsonl(data / "train.jsonl", task_rows(120, 0))
    write_jsonl(data / "dev.jsonl", task_rows(20, 1))
    for i, language in enumerate(languages):
        write_jsonl(data / "test" / f"{language}.jsonl", task_rows(30, 10 + i))
    corpora = {}
    (root / "corpora").mkdir(parents=True, exist_ok=True)
    for i, language in enumerate(languages):
        path = lm_corpus(root / "corpora" / f"{language}.txt", documents=60 + i)
        corpora[language] = {"files": [str(path)]}
    quick = {
        "steps": 4,
        "batch_size": 4,
        "eval_every": 2,
        "checkpoint_every": 2,
        "warmup_steps": 0,
        "early_stopping_patience": None,
        "tensorboard": False,
        "progress": False,
        "log_every": 1,
    }
    return {
        "model": str(save_model(root / "model", arch)),
        "output_dir": str(root / "out"),
        "tasks": {
            "toy": {
                "type": "classification",
                "train": str(data / "train.jsonl"),
                "dev": str(data / "dev.jsonl"),
                "test": str(data / "test" / "{language}.jsonl"),
            }
        },
        "sources": ["en"],
        "targets": list(languages),
        "corpora": corpora,
        "language_training": {
            "train": quick,
            "objective": {"max_length": 16},
            "prompt": {"num_virtual_tokens": 2, "init": "vocab"},
            "validation_segments": 4,
        },
        "task_training": {"train": quick, "prompt": {"num_virtual_tokens": 2, "init": "vocab"}, "max_length": 16},
        "lm_head": {"train": {**quick, "steps": 2}, "objective": {"max_length": 16}, "validation_segments": 4},
        "eval_batch_size": 16,
        "progress": False,
    }


def rows(out: Path) -> list[dict[str, Any]]:
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def shuffled(items: list[Any], seed: int) -> list[Any]:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items
