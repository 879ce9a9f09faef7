"""What a config may pass a task type, and a hub task whose fresh fetch failed."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from hub_fixtures import write_mirror

from xlt.matrix.dry_run import count_rows
from xlt.tasks.base import Task
from xlt.tasks.data import TaskDataError
from xlt.tasks.ner import NERTask
from xlt.tasks.qa import QATask
from xlt.tasks.registry import task_options
from xlt.tasks.sources import resolve

pytestmark = pytest.mark.no_model  # no model, no transformers: run once, under transformers 5.x


def test_options_are_read_up_the_hierarchy_and_through_partials():
    qa = task_options(QATask)
    assert qa is not None and {"stride", "hub", "mirror", "template", "train"} <= set(qa)
    fixed = task_options(functools.partial(QATask, stride=64))
    assert fixed is not None and "stride" not in fixed and "hub" in fixed

    def anything(name: str, **options: object) -> Task:
        raise NotImplementedError

    class Open(Task):  # type: ignore[misc]
        def __init__(self, name: str, **options: object) -> None: ...

    assert task_options(anything) is None and task_options(Open) is None  # **options: whatever they accept


def test_a_failed_fresh_fetch_never_falls_back_to_old_files(tmp_path):
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    write_mirror(resolve("ner", "en"), mirror)
    task = NERTask("ner", hub=True, mirror=mirror, cache_dir=cache)
    task.prepare(["en"], log=lambda _: None)
    assert task.examples("en", "train")
    manifest = cache / "ner" / "en" / "manifest.json"
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "format": 0}))  # an older cache: fetched again
    again = NERTask("ner", hub=True, mirror=tmp_path / "nowhere", cache_dir=cache)
    messages: list[str] = []
    again.prepare(["en"], log=messages.append)
    assert (cache / "ner" / "en" / "train.jsonl").is_file() and messages
    with pytest.raises(TaskDataError, match="no current train data for 'en'"):
        again.examples("en", "train")


def test_rows_are_counted_as_the_reader_reads_them(tmp_path: Path):
    (tmp_path / "a.json").write_text('{"text": "x"}\n\n{"text": "y"}\n')
    (tmp_path / "b.csv").write_text('text,label\n"one\nline two",a\nthree,b\n')
    assert count_rows(tmp_path / "a.json") == 2
    assert count_rows(tmp_path / "b.csv") == 2
