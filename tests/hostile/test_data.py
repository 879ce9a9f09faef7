"""Hostile data and training inputs: every bad task file, corpus or run option is one XLTError (or, through the
command line, exit code 2 and one ``xlt: error:`` line) naming the file, the line and the fix; never a
traceback, never silent acceptance. Tiny models built in code, no hub."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "training"))
sys.path.insert(0, str(HERE.parent / "matrix"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import training_helpers as th  # noqa: E402
from matrix_helpers import world  # noqa: E402

from xlt.cli import main as cli_main  # noqa: E402
from xlt.errors import XLTError  # noqa: E402
from xlt.languages import Language, register_language  # noqa: E402
from xlt.tasks import TaskDataError, build_task, load_examples, unseen_labels  # noqa: E402
from xlt.tasks.data import ClassificationData  # noqa: E402
from xlt.training.corpora import CorpusConfig, CorpusError, documents  # noqa: E402
from xlt.training.language import LanguageRun, train_language  # noqa: E402
from xlt.training.lm_objective import ObjectiveConfig  # noqa: E402
from xlt.training.loop import TrainConfig  # noqa: E402
from xlt.training.task import TaskRun, train_task  # noqa: E402

ROW = b'{"text": "w10 w11", "label": "w1"}\n'
NO_MODEL = ["--model", "/nonexistent/no-model-is-loaded", "--train.steps", "1"]  # refused before loading one
QUICK = th.quick(steps=1, eval_every=0)  # a run that should have been refused ends at once, not after 1000 steps


@pytest.fixture(autouse=True)
def _one_thread():
    from threads import one_torch_thread

    with one_torch_thread():
        yield


def one_line(error: BaseException | str, *parts: str) -> None:
    message = str(error)
    assert "\n" not in message.strip(), message
    for part in parts:
        assert part in message, (part, message)


def raises_on_load(path: Path, *parts: str, **fields: str) -> None:
    with pytest.raises(TaskDataError) as excinfo:
        load_examples(path, **fields)
    one_line(excinfo.value, str(path), *parts)


# ---- encoding ------------------------------------------------------------------------------------------


def test_a_non_utf8_byte_in_a_jsonl_task_file_names_file_and_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(ROW * 2 + b'{"text": "caf\xe9", "label": "w2"}\n' + ROW)
    raises_on_load(path, f"{path}:3", "byte 0xe9", "column 14", "re-save the file as UTF-8")


def test_a_non_utf8_byte_in_a_csv_task_file_names_file_and_line(tmp_path):
    path = tmp_path / "test.csv"
    path.write_bytes(b"text,label\nw10,w1\nw11,w2\n\x93w12\x94,w1\n")
    raises_on_load(path, f"{path}:4", "byte 0x93", "UTF-8")


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_a_non_utf8_byte_in_a_corpus_file_names_file_and_line(tmp_path, suffix):
    path = tmp_path / f"sk{suffix}"
    line = (lambda text: json.dumps({"text": text}).encode()) if suffix == ".jsonl" else str.encode
    path.write_bytes(b"".join(line(f"w{10 + i} w20 w21") + b"\n" for i in range(5)) + b"w30 \xff w31\n")
    with pytest.raises(CorpusError) as excinfo:
        list(documents(CorpusConfig(files=[str(path)]), "train"))
    one_line(excinfo.value, f"{path}:6", "byte 0xff", "re-save the file as UTF-8")


def test_a_utf8_bom_is_read_as_utf8_not_as_part_of_the_first_column(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\nw10,w1\n")
    assert [e.label for e in load_examples(path)] == ["w1"]


# ---- malformed task rows -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        ('{"text": "a", "label": "x"}\n{"text": "b", "label": "y",}\n', [":2", "not a JSON line", "one JSON object"]),
        ('{"text": "a", "label": "x"}\n"just a string"\n', [":2", "not a JSON object but a string"]),
        ('{"text": "a", "label": "x"}\n{"txt": "b", "label": "y"}\n', [":2", "no value for 'text'", "txt, label"]),
        ('{"text": "a", "label": null}\n', [":1", "no value for 'label'", "label_field"]),
        ('{"text": "   ", "label": "x"}\n', [":1", "'text' is empty", "remove the row"]),
        ('{"text": ["a"], "label": "x"}\n', [":1", "'text' is a list, not a string"]),
        ('{"text": "a", "label": 1.0}\n', [":1", "'label' is a number", "string or an integer"]),
        ('{"text": "a", "label": true}\n', [":1", "'label' is a boolean"]),
        ('{"text": "a", "label": ["x", "y"]}\n', [":1", "'label' is a list"]),
        ('{"text": "a", "label": ""}\n', [":1", "'label' is empty"]),
    ],
)
def test_malformed_jsonl_rows_name_file_line_and_fix(tmp_path, content, parts):
    path = tmp_path / "rows.jsonl"
    path.write_text(content)
    raises_on_load(path, *parts)


@pytest.mark.parametrize("content", ["", "\n  \n", "text,label\n"])
def test_an_empty_split_is_refused(tmp_path, content):
    path = tmp_path / ("dev.csv" if content.startswith("text") else "dev.jsonl")
    path.write_text(content)
    raises_on_load(path, "holds no examples")


def test_a_csv_without_the_columns_names_the_header_and_its_columns(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("sentence,gold\n")
    raises_on_load(path, f"{path}:1", "the header (line 1) has no column 'text', 'label'", "sentence, gold")
    path.write_text("sentence,label\nw10,w1\n")
    raises_on_load(path, f"{path}:2", "no column 'text'", "text_field")


def test_a_csv_row_with_an_unquoted_delimiter_is_not_silently_cut(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('text,label\n"w10, w11",w1\n\nw12, w13,w2\n')
    raises_on_load(path, f"{path}:4", "has 3 fields, the header 2", "must be quoted")


def test_a_broken_csv_is_one_error_naming_the_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text,label\nw10,w1\n" + "w11 " * 40_000 + ",w2\n")  # a field beyond csv's size limit
    raises_on_load(path, f"{path}:3", "is not valid CSV", "field larger than field limit")


def test_declared_labels_must_be_distinct_and_there_must_be_two(tmp_path):
    train = th.write_jsonl(tmp_path / "train.jsonl", [{"text": "w10", "label": "w1"}])
    with pytest.raises(TaskDataError) as excinfo:
        ClassificationData.from_files(train, train, labels=["w1", "w2", "w1"])
    one_line(excinfo.value, "['w1'] more than once")
    with pytest.raises(TaskDataError) as excinfo:
        ClassificationData.from_files(train, train)
    one_line(excinfo.value, f"train file {train}", "at least 2 labels", "['w1']")


# ---- languages -----------------------------------------------------------------------------------------


def test_train_language_refuses_an_unknown_code_before_anything(tmp_path, capsys):
    corpus = th.lm_corpus(tmp_path / "xx.txt", documents=10)
    out = tmp_path / "run"
    argv = ["--language", "xx", "--kind", "prompt", "--corpus.files", f'["{corpus}"]', "--output_dir", str(out)]
    with pytest.raises(SystemExit) as excinfo:
        cli_main(["train-language", *argv, *NO_MODEL])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("xlt: error: ") and err.count("\n") == 1
    one_line(err, "unknown language code 'xx'", "known: ar, bg", "register_language")
    assert not out.exists()


def test_train_task_refuses_an_unknown_source_language(tmp_path, capsys):
    train, dev = th.task_files(tmp_path, train=8, dev=4)
    argv = ["--task", "t", "--kind", "lora", "--train_file", str(train), "--dev_file", str(dev)]
    with pytest.raises(SystemExit) as excinfo:
        cli_main(
            ["train-task", *argv, "--output_dir", str(tmp_path / "run"), "--source_language", "english", *NO_MODEL]
        )
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("xlt: error: ") and err.count("\n") == 1
    one_line(err, "unknown language code 'english'")
    with pytest.raises(XLTError, match="unknown language code 'xx'"):
        train_task(
            th.model("gpt2"), TaskRun("t", "lora", train, dev, tmp_path / "run", source_language="xx", train=QUICK)
        )
    assert not (tmp_path / "run").exists()


def test_a_language_code_that_would_make_a_path_is_refused():
    for code in ("../etc", "a/b", "", ".hidden"):
        with pytest.raises(XLTError) as excinfo:
            register_language(Language(code, "Evil", "Latn"))
        one_line(excinfo.value, "is not valid", "file names")


# ---- patterns and templates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "placeholder"),
    [("data/{language.__class__}.jsonl", "{language.__class__}"), ("data/{lang}.jsonl", "{lang}")],
)
def test_a_path_pattern_fills_only_the_literal_language_placeholder(tmp_path, pattern, placeholder):
    spec = {"type": "classification", "train": "t.jsonl", "dev": "d.jsonl", "test": str(tmp_path / pattern)}
    with pytest.raises(TaskDataError) as excinfo:
        build_task("toy", spec)
    one_line(excinfo.value, "task 'toy' test", placeholder, "only {language} is filled")


def test_a_filled_pattern_opens_exactly_the_language_file(tmp_path):
    (tmp_path / "test").mkdir()
    th.write_jsonl(tmp_path / "test" / "sk.jsonl", [{"text": "w10", "label": "w1"}])
    pattern = str(tmp_path / "test" / "{language}.jsonl")
    task = build_task("toy", {"type": "classification", "train": "t.jsonl", "dev": "d.jsonl", "test": pattern})
    assert task.path("sk", "test") == tmp_path / "test" / "sk.jsonl" and len(task.examples("sk", "test")) == 1
    with pytest.raises(TaskDataError, match="cannot be part of a file name"):
        task.path("../../etc/passwd", "test")


@pytest.mark.parametrize("template", ["{text.__class__}", "query: {txt}", "{text} {0}", "{text!r}", "{text", "none"])
def test_a_template_with_anything_but_text_is_refused_before_training(tmp_path, template):
    train, dev = th.task_files(tmp_path, train=8, dev=4)
    run = TaskRun("t", "lora", train, dev, tmp_path / "run", template=template, max_length=16, train=QUICK)
    with pytest.raises(XLTError) as excinfo:
        train_task(th.model("gpt2"), run)
    one_line(excinfo.value, "template")
    assert not (tmp_path / "run").exists()


# ---- run options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [("log_every", 0), ("eval_every", -1), ("early_stopping_patience", -2), ("lr", -1e-3), ("max_grad_norm", -1.0)],
)
def test_out_of_range_train_options_are_refused(option, value):
    with pytest.raises(XLTError) as excinfo:
        TrainConfig(**{option: value})
    one_line(excinfo.value, option)


def test_corpus_files_given_as_one_string_are_refused(tmp_path):
    with pytest.raises(CorpusError) as excinfo:
        CorpusConfig(files=str(tmp_path / "sk.txt"))  # type: ignore[arg-type]
    one_line(excinfo.value, "files must be a list of paths", "sk.txt")


# ---- what cannot be done is said, and recorded -----------------------------------------------------------


def test_a_corpus_too_small_for_validation_warns_and_records_it(tmp_path):
    corpus = th.lm_corpus(tmp_path / "sk.txt", documents=12)
    run = LanguageRun(
        language="sk",
        kind="prompt",
        corpus=CorpusConfig(files=[str(corpus)], validation_fraction=0.001),
        output_dir=tmp_path / "run",
        rep=th.rep_options("prompt"),
        objective=ObjectiveConfig(max_length=16),
        train=th.quick(steps=2, eval_every=1, early_stopping_patience=3),
        validation_segments=4,
    )
    messages: list[str] = []
    train_language(th.model("gpt2"), run, log=messages.append)
    warnings = json.loads((tmp_path / "run" / "result.json").read_text())["warnings"]
    assert len(warnings) == 1 and f"warning: {warnings[0]}" in messages
    one_line(
        warnings[0],
        f"corpus {corpus}",
        "holds 0 segments of 16 tokens",
        "training segments",
        "4 asked for",
        "evaluation every 1 steps and early stopping (patience 3) are skipped",
        "validation_fraction",
    )


def test_a_dev_label_never_trained_on_is_warned_about_and_recorded(tmp_path):
    rows = [{"text": "w10 w5", "label": "w1"}, {"text": "w11", "label": "w2"}]
    train = th.write_jsonl(tmp_path / "train.jsonl", rows)
    dev = th.write_jsonl(tmp_path / "dev.jsonl", [{"text": "w12", "label": "w3"}, {"text": "w13", "label": "w1"}])
    run = TaskRun(
        "t", "lora", train, dev, tmp_path / "run", labels=["w1", "w2", "w3"], max_length=16, train=th.quick(steps=1)
    )
    messages: list[str] = []
    train_task(th.model("gpt2"), run, log=messages.append)
    warnings = json.loads((tmp_path / "run" / "result.json").read_text())["warnings"]
    assert len(warnings) == 1 and f"warning: {warnings[0]}" in messages
    one_line(warnings[0], f"dev file {dev}", "1 example(s)", "['w3']", f"train file {train}", "scored wrong")


def test_unseen_test_labels_are_counted():
    unseen = unseen_labels(["w1", "w2"], ["w1", "w3", "w4", "w3", "w2"])
    assert unseen.count == 3 and unseen.labels == ["w3", "w4"]
    assert unseen.to_dict() == {"count": 3, "labels": ["w3", "w4"]}
    one_line(unseen.message("sk"), "sk: 3 example(s)", "['w3', 'w4']", "scored wrong")
    assert unseen_labels([0, 1], ["0", "1"]).count == 0  # labels are compared as text, as the loaders read them


# ---- the matrix: a cell with bad data is reported, the rest proceeds --------------------------------------


def test_a_bad_corpus_and_a_bad_test_file_fail_their_cells_only(tmp_path):
    from xlt.matrix import load_config, run_matrix

    spec = world(tmp_path, arch="gpt2", languages=["en", "de", "sk"])
    spec["configurations"] = ["TA", "SLP+TA"]
    corpus = Path(spec["corpora"]["sk"]["files"][0])
    lines = corpus.read_bytes().splitlines(keepends=True)
    corpus.write_bytes(b"".join(lines[:4]) + b"w30 \xfe w31\n" + b"".join(lines[4:]))
    test = tmp_path / "data" / "test" / "de.jsonl"
    lines = test.read_bytes().splitlines(keepends=True)
    test.write_bytes(b"".join(lines[:2]) + b'{"text": "w10 \xc3", "label": "w1"}\n' + b"".join(lines[2:]))
    rows = {(r["target"], r["configuration"]): r for r in run_matrix(load_config(spec), log=th.silent, report=False)}
    assert len(rows) == 6
    failed = {key for key, row in rows.items() if row["status"] != "ok"}
    assert failed == {("sk", "SLP+TA"), ("de", "TA"), ("de", "SLP+TA")}
    one_line(rows[("sk", "SLP+TA")]["error"], f"{corpus}:5", "byte 0xfe", "re-save the file as UTF-8")
    for configuration in ("TA", "SLP+TA"):
        one_line(rows[("de", configuration)]["error"], f"{test}:3", "byte 0xc3", "UTF-8")


# ---- damaged training state --------------------------------------------------------------------------------


def test_a_damaged_checkpoint_is_one_error_and_leaves_no_untrained_rep(tmp_path):
    corpus = th.lm_corpus(tmp_path / "sk.txt", documents=40)
    run = LanguageRun(
        language="sk",
        kind="prompt",
        corpus=CorpusConfig(files=[str(corpus)], validation_fraction=0.2),
        output_dir=tmp_path / "run",
        rep=th.rep_options("prompt"),
        objective=ObjectiveConfig(max_length=16),
        train=th.quick(steps=2, checkpoint_every=1, eval_every=0),
    )
    train_language(th.model("gpt2"), run, log=th.silent)
    (tmp_path / "run" / "result.json").unlink()  # unfinished: the next run resumes from the checkpoint
    (tmp_path / "run" / "checkpoint" / "trainer.json").write_text('{"step": ')
    model = th.model("gpt2")
    with pytest.raises(XLTError) as excinfo:
        train_language(model, run, log=th.silent)
    one_line(excinfo.value, f"checkpoint {tmp_path / 'run' / 'checkpoint'} cannot be resumed", "delete it")
    assert "sk/prompt" not in model.reps


def test_a_damaged_lm_head_is_one_error_naming_its_file(tmp_path):
    model = th.model("bert")
    head = th.lm_head_dir(model, tmp_path / "head")
    (head / "xlt_lm_head.json").write_bytes(b"\xff{")
    corpus = th.lm_corpus(tmp_path / "sk.txt", documents=10)
    run = LanguageRun("sk", "prompt", CorpusConfig(files=[str(corpus)]), tmp_path / "run", lm_head=head)
    with pytest.raises(XLTError) as excinfo:
        train_language(model, run, log=th.silent)
    one_line(excinfo.value, str(head / "xlt_lm_head.json"), "train the LM head again")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("option", "value"), [("max_length", 3), ("mlm_probability", 0.0), ("mlm_probability", 1.5)])
def test_out_of_range_objective_options_are_refused(option, value):
    with pytest.raises(XLTError) as excinfo:
        ObjectiveConfig(**{option: value})
    one_line(excinfo.value, f"objective.{option}")
