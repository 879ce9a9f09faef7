"""Task data: JSONL / CSV / TSV rows, declared or inferred labels, one-line errors naming the file (and line or
labels) and the fix; how each family sees an example (head, text to text, same plan for training and test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import training_helpers as th

from xlt.errors import XLTError
from xlt.plan import Plan
from xlt.reps import LoRAConfig
from xlt.tasks import TextClassificationTask
from xlt.tasks.data import ClassificationData, Example, TaskDataError, load_examples
from xlt.training.task import TaskFormat, TaskRun, train_task


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((json.dumps(r) if not isinstance(r, str) else r) + "\n" for r in rows))
    return path


def one_line(excinfo, *parts: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


def test_jsonl_csv_tsv_rows(tmp_path):
    a = jsonl(tmp_path / "a.jsonl", [{"text": "x y", "label": "pos"}, "", {"text": "z", "label": 1}])
    assert load_examples(a) == [Example("x y", "pos"), Example("z", "1")]
    (tmp_path / "b.csv").write_text('sentence,gold\n"a, b",neg\nc,pos\n')
    assert load_examples(tmp_path / "b.csv", "sentence", "gold") == [Example("a, b", "neg"), Example("c", "pos")]
    (tmp_path / "c.tsv").write_text("text\tlabel\na b\tneg\n")
    assert load_examples(tmp_path / "c.tsv") == [Example("a b", "neg")]


@pytest.mark.parametrize(
    ("name", "content", "parts"),
    [
        ("a.jsonl", "", ["a.jsonl", "holds no examples"]),
        ("a.jsonl", "\n\n", ["a.jsonl", "holds no examples"]),
        ("a.csv", "text,label\n", ["a.csv", "holds no examples"]),
        ("a.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n', ["a.jsonl:2", "lacks 'text' or 'label'", "label"]),
        ("a.jsonl", '{"label": "x"}\n', ["a.jsonl:1", "lacks 'text' or 'label'"]),
        ("a.jsonl", '{"text": 3, "label": "x"}\n', ["a.jsonl:1", "lacks 'text'"]),
        ("a.jsonl", '{"text": "a", "label": "x"}\n{oops\n', ["a.jsonl:2", "not a JSON line"]),
        ("a.jsonl", '["a", "x"]\n', ["a.jsonl:1", "not a JSON object"]),
        ("a.csv", "text,gold\na,x\n", ["a.csv:2", "lacks 'text' or 'label'"]),
        ("a.tsv", "text\tlabel\na\tx\nb\n", ["a.tsv:3", "lacks 'text' or 'label'"]),
        ("a.txt", "a\n", ["a.txt", "must be .jsonl, .csv or .tsv"]),
    ],
)
def test_bad_task_files(tmp_path, name, content, parts):
    (tmp_path / name).write_text(content)
    with pytest.raises(TaskDataError) as excinfo:
        load_examples(tmp_path / name)
    one_line(excinfo, *parts)


def test_missing_task_file(tmp_path):
    with pytest.raises(TaskDataError) as excinfo:
        load_examples(tmp_path / "nope.jsonl")
    one_line(excinfo, "nope.jsonl", "does not exist")


def test_labels_declared_or_inferred(tmp_path):
    train = jsonl(tmp_path / "train.jsonl", [{"text": "a", "label": "b"}, {"text": "c", "label": "a"}])
    dev = jsonl(tmp_path / "dev.jsonl", [{"text": "d", "label": "a"}])
    assert ClassificationData.from_files(train, dev).labels == ["a", "b"]  # inferred, sorted
    assert ClassificationData.from_files(train, dev, labels=["b", "a", "z"]).labels == ["b", "a", "z"]
    numeric = jsonl(tmp_path / "n.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 1}])
    assert ClassificationData.from_files(numeric, numeric, labels=[0, 1]).labels == ["0", "1"]  # e.g. from YAML


def test_unknown_labels_name_the_file_and_the_labels(tmp_path):
    train = jsonl(tmp_path / "train.jsonl", [{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}])
    dev = jsonl(tmp_path / "dev.jsonl", [{"text": "c", "label": "neutral"}, {"text": "d", "label": "pos"}])
    with pytest.raises(TaskDataError) as excinfo:
        ClassificationData.from_files(train, dev)  # labels inferred from train
    one_line(excinfo, "dev file", str(dev), "['neutral']", "['neg', 'pos']", "labels=")
    with pytest.raises(TaskDataError) as excinfo:
        ClassificationData.from_files(train, train, labels=["pos", "other"])
    one_line(excinfo, "train file", str(train), "['neg']", "labels=")
    with pytest.raises(TaskDataError) as excinfo:
        ClassificationData.from_files(train, dev, labels=["pos", "neg"])
    one_line(excinfo, "dev file", str(dev), "['neutral']")
    single = jsonl(tmp_path / "one.jsonl", [{"text": "a", "label": "pos"}])
    with pytest.raises(TaskDataError, match="at least 2 labels"):
        ClassificationData.from_files(single, single)


def test_train_task_refuses_bad_data_before_claiming_the_output_dir(tmp_path):
    train = jsonl(tmp_path / "train.jsonl", [{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}])
    dev = jsonl(tmp_path / "dev.jsonl", [{"text": "c", "label": "maybe"}])
    out = tmp_path / "run"
    with pytest.raises(TaskDataError, match="maybe"):
        train_task(th.model("t5"), TaskRun(task="t", kind="lora", train_file=train, dev_file=dev, output_dir=out))
    assert not out.exists()
    with pytest.raises(XLTError, match="no rep 'en/prompt'"):
        train_task(
            th.model("t5"),
            TaskRun(task="t", kind="lora", train_file=train, dev_file=train, output_dir=out, language_rep="en/prompt"),
        )
    assert not out.exists()
    with pytest.raises(XLTError, match="kind must be one of"):
        train_task(th.model("t5"), TaskRun(task="t", kind="adapter", train_file=train, dev_file=train, output_dir=out))


ROWS = [Example("w10 w5 w11", "w1"), Example("w12", "w2")]


def formatted(template: str = "{text}") -> TextClassificationTask:
    """A task for formatting only (its files are never read)."""
    return TextClassificationTask("t", "train.jsonl", "dev.jsonl", "test.jsonl", template=template)


def test_task_format_per_family():
    labels = ["w1", "w2"]
    bert = TaskFormat(th.model("bert"), formatted(), labels, 8)
    batch = bert.collate(ROWS)
    assert batch["labels"].tolist() == [0, 1] and batch["input_ids"].shape == (2, 3)
    t5 = TaskFormat(th.model("t5"), formatted(), labels, 8)
    batch = t5.collate(ROWS)
    assert batch["labels"].tolist() == [[5, 1], [6, 1]]  # the label word, then </s>
    assert batch["input_ids"][0].tolist() == [14, 9, 15]  # the source as the tokenizer encodes it
    gpt2 = TaskFormat(th.model("gpt2"), formatted("w20 {text} w21"), labels, 8)
    batch = gpt2.collate(ROWS)
    ids, target = batch["input_ids"], batch["labels"]
    assert ids[0].tolist() == [24, 14, 9, 15, 25, 5, 1]  # source, label word, </s>
    assert target[0].tolist() == [-100] * 5 + [5, 1]  # the loss only on the answer
    assert target[1].tolist() == [-100] * 3 + [6, 1] + [-100] * 2  # padding ignored
    long = TaskFormat(th.model("t5"), formatted(), labels, 4).collate([Example(" ".join(["w9"] * 20), "w1")])
    assert long["input_ids"].shape[1] == 4  # truncated to max_length


def test_predictions_use_the_training_plan():
    model = th.model("t5")
    model.add_task("t", LoRAConfig())
    fmt = TaskFormat(model, formatted(), ["w1", "w2"], 8)
    plan = Plan.of(task="t/lora")
    calls = []
    real = model.generate

    def generate(*args, **kwargs):
        calls.append(kwargs["plan"])
        return real(*args, **kwargs)

    model.generate = generate
    predictions = fmt.predict(ROWS, plan)
    assert calls == [plan] and len(predictions) == 2
    assert all(p in (None, "w1", "w2") for p in predictions)
    assert fmt.task.parse("  W1 ", ["w1", "w2"]) == "w1" and fmt.task.parse("w1 w2", ["w1", "w2"]) is None
    with torch.no_grad():
        assert fmt.collate(ROWS)["labels"].shape == (2, 2)


def test_a_task_prompt_starts_from_the_papers_text_in_the_source_language(tmp_path, monkeypatch):
    import xlt.reps.prompt as prompt_module
    from xlt.tasks import PAPER_INIT_TEXTS as TASK_INIT_TEXTS

    seen = []
    real = prompt_module.init_token_ids

    def spying(config, ctx):
        seen.append((config.init_text, ctx.language_name))
        return real(config, ctx)

    monkeypatch.setattr(prompt_module, "init_token_ids", spying)
    train_file, dev_file = th.task_files(tmp_path, train=8, dev=4)
    for task, language, out in (("nli", "de", "a"), ("sentiment", "sk", "b")):
        run = TaskRun(
            task=task,
            kind="prompt",
            train_file=train_file,
            dev_file=dev_file,
            output_dir=tmp_path / out,
            source_language=language,
            max_length=16,
            rep={"num_virtual_tokens": 4},
            train=th.quick(steps=1, eval_every=0),
        )
        train_task(th.model("t5"), run, log=th.silent)
    assert seen == [
        (TASK_INIT_TEXTS["nli"], "German"),
        ("Classify the sentiment of the text in {language}:", "Slovak"),
    ]


def test_task_runs_are_seeded_whatever_the_global_rng_holds(tmp_path):
    train_file, dev_file = th.task_files(tmp_path, train=16, dev=4)
    saved = []
    for seed in (1, 2):
        model = th.model("bert")
        torch.manual_seed(seed)  # e.g. whatever ran before in the same process
        run = TaskRun(
            task="t",
            kind="bottleneck",
            train_file=train_file,
            dev_file=dev_file,
            output_dir=tmp_path / f"run{seed}",
            max_length=16,
            train=th.quick(steps=2, eval_every=0, lr=0.01),
        )
        saved.append(th.rep_tensors(train_task(model, run, log=th.silent)))
    assert any(k.startswith("head.") for k in saved[0])
    assert all(torch.equal(saved[0][k], saved[1][k]) for k in saved[0])
