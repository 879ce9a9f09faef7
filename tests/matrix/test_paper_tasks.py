"""Every task type end to end through ``xlt matrix`` (data -> format -> model -> decode/parse -> metric) on a
tiny model of each family it runs on, with all seven configurations: one matrix per family holds every task
(the language representations are trained once and shared by them, as in a real matrix), and one test per
(task, family) checks that task's cells and kept outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from matrix_helpers import world

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tasks"))

from task_worlds import TASK_TYPES, task_spec

from xlt.cli import main
from xlt.matrix import load_config, run_matrix
from xlt.matrix.configurations import PAPER_NAMES

FAMILIES = {"bert": "encoder", "mt5": "encoder_decoder", "gpt2": "decoder"}
LANGUAGES = ["en", "sw"]
METRICS = {
    "qa": {"exact_match", "f1"},
    "ner": {"precision", "recall", "f1"},
    "nli": {"accuracy", "macro_f1"},
    "checkworthiness": {"accuracy", "f1", "precision", "recall", "macro_f1"},
    "seq2seq": {"exact_match", "chrf"},
}


def tasks_of(arch: str) -> list[str]:
    return [t for t in TASK_TYPES if not (t == "seq2seq" and FAMILIES[arch] == "encoder")]


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_run(request, tmp_path_factory):
    arch = request.param
    root = tmp_path_factory.mktemp(f"paper-tasks-{arch}")
    spec = world(root, arch, languages=LANGUAGES)
    spec["tasks"] = {task: task_spec(root / "data", task, LANGUAGES) for task in tasks_of(arch)}
    spec["configurations"] = list(PAPER_NAMES)
    spec["seeds"] = [3]
    spec["task_training"]["train"] = {**spec["task_training"]["train"], "steps": 2, "eval_every": 2}
    spec["task_training"]["max_length"] = 24  # QA contexts of up to 40 words: the span head needs windows
    rows = run_matrix(load_config(spec), log=lambda _: None, report=True)
    return arch, root, rows


@pytest.mark.slow
@pytest.mark.parametrize("task", TASK_TYPES)
def test_task_end_to_end(family_run, task):
    arch, root, rows = family_run
    if task not in tasks_of(arch):
        pytest.skip(f"{task} does not run on {FAMILIES[arch]} models")
    mine = [r for r in rows if r["task"] == task]
    assert {(r["configuration"], r["target"]) for r in mine} == {(c, t) for c in PAPER_NAMES for t in LANGUAGES}
    failed = [(r["configuration"], r["target"], r.get("error")) for r in mine if r["status"] != "ok"]
    assert not failed
    for row in mine:
        assert set(row["metrics"]) == METRICS[task], row["metrics"]
        assert all(0.0 <= v <= 1.0 for v in row["metrics"].values())
        assert row["examples"] == 8
    # The kept outputs: one line per test example, with its reference, prediction and score.
    out = root / "out" / "outputs" / task / "en"
    files = sorted(out.glob("*/*.jsonl"))
    assert len(files) == 7 * len(LANGUAGES)
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert len(lines) == 8 and all({"input", "reference", "prediction", "score"} <= set(line) for line in lines)
    generated = [line["generation"] for line in lines]
    if FAMILIES[arch] == "encoder":
        assert generated == [None] * 8
    else:
        assert all(isinstance(text, str) for text in generated)


@pytest.mark.slow
def test_the_report_shows_each_cells_worst_examples(family_run, capsys):
    arch, root, _ = family_run
    main(["report", str(root / "out"), "--worst", "2", "--task", "qa", "--configuration", "SLP+TP"])
    shown = capsys.readouterr().out.splitlines()
    headers = [line for line in shown if line.startswith("== ")]
    assert headers == [f"== qa en->{t} slp-tp-seed3 (8 examples)" for t in sorted(LANGUAGES)]
    scores = [float(line.split()[1]) for line in shown if line.strip().startswith("score ")]
    assert len(scores) == 4 and all(0.0 <= s <= 1.0 for s in scores)
    assert sum(line.strip().startswith("generated:") for line in shown) == (0 if arch == "bert" else 4)
    with pytest.raises(SystemExit):
        main(["report", str(root / "out"), "--worst", "2", "--task", "nothing"])
    assert "no cell matches" in capsys.readouterr().err


@pytest.mark.slow
def test_the_registrys_datasets_run_through_the_matrix(tmp_path, monkeypatch):
    """The paper's tasks on the registry's datasets, read from a local mirror laid out like the hub (the same
    path as a download), fetched once into the cache, then trained and evaluated like local files."""
    from hub_fixtures import write_mirror

    from xlt.tasks.sources import resolve

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    languages = {"ner": ["en", "sw"], "nli": ["en", "sw"], "qa": ["en", "el"]}
    for task, codes in languages.items():
        for code in codes:
            write_mirror(resolve(task, code), mirror)
    spec = world(tmp_path, "bert", languages=["en", "sw", "el"])
    spec["tasks"] = {
        task: {"type": task, "hub": True, "mirror": str(mirror), "cache_dir": str(cache)} for task in languages
    }
    spec["configurations"] = ["TA"]
    spec["targets"] = ["en", "sw", "el"]
    messages: list[str] = []
    rows = run_matrix(load_config(spec), log=messages.append, report=False)
    ok = {(r["task"], r["target"]) for r in rows if r["status"] == "ok"}
    assert ok == {(task, code) for task, codes in languages.items() for code in codes}
    missing = {(r["task"], r["target"]) for r in rows if r["status"] != "ok"}
    assert missing == {("ner", "el"), ("nli", "el"), ("qa", "sw")}  # not in this mirror: reported on their cells
    for task, codes in languages.items():
        for code in codes:
            assert (cache / task / code / "test.jsonl").is_file()
    assert any("fetching unimelb-nlp/wikiann" in m for m in messages)
    # A second run fetches nothing it has: only what the mirror lacked is tried again.
    messages.clear()
    run_matrix(load_config(spec), log=messages.append, report=False)
    fetched = {
        tuple(m.split(":")[0].replace("task '", "").replace("'", "").split()) for m in messages if "fetching" in m
    }
    assert fetched == missing


def test_a_source_the_registry_does_not_cover_is_one_error_before_anything_runs(tmp_path):
    from xlt import XLTError

    spec = world(tmp_path, "bert", languages=["bg", "en"])
    spec["tasks"] = {
        "qa": {"type": "qa", "hub": True, "mirror": str(tmp_path / "none"), "cache_dir": str(tmp_path / "c")}
    }
    spec["sources"] = ["bg"]
    with pytest.raises(XLTError, match=r"tasks\.qa: no train data for source 'bg': qa has no source for language 'bg'"):
        run_matrix(load_config(spec), log=lambda _: None, report=False)
    assert not (tmp_path / "out").exists()
