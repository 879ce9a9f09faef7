"""The output directory rule: a finished run is reused without training, a directory holding another run or
anything else is refused (naming what differs), and errors leave nothing half-written behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import training_helpers as th

import xlt.training.language as language_module
import xlt.training.task as task_module
from processes import dead_pid, leftover, own
from xlt import PromptConfig
from xlt.errors import XLTError
from xlt.formats.atomic import OWNER_MARK
from xlt.training.corpora import CorpusConfig, CorpusError
from xlt.training.language import LanguageRun, train_language
from xlt.training.lm_objective import ObjectiveConfig
from xlt.training.run import claim_output_dir
from xlt.training.task import TaskRun, train_task


def snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``directory`` with its modification time and content."""
    return {
        str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def language_run(tmp_path: Path, out: Path, **train) -> LanguageRun:
    corpus = tmp_path / "sk.txt"
    if not corpus.exists():
        th.lm_corpus(corpus)
    return LanguageRun(
        language="sk",
        kind="prompt",
        corpus=CorpusConfig(files=[str(corpus)], validation_fraction=0.05),
        output_dir=out,
        rep=th.rep_options("prompt"),
        objective=ObjectiveConfig(max_length=16),
        train=th.quick(**{"steps": 4, "eval_every": 2, "checkpoint_every": 2, **train}),
    )


def no_training(**kwargs):
    raise AssertionError("a finished run was trained again")


def test_a_finished_run_is_reused_without_training(tmp_path, monkeypatch):
    out = tmp_path / "run"
    rep_dir = train_language(th.model("gpt2"), language_run(tmp_path, out), log=th.silent)
    before = snapshot(out)
    recorded = json.loads((out / "run.json").read_text())
    assert recorded["config"]["run"]["train"]["steps"] == 4
    assert {"python", "torch", "transformers", "accelerate"} <= set(recorded["versions"])
    assert "git_revision" in recorded

    monkeypatch.setattr(language_module, "train", no_training)
    lines: list[str] = []
    model = th.model("gpt2")
    # display options (progress bar, TensorBoard, log interval) may change between the two calls
    again = language_run(tmp_path, out, progress=True, tensorboard=True, log_every=3)
    assert train_language(model, again, log=lines.append) == rep_dir
    assert lines == [f"sk/prompt: already trained in {out}, reusing it"]
    assert "sk/prompt" in model.reps  # loaded from the run directory
    saved, loaded = th.rep_tensors(rep_dir), model.rep("sk/prompt").state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert snapshot(out) == before  # untouched


def test_a_directory_holding_another_run_is_refused(tmp_path):
    out = tmp_path / "run"
    train_language(th.model("gpt2"), language_run(tmp_path, out), log=th.silent)
    before = snapshot(out)
    with pytest.raises(XLTError) as excinfo:
        train_language(th.model("gpt2"), language_run(tmp_path, out, lr=0.123), log=th.silent)
    message = str(excinfo.value)
    assert "holds a different run" in message and "run.train.lr" in message and "choose another output_dir" in message
    assert "\n" not in message
    assert snapshot(out) == before
    with pytest.raises(XLTError, match=r"run\.objective\.max_length, run\.train\.steps"):
        run = language_run(tmp_path, out, steps=5)
        run.objective = ObjectiveConfig(max_length=17)
        train_language(th.model("gpt2"), run, log=th.silent)
    assert snapshot(out) == before


def test_an_unrelated_directory_is_refused(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    with pytest.raises(XLTError, match="is not empty and holds no xlt run"):
        train_language(th.model("gpt2"), language_run(tmp_path, out), log=th.silent)
    assert snapshot(out) == {"notes.txt": snapshot(out)["notes.txt"]} and (out / "notes.txt").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    train_language(th.model("gpt2"), language_run(tmp_path, empty), log=th.silent)  # an empty one is fine
    assert (empty / "result.json").is_file()


def test_bad_input_leaves_nothing_behind(tmp_path):
    out = tmp_path / "run"
    run = language_run(tmp_path, out)
    run.corpus = CorpusConfig(files=[str(tmp_path / "missing.txt")])
    with pytest.raises(CorpusError, match="does not exist"):
        train_language(th.model("gpt2"), run, log=th.silent)
    assert not out.exists()
    run = language_run(tmp_path, out)  # an encoder without an LM head
    with pytest.raises(XLTError, match="LM head"):
        train_language(th.model("bert"), run, log=th.silent)
    assert not out.exists()
    train_file, dev_file = th.task_files(tmp_path / "task")
    dev_file.write_text(json.dumps({"text": "w5", "label": "w3"}) + "\n")
    model = th.model("gpt2")
    task = TaskRun(task="t", kind="lora", train_file=train_file, dev_file=dev_file, output_dir=out)
    with pytest.raises(XLTError, match="labels"):
        train_task(model, task, log=th.silent)
    assert not out.exists()


def test_an_error_during_training_leaves_a_resumable_run_and_no_half_written_files(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = language_module.train
    calls = [0]

    def failing(**kwargs):
        loss_fn = kwargs["loss_fn"]

        def loss(module, batch):
            calls[0] += 1
            if calls[0] == 3:  # after the checkpoint at step 2
                raise RuntimeError("disk on fire")
            return loss_fn(module, batch)

        return real(**{**kwargs, "loss_fn": loss})

    monkeypatch.setattr(language_module, "train", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train_language(th.model("gpt2"), language_run(tmp_path, out), log=th.silent)
    names = {p.name for p in out.iterdir()} - {OWNER_MARK}
    assert names == {"run.json", "checkpoint"}  # no rep, no result, no temporary directory
    assert json.loads((out / "checkpoint" / "trainer.json").read_text())["step"] == 2
    monkeypatch.setattr(language_module, "train", real)
    lines: list[str] = []
    train_language(th.model("gpt2"), language_run(tmp_path, out), log=lines.append)
    assert any(line.startswith("resuming from step 2") for line in lines)
    assert {p.name for p in out.iterdir()} == {OWNER_MARK, "run.json", "checkpoint", "rep", "result.json"}


def test_a_claimed_run_that_never_started_may_be_taken_over(tmp_path):
    out = tmp_path / "run"
    assert claim_output_dir(out, {"run": {"lr": 1}}) is False
    assert sorted(p.name for p in out.iterdir()) == [OWNER_MARK, "run.json"]
    # e.g. the corpus failed after the claim: a corrected config may take the directory
    assert claim_output_dir(out, {"run": {"lr": 2}}) is False
    assert json.loads((out / "run.json").read_text())["config"] == {"run": {"lr": 2}}
    (out / "checkpoint").mkdir()  # once it holds work, it is this run's
    with pytest.raises(XLTError, match=r"differs in run\.lr"):
        claim_output_dir(out, {"run": {"lr": 3}})
    assert claim_output_dir(out, {"run": {"lr": 2}}) is False  # same run, not finished
    (out / "result.json").write_text("{}")
    assert claim_output_dir(out, {"run": {"lr": 2}}) is True
    assert claim_output_dir(out, {"run": {"lr": 2, "seed": 5}}, ignore=("seed",)) is True


def task_run(tmp_path: Path, out: Path) -> TaskRun:
    train_file, dev_file = th.task_files(tmp_path / "data", train=20, dev=4)
    return TaskRun(
        task="t",
        kind="prompt",
        train_file=train_file,
        dev_file=dev_file,
        output_dir=out,
        language_rep="en/prompt",
        max_length=16,
        rep=th.rep_options("prompt"),
        train=th.quick(steps=2, eval_every=2),
    )


def with_language(seed: int):
    model = th.model("t5")
    model.add_language("en", PromptConfig(num_virtual_tokens=2, init="vocab", seed=seed))
    return model


def test_a_task_run_is_reused_with_the_same_language_rep_and_refused_with_another(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train_task(with_language(1), task_run(tmp_path, out), log=th.silent)
    monkeypatch.setattr(task_module, "train", no_training)
    lines: list[str] = []
    # the same language rep created again (another creation time, same weights) is the same run
    train_task(with_language(1), task_run(tmp_path, out), log=lines.append)
    assert lines == [f"t/prompt: already trained in {out}, reusing it"]
    with pytest.raises(XLTError, match=r"differs in language_rep\.config\.seed, language_rep\.weights"):
        train_task(with_language(2), task_run(tmp_path, out), log=th.silent)


def test_temporaries_of_a_killed_claim_do_not_block_the_rerun(tmp_path):
    out = tmp_path / "run"
    own(out)
    dead = dead_pid()
    leftover(out, "run.json", dead)  # killed between creating and renaming run.json
    leftover(out, "checkpoint", dead, is_dir=True)  # killed inside an atomic directory save
    assert claim_output_dir(out, {"a": 1}) is False
    assert sorted(p.name for p in out.iterdir()) == [OWNER_MARK, "run.json"]


def test_temporaries_of_a_running_writer_are_kept_and_refused(tmp_path):
    import os

    out = tmp_path / "run"
    out.mkdir()
    leftover(out, "run.json", os.getppid())
    with pytest.raises(XLTError, match="not empty and holds no xlt run"):
        claim_output_dir(out, {"a": 1})
