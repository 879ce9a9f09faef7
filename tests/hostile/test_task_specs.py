"""Hostile task specs and task options in a matrix config, and the new verbs' options: each is one
``xlt: error:`` line naming the problem and the fix, exit code 2, and nothing written anywhere."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "matrix"))
sys.path.insert(0, str(HERE.parent / "training"))
sys.path.insert(0, str(HERE.parent / "tasks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from matrix_helpers import world  # noqa: E402
from task_worlds import task_spec  # noqa: E402

from snapshots import snapshot  # noqa: E402
from xlt.cli import main  # noqa: E402

pytestmark = pytest.mark.no_model  # refused before any model is loaded: run once, under transformers 5.x


def _refused(capsys: pytest.CaptureFixture[str], root: Path, argv: list[str], *words: str) -> str:
    before = snapshot(root)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("xlt: error: "), err
    for word in words:
        assert word in err[0], (word, err[0])
    assert snapshot(root) == before  # nothing written, changed or deleted
    return err[0]


BAD_SPECS = [
    ("qa", {"stride": -1}, ["stride must be an integer >= 0"]),
    ("qa", {"stride": "wide"}, ["stride must be an integer >= 0"]),
    ("qa", {"max_answer_tokens": 0}, ["max_answer_tokens must be an integer >= 1"]),
    ("qa", {"template": "{text}"}, ["{text}", "{question}, {context}"]),
    ("qa", {"template": "{question} {context.__class__}"}, ["{context}"]),
    ("nli", {"template": "{premise} only"}, ["no {hypothesis} placeholder", "add it"]),
    ("seq2seq", {"metric": "bleu"}, ["metric must be one of chrf, exact_match"]),
    ("ner", {"mirror": "/tmp"}, ["mirror: is read with hub: true only"]),
    ("ner", {"hub": True}, ["give either hub: true or train/dev/test files"]),
    ("checkworthiness", {"positive": "maybe"}, ["positive label 'maybe' is not among the labels"]),
    ("qa", {"strid": 3}, ["unknown option(s) ['strid']", "stride"]),
    ("qa", {"fields": {"query": "q"}}, ["query"]),
]


@pytest.mark.parametrize(("task", "options", "words"), BAD_SPECS, ids=[f"{t}-{sorted(o)[0]}" for t, o, _ in BAD_SPECS])
def test_a_bad_task_option_is_one_line_before_anything(capsys, tmp_path, task, options, words):
    spec = world(tmp_path, "bert", languages=["en", "sw"])
    spec["tasks"] = {task: {**task_spec(tmp_path / "data", task, ["en", "sw"]), **options}}
    config = tmp_path / "matrix.yaml"
    config.write_text(yaml.safe_dump(spec))
    _refused(capsys, tmp_path, ["matrix", str(config)], *words)
    assert not (tmp_path / "out").exists()


def test_a_hub_task_on_a_type_without_datasets_is_refused(capsys, tmp_path):
    spec = world(tmp_path, "bert", languages=["en"])
    spec["tasks"] = {"claims": {"type": "checkworthiness", "hub": True}}
    config = tmp_path / "matrix.yaml"
    config.write_text(yaml.safe_dump(spec))
    _refused(capsys, tmp_path, ["matrix", str(config), "--dry-run"], "has no datasets in the registry", "give files")


def test_a_cache_dir_holding_someone_elses_files_is_never_written(tmp_path):
    from hub_fixtures import write_mirror

    from xlt import XLTError
    from xlt.tasks.ner import NERTask
    from xlt.tasks.sources import resolve

    mirror, cache = tmp_path / "mirror", tmp_path / "mine"
    write_mirror(resolve("ner", "en"), mirror)
    (cache / "ner" / "en").mkdir(parents=True)
    (cache / "ner" / "en" / "train.jsonl").write_text("my own file\n")
    before = snapshot(cache)
    task = NERTask("ner", hub=True, mirror=mirror, cache_dir=cache)
    messages: list[str] = []
    task.prepare(["en"], log=messages.append)
    assert snapshot(cache) == before
    assert any("holds files xlt did not write" in m and "choose another cache_dir" in m for m in messages)
    with pytest.raises(XLTError, match="no current train data"):
        task.examples("en", "train")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--worst", "0"], ["--worst 0", "give 1 or more"]),
        (["--worst", "2"], ["holds no kept outputs", "evaluate a matrix there first"]),
        (["--worst", "2", "--task", "../../etc"], ["holds no kept outputs"]),
    ],
)
def test_report_worst_refusals(capsys, tmp_path, argv, words):
    (tmp_path / "results").mkdir()
    _refused(capsys, tmp_path, ["report", str(tmp_path / "results"), *argv], *words)


def test_a_dry_run_of_a_broken_config_is_one_line(capsys, tmp_path):
    config = tmp_path / "matrix.yaml"
    config.write_text("tasks: {x: builtin}\n")
    _refused(capsys, tmp_path, ["matrix", str(config), "--dry-run"], "model")
