"""An mT5/mt0 checkpoint's own LM head (not tied to its embeddings) stays its own through loading, training,
saving and loading reps, generation and a later ``tie_weights()``; a tied T5 checkpoint stays tied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSeq2SeqLM

from tiny_models import VOCAB, WORDS, tiny_base, tiny_tokenizer
from xlt.loading import load_model
from xlt.model import XLTModel
from xlt.training.corpora import CorpusConfig
from xlt.training.language import LanguageRun, train_language
from xlt.training.lm_objective import ObjectiveConfig
from xlt.training.loop import TrainConfig
from xlt.training.task import TaskRun, train_task

QUICK = {"steps": 3, "batch_size": 4, "eval_every": 0, "checkpoint_every": 0, "progress": False}


def quick() -> TrainConfig:
    return TrainConfig(**QUICK, tensorboard=False, lr=0.3)


def write_checkpoint(directory: Path, arch: str, head: torch.Tensor | None) -> Path:
    """A tiny ``arch`` checkpoint with its tokenizer; ``head``: an LM head of its own, saved beside the embeddings
    with ``"tie_word_embeddings": false`` (transformers 5 writes true for every T5-family config)."""
    base = tiny_base(arch)
    if head is not None:
        base.lm_head.weight = torch.nn.Parameter(head.clone())
    base.save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    if head is not None:
        config_file = directory / "config.json"
        config = json.loads(config_file.read_text())
        config["tie_word_embeddings"] = False
        config_file.write_text(json.dumps(config, indent=2))
        weights = load_file(directory / "model.safetensors")
        if not torch.equal(weights.get("lm_head.weight", torch.empty(0)), head):
            weights["lm_head.weight"] = head.clone()
            save_file(weights, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


@pytest.fixture
def saved_head() -> torch.Tensor:
    return torch.randn(VOCAB, 32, generator=torch.Generator().manual_seed(7))


@pytest.fixture
def mt0_dir(tmp_path: Path, saved_head: torch.Tensor) -> Path:
    directory = write_checkpoint(tmp_path / "tiny-mt0", "mt5", saved_head)
    assert json.loads((directory / "config.json").read_text())["tie_word_embeddings"] is False
    weights = load_file(directory / "model.safetensors")
    assert torch.equal(weights["lm_head.weight"], saved_head)
    assert not torch.equal(weights["shared.weight"], saved_head)
    return directory


def assert_own_head(model: XLTModel, saved_head: torch.Tensor) -> None:
    base = model.base
    head, embeddings = base.get_output_embeddings().weight, base.get_input_embeddings().weight
    assert torch.equal(head.detach().cpu(), saved_head)
    assert head.data_ptr() != embeddings.data_ptr()
    assert base.config.tie_word_embeddings is False


def ids(model: XLTModel, *texts: str) -> tuple[torch.Tensor, torch.Tensor]:
    assert model.tokenizer is not None
    encoded = model.tokenizer(list(texts), return_tensors="pt", padding=True)
    return encoded["input_ids"].to(model.device), encoded["attention_mask"].to(model.device)


def test_the_loaded_head_is_the_checkpoints_own(mt0_dir: Path, saved_head: torch.Tensor) -> None:
    assert_own_head(load_model(str(mt0_dir)), saved_head)


def test_the_head_survives_training_saving_generation_and_tie_weights(
    mt0_dir: Path, saved_head: torch.Tensor, tmp_path: Path
) -> None:
    model = load_model(str(mt0_dir))
    corpus = tmp_path / "sk.txt"
    corpus.write_text("".join(" ".join(WORDS[(i + j) % 40] for j in range(12)) + "\n" for i in range(40)))
    language = LanguageRun(
        language="sk",
        kind="prompt",
        corpus=CorpusConfig(files=[str(corpus)], validation_fraction=0.1),
        output_dir=tmp_path / "language",
        rep={"num_virtual_tokens": 2, "init": "vocab"},
        objective=ObjectiveConfig(max_length=16),
        train=quick(),
    )
    language_dir = train_language(model, language, log=lambda _: None)
    assert_own_head(model, saved_head)

    texts = [" ".join(WORDS[10 + (i * 3 + j) % 30] for j in range(4)) for i in range(16)]
    rows = [{"text": text, "label": WORDS[i % 2]} for i, text in enumerate(texts)]
    data = tmp_path / "task.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    task = TaskRun(
        task="t",
        kind="prompt",
        train_file=data,
        dev_file=data,
        output_dir=tmp_path / "task",
        language_rep="sk/prompt",
        max_length=16,
        rep={"num_virtual_tokens": 2, "init": "vocab"},
        train=quick(),
    )
    task_dir = train_task(model, task, log=lambda _: None)
    assert_own_head(model, saved_head)

    again = load_model(str(mt0_dir))
    again.load_rep(language_dir)
    again.load_rep(task_dir)
    assert_own_head(again, saved_head)
    input_ids, mask = ids(again, "w10 w11 w12", "w13 w14")
    plan = "sk/prompt+t/prompt"
    generated = again.generate(input_ids, mask, plan=plan, max_new_tokens=4, do_sample=False)
    assert_own_head(again, saved_head)

    again.base.tie_weights()  # what resizing, PEFT or dispatch may call: the config says untied, so nothing ties
    assert_own_head(again, saved_head)
    assert torch.equal(again.generate(input_ids, mask, plan=plan, max_new_tokens=4, do_sample=False), generated)


def test_generation_reads_the_checkpoints_head(mt0_dir: Path, saved_head: torch.Tensor) -> None:
    """xlt's generation without reps is the checkpoint's own (transformers loads the differing head untied)."""
    model = load_model(str(mt0_dir), device="cpu")
    reference = AutoModelForSeq2SeqLM.from_pretrained(mt0_dir).eval()
    assert torch.equal(reference.lm_head.weight, saved_head)
    input_ids, mask = ids(model, "w20 w21 w22 w23", "w24")
    with torch.no_grad():
        expected = reference.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=5, do_sample=False)
    assert torch.equal(model.generate(input_ids, mask, max_new_tokens=5, do_sample=False), expected)


def test_a_declared_untied_head_equal_to_the_embeddings_is_a_parameter_of_its_own(tmp_path: Path) -> None:
    """transformers 5 ties a head equal to the embeddings whatever config.json says; transformers 4 does not."""
    torch.manual_seed(0)
    embeddings = tiny_base("mt5").shared.weight.detach().clone()
    directory = write_checkpoint(tmp_path / "equal-head", "mt5", embeddings)
    model = load_model(str(directory), device="cpu")
    assert_own_head(model, embeddings)
    model.base.tie_weights()
    assert_own_head(model, embeddings)


def test_a_tied_checkpoint_stays_tied_and_generates_as_before(tmp_path: Path) -> None:
    directory = write_checkpoint(tmp_path / "tiny-t5", "t5", None)
    assert json.loads((directory / "config.json").read_text()).get("tie_word_embeddings", True) is True
    model = load_model(str(directory), device="cpu")
    base = model.base
    assert base.get_output_embeddings().weight is base.get_input_embeddings().weight
    assert base.config.tie_word_embeddings is True
    reference = AutoModelForSeq2SeqLM.from_pretrained(directory).eval()
    input_ids, mask = ids(model, "w30 w31 w32", "w33 w34 w35 w36")
    with torch.no_grad():
        expected = reference.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=5, do_sample=False)
    assert torch.equal(model.generate(input_ids, mask, max_new_tokens=5, do_sample=False), expected)
    base.tie_weights()
    assert base.get_output_embeddings().weight is base.get_input_embeddings().weight
