"""The README's three recipes, each followed to the letter: a new kind (one module and one registration), a
new task type (one class and one registration) and a new family (one host module and one registration) work
everywhere: the model, training, the matrix and its report."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent / "matrix"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "training"))

import training_helpers as th
from matrix_helpers import world

from xlt import XLTError
from xlt.matrix import load_config, run_matrix
from xlt.reps import RepBody, RepConfig
from xlt.reps.registry import OptimizerDefaults, register_kind, unregister_kind
from xlt.tasks import TaskDataError, TextClassificationTask, register_task_type
from xlt.tasks.data import Example
from xlt.tasks.registry import TASK_TYPES
from xlt.training.corpora import CorpusConfig
from xlt.training.language import LanguageRun, train_language
from xlt.training.lm_objective import ObjectiveConfig
from xlt.training.task import TaskRun, train_task

SILENT = lambda _: None  # noqa: E731


# ---- recipe 1: a kind -------------------------------------------------------------------------------------
# The kind's module: a config, a body on an existing entry point (the input, as a prompt), a builder.


@dataclass
class ShiftConfig(RepConfig):
    kind: ClassVar[str] = "shift"
    size: int = 2
    seed: int = 0


class Shift(RepBody):
    entry: ClassVar = "input"

    def __init__(self, size: int, dim: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.vectors = nn.Parameter(torch.randn(size, dim, generator=generator) * 0.02)

    def forward(self) -> torch.Tensor:
        return self.vectors


@pytest.fixture
def shift_kind() -> Iterator[str]:
    register_kind(
        "shift",
        ShiftConfig,
        lambda config, ctx: Shift(config.size, ctx.hidden_size, config.seed),  # type: ignore[attr-defined]
        optimizer={"fast": OptimizerDefaults("adamw", 1e-2, 0.0), "paper": OptimizerDefaults("adamw", 1e-3, 0.0)},
    )
    yield "shift"
    unregister_kind("shift")


def test_a_new_kind_trains_as_language_and_task_rep(shift_kind, tmp_path):
    model = th.model("gpt2")
    corpus = CorpusConfig(files=[str(th.lm_corpus(tmp_path / "sk.txt", documents=80))], validation_fraction=0.05)
    language = LanguageRun(
        language="sk",
        kind="shift",
        corpus=corpus,
        output_dir=tmp_path / "language",
        rep={"size": 3},
        objective=ObjectiveConfig(max_length=16),
        train=th.quick(steps=4, batch_size=4),
    )
    train_language(model, language, log=SILENT)
    assert model.rep("sk/shift").kind == "shift" and model.rep("sk/shift").config.size == 3
    train_file, dev_file = th.task_files(tmp_path, train=40, dev=8)
    run = TaskRun("t", "shift", train_file, dev_file, tmp_path / "task", source_language="sk", language_rep="sk/shift")
    run.train = th.quick(steps=4, batch_size=4)
    train_task(model, run, log=SILENT)
    assert model.rep("t/shift").kind == "shift"
    loaded = th.model("gpt2")
    loaded.load_rep(tmp_path / "task" / "rep")  # the saved rep loads back through the registry
    assert torch.equal(loaded.rep("t/shift").body.vectors, model.rep("t/shift").body.vectors)


def test_a_new_kind_takes_its_options_and_configurations_in_a_matrix(shift_kind, tmp_path):
    spec = world(tmp_path, "gpt2", ["en", "sk"])
    spec["configurations"] = ["SH+SH", "TP"]
    spec["custom_configurations"] = {"SH+SH": {"language": "shift", "task": "shift"}}
    spec["language_training"]["shift"] = {"size": 3}
    spec["task_training"]["shift"] = {"size": 1}
    result = run_matrix(load_config(spec), log=SILENT)
    assert {(r["configuration"], r["status"]) for r in result} == {("SH+SH", "ok"), ("TP", "ok")}
    config = {r["configuration"]: r["reps"] for r in result if r["target"] == "sk"}
    assert config["SH+SH"]["language"]["name"] == "sk/shift"
    spec["task_training"]["shift"] = {"sise": 1}
    with pytest.raises(XLTError, match=r"task_training\.shift"):
        load_config(spec)


def test_a_kind_without_optimizer_defaults_asks_for_them(tmp_path):
    register_kind("bare", ShiftConfig, lambda config, ctx: Shift(1, ctx.hidden_size, 0))
    try:
        train_file, dev_file = th.task_files(tmp_path, train=20, dev=4)
        run = TaskRun("t", "bare", train_file, dev_file, tmp_path / "a", train=th.quick(steps=1, batch_size=4))
        with pytest.raises(XLTError, match="registers no optimizer defaults"):
            train_task(th.model("gpt2"), run, log=SILENT)
        explicit = th.quick(steps=1, batch_size=4, lr=1e-3)
        explicit.optimizer = "adamw"
        train_task(th.model("gpt2"), TaskRun("t", "bare", train_file, dev_file, tmp_path / "b", train=explicit))
    finally:
        unregister_kind("bare")


def test_a_kind_serves_only_its_roles(tmp_path):
    with pytest.raises(XLTError, match="kind must be one of"):
        train_language(th.model("gpt2"), LanguageRun("sk", "probe", CorpusConfig(files=["x"]), tmp_path / "p"))


# ---- recipe 2: a task type --------------------------------------------------------------------------------
# The task's module: a class that says how a pair of texts is one input, registered as a task type.


class PairTask(TextClassificationTask):
    """Sentence pairs (NLI-like): rows with premise, hypothesis and label."""

    output_type = "pair_classification"

    def __init__(self, name: str, train: str, dev: str, test: str, *, labels: list[str] | None = None) -> None:
        super().__init__(name, train, dev, test, labels=labels, text_field="premise")

    def examples(self, language: str, split: str) -> list[Example]:  # type: ignore[override]
        import json

        path = self.path(language, split)  # type: ignore[arg-type]
        if not path.is_file():
            raise TaskDataError(f"task file {path} does not exist")
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [Example(f"{r['premise']} || {r['hypothesis']}", r["label"]) for r in rows]

    def training_data(self, source: str):  # type: ignore[no-untyped-def]
        from xlt.tasks.data import ClassificationData

        train, dev = self.examples(source, "train"), self.examples(source, "dev")
        return ClassificationData(sorted({e.label for e in train}), train, dev)

    def doc_to_text(self, example: Example) -> str:
        premise, hypothesis = example.text.split(" || ")
        return f"{premise} w30 {hypothesis}"

    def score(self, predictions: Sequence[str | None], references: Sequence[str]) -> dict[str, float]:
        return {"accuracy": sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)}


def pair_files(root: Path, languages: list[str]) -> dict[str, str]:
    import json
    import random

    def rows(n: int, seed: int) -> str:
        rnd = random.Random(seed)
        out = []
        for _ in range(n):
            a, b = rnd.sample(th.WORDS[10:40], 2)
            same = rnd.random() < 0.5
            out.append({"premise": a, "hypothesis": a if same else b, "label": "w1" if same else "w2"})
        return "".join(json.dumps(r) + "\n" for r in out)

    (root / "pairs" / "test").mkdir(parents=True)
    (root / "pairs" / "train.jsonl").write_text(rows(60, 0))
    (root / "pairs" / "dev.jsonl").write_text(rows(10, 1))
    for i, language in enumerate(languages):
        (root / "pairs" / "test" / f"{language}.jsonl").write_text(rows(12, 2 + i))
    return {
        "type": "pairs",
        "train": str(root / "pairs" / "train.jsonl"),
        "dev": str(root / "pairs" / "dev.jsonl"),
        "test": str(root / "pairs" / "test" / "{language}.jsonl"),
    }


@pytest.fixture
def pairs_type() -> Iterator[str]:
    register_task_type("pairs", PairTask)
    yield "pairs"
    del TASK_TYPES["pairs"]


@pytest.mark.parametrize("arch", ["bert", "t5"])
def test_a_new_task_type_trains_and_is_scored_in_a_matrix(pairs_type, arch, tmp_path):
    spec = world(tmp_path, arch, ["en", "sk"])
    spec["tasks"] = {"pairs": pair_files(tmp_path, ["en", "sk"])}
    spec["configurations"] = ["zero-shot", "TA", "SLP+TP"]
    seen: list[str] = []
    original = PairTask.doc_to_text
    PairTask.doc_to_text = lambda self, e: seen.append(e.text) or original(self, e)  # type: ignore[method-assign]
    try:
        result = run_matrix(load_config(spec), log=SILENT)
    finally:
        PairTask.doc_to_text = original  # type: ignore[method-assign]
    assert len(result) == 6 and all(r["status"] == "ok" for r in result), result
    assert all(r["examples"] == 12 and 0 <= r["metrics"]["accuracy"] <= 1 for r in result)
    assert any(" || " in text for text in seen)  # the task, not a loader of its own, formatted every input


# ---- recipe 3: a family -----------------------------------------------------------------------------------
# The family's module: a host that says where representations enter the model, registered for its model types.
# ELECTRA's blocks are laid out as BERT's, so its host inherits the encoder's and names its model type.


def electra_host() -> type:
    from xlt.hosts import EncoderHost

    class ElectraHost(EncoderHost):
        name: ClassVar[str] = "electra"
        model_types: ClassVar[tuple[str, ...]] = ("electra",)

    return ElectraHost


@pytest.fixture
def electra() -> Iterator[type]:
    from xlt.hosts import register_host, unregister_host

    host = register_host(electra_host())
    yield host
    unregister_host(host)


def tiny_electra() -> nn.Module:
    from transformers import ElectraConfig, ElectraModel

    torch.manual_seed(0)
    config = ElectraConfig(
        vocab_size=len(th.tokenizer()),
        embedding_size=16,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    return ElectraModel(config)


def test_a_model_type_without_a_host_is_refused_with_the_supported_ones():
    from xlt import XLTModel
    from xlt.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="model_type 'electra' has no xlt host"):
        XLTModel(tiny_electra(), th.tokenizer())


def test_a_new_family_hosts_every_kind_and_trains(electra, tmp_path):
    from xlt import XLTModel
    from xlt.hosts import register_host
    from xlt.reps import BottleneckConfig, LoRAConfig, PromptConfig

    model = XLTModel(tiny_electra(), th.tokenizer())
    assert model.host.name == "electra"
    model.add_language("sk", PromptConfig(num_virtual_tokens=2, init="vocab"))
    model.add_language("de", BottleneckConfig())
    model.add_language("sw", LoRAConfig())
    ids = torch.tensor([[5, 6, 7]])
    plain = model(ids, torch.ones_like(ids)).hidden_states
    for language in ("sk/prompt", "de/bottleneck", "sw/lora"):
        assert model(ids, torch.ones_like(ids), plan=(language,)).hidden_states.shape[-1] == plain.shape[-1]
    train_file, dev_file = th.task_files(tmp_path, train=40, dev=8)
    run = TaskRun("t", "bottleneck", train_file, dev_file, tmp_path / "task", language_rep="sk/prompt")
    run.train = th.quick(steps=4, batch_size=4)
    train_task(model, run, log=SILENT)
    assert model.rep("t/bottleneck").head is not None
    with pytest.raises(Exception, match="already have a host"):
        register_host(electra_host())


def test_kind_registration_misuse_is_one_error():
    for call, message in (
        (lambda: register_kind("", ShiftConfig, lambda c, x: None), "non-empty string"),
        (lambda: register_kind("x1", ShiftConfig, lambda c, x: None, options_key="train"), "taken by the training"),
        (lambda: register_kind("x2", ShiftConfig, lambda c, x: None, options_key="prompt"), "taken by kind 'prompt'"),
        (lambda: register_kind("x3", ShiftConfig, lambda c, x: None, optimizer=["fast"]), "must map a preset"),
        (lambda: register_kind("x4", ShiftConfig, lambda c, x: None, optimizer={"fast": (1, 2)}), "OptimizerDefaults"),
        (lambda: register_kind("x5", ShiftConfig, lambda c, x: None, optimizer={"turbo": None}), "unknown preset"),
    ):
        with pytest.raises(XLTError, match=message):
            call()
    from xlt.reps import get_kind

    assert hash(get_kind("prompt"))  # a Kind stays hashable


def test_an_unused_kind_with_required_options_leaves_configs_alone(tmp_path):
    @dataclass
    class NeedConfig(RepConfig):
        kind: ClassVar[str] = "need"
        size: int

    register_kind("need", NeedConfig, lambda config, ctx: Shift(1, ctx.hidden_size, 0))
    try:
        spec = world(tmp_path, "gpt2", ["en", "sk"])
        assert load_config(spec).task_training.options("need") == {}
        spec["task_training"]["need"] = {"sise": 1}
        with pytest.raises(XLTError, match=r"task_training\.need"):
            load_config(spec)
    finally:
        unregister_kind("need")


def test_a_task_type_on_the_base_contract_alone_trains(tmp_path):
    """A Task subclass that implements only the abstract methods inherits training_data and record."""
    import json

    from xlt.reps.heads import HeadConfig
    from xlt.tasks import Task

    train_file, dev_file = th.task_files(tmp_path, train=40, dev=8)

    class Minimal(Task):
        name = "minimal"

        def path(self, language, split):  # type: ignore[no-untyped-def]
            return train_file if split == "train" else dev_file

        def examples(self, language, split):  # type: ignore[no-untyped-def]
            from xlt.tasks import load_examples

            return load_examples(self.path(language, split))

        def labels(self, source):  # type: ignore[no-untyped-def]
            return ["w1", "w2"]

        def head(self, source):  # type: ignore[no-untyped-def]
            return HeadConfig("sequence", num_labels=2, labels=["w1", "w2"])

        def parse(self, text, labels):  # type: ignore[no-untyped-def]
            return text.strip() if text.strip() in labels else None

        def score(self, predictions, references):  # type: ignore[no-untyped-def]
            return {"accuracy": sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)}

    run = TaskRun("minimal", "lora", None, None, tmp_path / "run", train=th.quick(steps=2, batch_size=4))
    train_task(th.model("t5"), run, log=SILENT, task=Minimal())
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["config"]["run"]
    assert recorded["train_file"] == str(train_file) and recorded["dev_file"] == str(dev_file)


def test_a_job_that_cannot_reach_its_worker_is_that_jobs_error():
    from concurrent.futures import Future

    from xlt.matrix.executors.processes import _outcome
    from xlt.matrix.jobs import Job

    future: Future = Future()
    future.set_exception(AttributeError("Can't pickle local object 'f.<locals>.Mine'"))
    outcome = _outcome(future, Job("t/en/ta/seed42", None))  # type: ignore[arg-type]
    assert outcome.rep_dir is None and "must be picklable" in (outcome.error or "")


def test_a_file_run_checks_its_labels_and_files(tmp_path, capsys):
    from xlt.cli import main

    train_file, dev_file = th.task_files(tmp_path, train=20, dev=4)
    for labels in ("ab", 5):
        run = TaskRun("t", "lora", train_file, dev_file, tmp_path / "o", labels=labels)  # type: ignore[arg-type]
        with pytest.raises(XLTError, match="labels must be a list"):
            train_task(th.model("t5"), run, log=SILENT)
    with pytest.raises(SystemExit):
        main(["train-task", "--task", "t", "--kind", "lora", "--dev_file", str(dev_file), "--output_dir", "o"])
    expected = "xlt: error: train-task needs --train_file (the labelled training and dev files)\n"
    assert capsys.readouterr().err == expected
