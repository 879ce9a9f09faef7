"""Small learnable data for every task type, in the words of the tiny tokenizer, written as the task's files."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tiny_models import WORDS

TASK_TYPES = ("qa", "ner", "nli", "checkworthiness", "seq2seq")
NAMES = WORDS[10:60]


def qa_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """The answer is the context's one word of w60-w69, anywhere in a context of 8-40 words (long contexts need
    several windows: the answer may be in any of them)."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        words = rnd.sample(NAMES, rnd.randint(8, 40) if i % 3 else 8)
        at = rnd.randrange(len(words))
        words[at] = WORDS[60 + rnd.randrange(10)]
        context = " ".join(words)
        answer = words[at]
        start = len(" ".join(words[:at])) + (1 if at else 0)
        assert context[start : start + len(answer)] == answer
        rows.append(
            {
                "id": f"q{seed}-{i}",
                "question": "w6 w7",
                "context": context,
                "answers": {"text": [answer], "answer_start": [start]},
            }
        )
    return rows


def ner_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """A person is a word of w60-w64 and one of w65-w69; a location a word of w70-w74."""
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        tokens = rnd.sample(NAMES, 7)
        tags = ["O"] * 7
        at = rnd.randrange(5)
        tokens[at], tokens[at + 1] = WORDS[60 + rnd.randrange(5)], WORDS[65 + rnd.randrange(5)]
        tags[at], tags[at + 1] = "B-PER", "I-PER"
        if rnd.random() < 0.5:
            tokens[6], tags[6] = WORDS[70 + rnd.randrange(5)], "B-LOC"
        rows.append({"tokens": tokens, "ner_tags": tags})
    return rows


def nli_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    labels = ["entailment", "neutral", "contradiction"]
    rows = []
    for _ in range(n):
        label = rnd.randrange(3)
        premise = rnd.sample(NAMES, 5)
        hypothesis = [*rnd.sample(NAMES, 3), f"w{label + 1}"]
        rows.append({"premise": " ".join(premise), "hypothesis": " ".join(hypothesis), "label": labels[label]})
    return rows


def checkworthiness_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        words = rnd.sample(NAMES, 5)
        label = rnd.randrange(2)
        if label:
            words[rnd.randrange(5)] = "w5"
        rows.append({"text": " ".join(words), "label": label})
    return rows


def seq2seq_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """The target is the input reversed."""
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        words = rnd.sample(NAMES, 4)
        rows.append({"input": " ".join(words), "target": " ".join(reversed(words))})
    return rows


ROWS = {
    "qa": qa_rows,
    "ner": ner_rows,
    "nli": nli_rows,
    "checkworthiness": checkworthiness_rows,
    "seq2seq": seq2seq_rows,
}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def task_spec(root: Path, task: str, languages: list[str], train: int = 24, dev: int = 8, test: int = 8) -> dict:
    """Files of ``task`` under ``root/task`` (train and dev in English, a test set per language) and the
    matrix config's spec of them."""
    make = ROWS[task]
    directory = root / task
    write_jsonl(directory / "train.jsonl", make(train, 0))
    write_jsonl(directory / "dev.jsonl", make(dev, 1))
    for i, language in enumerate(languages):
        write_jsonl(directory / "test" / f"{language}.jsonl", make(test, 10 + i))
    return {
        "type": task,
        "train": str(directory / "train.jsonl"),
        "dev": str(directory / "dev.jsonl"),
        "test": str(directory / "test" / "{language}.jsonl"),
    }
