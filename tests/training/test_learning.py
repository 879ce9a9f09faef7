"""Every kind x role x family learns: the loss (or the dev loss) of the trained representation falls on a learnable
objective, through ``train_language`` / ``train_task`` and the one training loop."""

from __future__ import annotations

import json

import pytest
import torch
import training_helpers as th

import xlt.training.language as language_module
import xlt.training.task as task_module
from xlt import PromptConfig
from xlt.plan import Plan
from xlt.tasks import TextClassificationTask
from xlt.tasks.data import ClassificationData
from xlt.training.corpora import CorpusConfig
from xlt.training.language import LanguageRun, train_language
from xlt.training.lm_objective import ObjectiveConfig
from xlt.training.task import TaskFormat, TaskRun, train_task

KINDS = ["prompt", "bottleneck", "lora"]
FAMILIES = ["t5", "bert", "gpt2"]
LR = {"prompt": 0.3, "bottleneck": 0.01, "lora": 0.01}


def spy(monkeypatch, module, measure):
    """Wrap the module's ``train`` to measure the model right before and right after the loop ran."""
    real = module.train
    seen = {}

    def wrapped(**kwargs):
        seen["before"] = measure(kwargs)
        result = real(**kwargs)
        seen["after"] = measure(kwargs)
        seen["result"] = result
        return result

    monkeypatch.setattr(module, "train", wrapped)
    return seen


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", KINDS)
def test_language_representation_learns(family, kind, tmp_path, monkeypatch):
    model = th.model(family)
    head = th.lm_head_dir(model, tmp_path / "lm-head") if family == "bert" else None
    seen = spy(monkeypatch, language_module, lambda kwargs: kwargs["evaluate"]()["loss"])
    run = LanguageRun(
        language="sk",
        kind=kind,
        corpus=CorpusConfig(files=[str(th.lm_corpus(tmp_path / "sk.txt"))], validation_fraction=0.05),
        output_dir=tmp_path / "run",
        rep=th.rep_options(kind, tokens=8),
        objective=ObjectiveConfig(max_length=32),
        train=th.quick(steps=30, batch_size=8, eval_every=10, lr=LR[kind]),
        lm_head=head,
    )
    rep_dir = train_language(model, run, log=th.silent)
    history = [h["loss"] for h in seen["result"].history]
    assert len(history) == 3
    assert seen["after"] == pytest.approx(min(history))  # the best evaluation's weights are kept
    assert seen["after"] < seen["before"] * 0.97, (seen["before"], history)
    assert history[-1] < history[0]  # still falling after the first evaluation
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["objective"] == {"t5": "span_corruption", "bert": "masked_lm", "gpt2": "causal_lm"}[family]
    assert result["tokens"] > 0 and result["steps"] == 30
    assert (rep_dir / "xlt_rep.json").is_file()


def dev_loss(model, fmt, plan, rows):
    batch = {k: v.to(model.device) for k, v in fmt.collate(rows).items()}  # training may have moved it to a GPU
    with torch.no_grad():
        out = model(batch["input_ids"], batch["attention_mask"], plan=plan, labels=batch["labels"])
    return float(out.loss)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", KINDS)
def test_task_representation_learns(family, kind, tmp_path, monkeypatch):
    """The task's label is w1 exactly when the word w5 occurs; the source language's (frozen) prompt is active."""
    model = th.model(family)
    model.add_language("en", PromptConfig(num_virtual_tokens=3, init="vocab"))
    language_before = {k: v.clone() for k, v in model.rep("en/prompt").state_dict().items()}
    train_file, dev_file = th.task_files(tmp_path)
    data = ClassificationData.from_files(train_file, dev_file)
    fmt = TaskFormat(model, TextClassificationTask("t", train_file, dev_file, dev_file), data.labels, 32)
    plan = Plan.of(language="en/prompt", task=f"t/{kind}")
    seen = spy(monkeypatch, task_module, lambda kwargs: dev_loss(model, fmt, plan, data.dev))
    steps = 200 if family == "bert" else 60  # the head learns at its own (lower) learning rate
    run = TaskRun(
        task="t",
        kind=kind,
        train_file=train_file,
        dev_file=dev_file,
        output_dir=tmp_path / "run",
        language_rep="en/prompt",
        max_length=32,
        rep=th.rep_options(kind, tokens=8),
        train=th.quick(steps=steps, batch_size=16, eval_every=steps, lr=LR[kind]),
    )
    train_task(model, run, log=th.silent)
    assert seen["after"] < seen["before"] * 0.9, (seen["before"], seen["after"])
    if family == "bert":  # a classification head: the dev accuracy itself is clearly above chance
        assert seen["result"].best["accuracy"] >= 0.7
    language_after = model.rep("en/prompt").state_dict()
    assert all(torch.equal(language_before[k].cpu(), language_after[k].cpu()) for k in language_before)  # stayed frozen
    assert not any(p.requires_grad for p in model.parameters())  # nothing left trainable after the run
