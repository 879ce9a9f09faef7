"""Shared builders of the training tests: tiny models that can learn, corpora, task files, quick configs."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch

from tiny_models import WORDS, tiny_base, tiny_tokenizer
from xlt import XLTModel
from xlt.training.lm_head import MaskedLMHead
from xlt.training.loop import TrainConfig

MASK = "w123"  # the tiny word-level vocabulary has no [MASK]: its last word plays it in masked-LM tests


def tokenizer() -> Any:
    tok = tiny_tokenizer()
    tok.mask_token = MASK
    return tok


def base(arch: str, expressive: bool | None = None) -> Any:
    """``tiny_base(arch)``; BERT and GPT-2 re-initialised at unit scale (``expressive``), since at their
    0.02 init a frozen 2-layer model leaves a soft prompt almost no influence on the output."""
    model = tiny_base(arch)
    if expressive is None:
        expressive = arch in ("bert", "xlm-roberta", "gpt2")
    if expressive:
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.Linear):
                    module.weight.normal_(0, module.in_features**-0.5, generator=g)
                elif isinstance(module, torch.nn.Embedding):
                    module.weight.normal_(0, 1.0, generator=g)
                elif type(module).__name__ == "Conv1D":  # GPT-2's linears
                    module.weight.normal_(0, module.weight.shape[0] ** -0.5, generator=g)
    return model


def model(arch: str, expressive: bool | None = None) -> XLTModel:
    return XLTModel(base(arch, expressive), tokenizer())


def lm_head_dir(xlt_model: XLTModel, directory: Path) -> Path:
    """A (frozen, untrained) masked-LM head on the encoder's own word embeddings, saved as xlt stores one."""
    head = MaskedLMHead(xlt_model.host.input_embeddings(xlt_model.base))
    return head.save(directory, xlt_model.fingerprint)


def lm_corpus(path: Path, documents: int = 400) -> Path:
    """A learnable text: every document is a distinct first word, then an alternating two-word pattern."""
    lines = [WORDS[10 + i % 100] + " " + " ".join(WORDS[(3 * i + j) % 2] for j in range(11)) for i in range(documents)]
    path.write_text("\n".join(lines) + "\n")
    return path


def task_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Label w1 exactly when the word w5 occurs in the text (else w2)."""
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        words = rnd.sample(WORDS[10:60], 5)
        label = rnd.choice(["w1", "w2"])
        if label == "w1":
            words[rnd.randrange(5)] = "w5"
        rows.append({"text": " ".join(words), "label": label})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def task_files(directory: Path, train: int = 300, dev: int = 40) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return (
        write_jsonl(directory / "train.jsonl", task_rows(train, 0)),
        write_jsonl(directory / "dev.jsonl", task_rows(dev, 1)),
    )


def quick(**overrides: Any) -> TrainConfig:
    """A small, silent training config (no progress bar, no TensorBoard) with the given overrides."""
    values: dict[str, Any] = {
        "steps": 6,
        "batch_size": 4,
        "eval_every": 3,
        "checkpoint_every": 0,
        "progress": False,
        "tensorboard": False,
        "log_every": 1,
    }
    values.update(overrides)
    return TrainConfig(**values)


def rep_options(kind: str, tokens: int = 4, **extra: Any) -> dict[str, Any]:
    """A small vocab-initialised soft prompt, or the kind's defaults; ``extra`` options on top."""
    base_options: dict[str, Any] = {"num_virtual_tokens": tokens, "init": "vocab"} if kind == "prompt" else {}
    return {**base_options, **extra}


def silent(_: str) -> None:
    pass


def prompt_run(directory: Path, train: TrainConfig) -> Any:
    """A soft language prompt for Slovak on a small corpus written into ``directory``, trained as ``train`` says."""
    from xlt.training.corpora import CorpusConfig
    from xlt.training.language import LanguageRun
    from xlt.training.lm_objective import ObjectiveConfig

    return LanguageRun(
        language="sk",
        kind="prompt",
        corpus=CorpusConfig(files=[str(lm_corpus(directory / "sk.txt"))], validation_fraction=0.05),
        output_dir=directory / "run",
        rep=rep_options("prompt"),
        objective=ObjectiveConfig(max_length=16),
        train=train,
    )


def language_run(spec: dict[str, Any]) -> tuple[XLTModel, Any]:
    """The model and LanguageRun a JSON ``spec`` describes, built the same way in a test and in a subprocess
    (``run_language.py``): arch, kind, corpus, out, steps, batch_size, gradient_accumulation,
    checkpoint_every, eval_every, lr, rep (options), base_dropout (set on the base's dropout layers)."""
    from xlt.training.corpora import CorpusConfig
    from xlt.training.language import LanguageRun
    from xlt.training.lm_objective import ObjectiveConfig

    xlt_model = model(spec["arch"])
    if spec.get("base_dropout"):
        for module in xlt_model.base.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = spec["base_dropout"]
    run = LanguageRun(
        language="sk",
        kind=spec["kind"],
        corpus=CorpusConfig(files=[spec["corpus"]], validation_fraction=0.05),
        output_dir=Path(spec["out"]),
        rep=spec.get("rep", rep_options(spec["kind"])),
        objective=ObjectiveConfig(max_length=spec.get("max_length", 24)),
        train=quick(
            steps=spec["steps"],
            batch_size=spec.get("batch_size", 4),
            gradient_accumulation=spec.get("gradient_accumulation", 1),
            checkpoint_every=spec.get("checkpoint_every", 0),
            eval_every=spec.get("eval_every", 0),
            lr=spec.get("lr"),
        ),
    )
    return xlt_model, run


def rep_tensors(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(directory) / "rep.safetensors"))


def toy_task_run(directory: Path, name: str, rows: tuple[int, int], train: TrainConfig, **fields: Any) -> Any:
    """A bottleneck run ``toy/{name}`` of the toy task (``task_rows``: ``rows`` = train and dev examples, written
    under ``directory/data``), into ``directory/name``; ``fields`` set the rest of its ``TaskRun``."""
    from xlt.training.task import TaskRun

    train_file, dev_file = task_files(directory / "data", train=rows[0], dev=rows[1])
    return TaskRun(
        task="toy",
        kind="bottleneck",
        train_file=train_file,
        dev_file=dev_file,
        output_dir=directory / name,
        max_length=16,
        train=train,
        name=f"toy/{name}",
        **fields,
    )
