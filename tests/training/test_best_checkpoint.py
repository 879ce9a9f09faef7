"""The best evaluation's weights are what a run saves, for every kind and both roles (the reference code never
restores them for prompts); early stopping stops, and stays stopped when the run is resumed."""

from __future__ import annotations

import json

import pytest
import torch
import training_helpers as th

import xlt.training.language as language_module
import xlt.training.task as task_module
from xlt import PromptConfig
from xlt.training.corpora import CorpusConfig
from xlt.training.language import LanguageRun, train_language
from xlt.training.lm_objective import ObjectiveConfig
from xlt.training.loop import train
from xlt.training.task import TaskRun, train_task

KINDS = ["prompt", "bottleneck", "lora"]


class Scripted:
    """An evaluation that returns the given scores in turn and keeps the rep's weights at each call."""

    def __init__(self, model, name, key, scores):
        self.model, self.name, self.key, self.scores = model, name, key, list(scores)
        self.snapshots: list[dict[str, torch.Tensor]] = []

    def __call__(self, *args, **kwargs):
        rep = self.model.rep(self.name)
        self.snapshots.append({k: v.detach().clone() for k, v in rep.state_dict().items()})
        return {self.key: self.scores[len(self.snapshots) - 1]}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


@pytest.mark.parametrize("kind", KINDS)
def test_language_run_saves_the_best_evaluation(kind, tmp_path, monkeypatch):
    model = th.model("gpt2")
    scripted = Scripted(model, f"sk/{kind}", "loss", [3.0, 1.0, 2.0, 4.0])  # best: the 2nd evaluation
    monkeypatch.setattr(language_module, "evaluate_loss", scripted)
    run = LanguageRun(
        language="sk",
        kind=kind,
        corpus=CorpusConfig(files=[str(th.lm_corpus(tmp_path / "sk.txt"))], validation_fraction=0.05),
        output_dir=tmp_path / "run",
        rep=th.rep_options(kind),
        objective=ObjectiveConfig(max_length=16),
        train=th.quick(steps=8, eval_every=2, lr=0.05 if kind != "prompt" else 0.3),
    )
    rep_dir = train_language(model, run, log=th.silent)
    assert len(scripted.snapshots) == 4
    saved = th.rep_tensors(rep_dir)
    in_bank = model.rep(f"sk/{kind}").state_dict()
    assert not same(scripted.snapshots[1], scripted.snapshots[3])  # the weights did move after the best step
    for weights in (saved, in_bank):
        assert same(dict(weights), scripted.snapshots[1])
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["best_step"] == 4 and result["best"] == {"loss": 1.0, "step": 4}
    assert [h["loss"] for h in result["history"]] == [3.0, 1.0, 2.0, 4.0]


@pytest.mark.parametrize("kind", KINDS)
def test_task_run_saves_the_best_evaluation_with_its_head(kind, tmp_path, monkeypatch):
    model = th.model("bert")
    model.add_language("en", PromptConfig(num_virtual_tokens=2, init="vocab"))
    scripted = Scripted(model, f"t/{kind}", "accuracy", [0.5, 0.9, 0.7, 0.6])  # accuracy: higher is better
    monkeypatch.setattr(task_module, "dev_score", scripted)
    train_file, dev_file = th.task_files(tmp_path, train=40, dev=8)
    run = TaskRun(
        task="t",
        kind=kind,
        train_file=train_file,
        dev_file=dev_file,
        output_dir=tmp_path / "run",
        language_rep="en/prompt",
        max_length=16,
        rep=th.rep_options(kind),
        train=th.quick(steps=8, eval_every=2, lr=0.05 if kind != "prompt" else 0.3),
    )
    train_task(model, run, log=th.silent)
    best = scripted.snapshots[1]
    assert any(k.startswith("head.") for k in best)  # the head is part of what is restored
    assert not same(best, scripted.snapshots[3])
    assert same(dict(model.rep(f"t/{kind}").state_dict()), best)
    assert same(th.rep_tensors(tmp_path / "run" / "rep"), best)
    assert json.loads((tmp_path / "run" / "result.json").read_text())["best_step"] == 4


def loop_setup(tmp_path, scores):
    """loop.train directly: a gpt2 language adapter, a scripted evaluation and a log."""
    from xlt.plan import Plan
    from xlt.reps import BottleneckConfig
    from xlt.training.data import micro_batches
    from xlt.training.lm_batches import CausalLM

    model = th.model("gpt2")
    rep = model.add_language("sk", BottleneckConfig())
    plan = Plan(("sk/bottleneck",))

    def examples():
        g = torch.Generator().manual_seed(0)
        while True:
            yield torch.randint(4, 100, (12,), generator=g).tolist()

    def loss_fn(module, batch):
        out = module.model(batch["input_ids"], batch["attention_mask"], plan=plan, labels=batch["labels"])
        return out.loss, int(batch["attention_mask"].sum())

    scripted = Scripted(model, "sk/bottleneck", "loss", scores)
    lines: list[str] = []
    kwargs = {
        "model": model,
        "trainable": {"sk/bottleneck": rep},
        "kind": "bottleneck",
        "loss_fn": loss_fn,
        "batches": micro_batches(examples, CausalLM(pad_id=0), 4, 0),
        "evaluate": scripted,
        "output_dir": tmp_path / "run",
        "log": lines.append,
    }
    return kwargs, scripted, lines


def test_early_stopping_stops_restores_the_best_and_stays_stopped(tmp_path):
    config = th.quick(steps=40, eval_every=2, checkpoint_every=10, early_stopping_patience=2, lr=0.05)
    kwargs, scripted, lines = loop_setup(tmp_path, [3.0, 1.0, 2.0, 4.0, 0.5, 0.1])
    result = train(config=config, **kwargs)
    assert result.stopped_early and result.steps == 8 and result.best_step == 4
    assert len(scripted.snapshots) == 4  # two evaluations without improvement, then no more training
    assert same(dict(kwargs["trainable"]["sk/bottleneck"].state_dict()), scripted.snapshots[1])
    trainer = json.loads((tmp_path / "run" / "checkpoint" / "trainer.json").read_text())
    assert trainer["step"] == 8 and trainer["stopped_early"] is True  # a checkpoint at the stop
    assert "step 8: loss 4.0000" in lines
    # killed after that checkpoint and run again: it resumes stopped, with the same result
    again, scripted_again, lines_again = loop_setup(tmp_path, [9.0])
    result_again = train(config=config, **again)
    assert "resuming from step 8" in lines_again[0]
    assert scripted_again.snapshots == []  # no further training or evaluation
    assert result_again.stopped_early and result_again.steps == 8 and result_again.best_step == 4
    assert same(dict(again["trainable"]["sk/bottleneck"].state_dict()), scripted.snapshots[1])


def test_without_evaluation_the_last_weights_are_kept(tmp_path):
    config = th.quick(steps=4, eval_every=0, lr=0.05)
    kwargs, scripted, _ = loop_setup(tmp_path, [])
    before = {k: v.clone() for k, v in kwargs["trainable"]["sk/bottleneck"].state_dict().items()}
    result = train(config=config, **kwargs)
    assert result.best_step is None and result.history == [] and scripted.snapshots == []
    assert not same(before, dict(kwargs["trainable"]["sk/bottleneck"].state_dict()))
