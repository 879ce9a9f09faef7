"""The result store (atomic, one recipe, one run at a time) and the matrix verbs' handling of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from matrix_helpers import world

from processes import dead_pid, leftover, own
from xlt import XLTError
from xlt.cli import main
from xlt.matrix import load_config, run_matrix
from xlt.matrix.store import RESULTS, ResultStore, read_rows

ROW = {"task": "t", "source": "en", "target": "sk", "configuration": "TA", "seed": 1}


def test_put_replaces_a_cell_and_the_file_is_always_whole(tmp_path):
    with ResultStore.open(tmp_path / "s", "r1", {"a": 1}) as store:
        store.put([{**ROW, "status": "error", "error": "no data"}])
        assert not store.done(("t", "en", "sk", "TA", 1))
        store.put([{**ROW, "status": "ok", "metrics": {"accuracy": 0.5}}])
        assert store.done(("t", "en", "sk", "TA", 1))
    rows = read_rows(tmp_path / "s")
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["recipe"] == "r1"
    assert not [p for p in (tmp_path / "s").iterdir() if ".tmp" in p.name]


def test_a_leftover_temporary_file_does_not_disturb_the_store(tmp_path):
    with ResultStore.open(tmp_path / "s", "r1", {}) as store:
        store.put([{**ROW, "status": "ok", "metrics": {}}])
    leftover(tmp_path / "s", RESULTS, 1).write_text('{"task": "t", "sou')  # a write killed half-way
    with ResultStore.open(tmp_path / "s", "r1", {}) as store:
        assert len(store.rows()) == 1


def test_a_store_killed_before_its_first_write_is_taken_over(tmp_path):
    directory = tmp_path / "s"
    own(directory)
    dead = dead_pid()
    leftover(directory, "matrix.json", dead)
    leftover(directory, RESULTS, dead)
    with ResultStore.open(directory, "r1", {}) as store:
        assert store.rows() == []
    assert not [p for p in directory.iterdir() if ".xlt-tmp-" in p.name]  # the dead writer's temporaries are gone


def test_another_recipe_is_refused_naming_the_keys(tmp_path):
    ResultStore.open(tmp_path / "s", "r1", {"train": {"lr": 1}}).close()
    with pytest.raises(XLTError, match=r"different config \(it differs in train\.lr\)"):
        ResultStore.open(tmp_path / "s", "r2", {"train": {"lr": 2}})


def test_one_run_at_a_time(tmp_path):
    first = ResultStore.open(tmp_path / "s", "r1", {})
    try:
        with pytest.raises(XLTError, match="another `xlt matrix` is running"):
            ResultStore.open(tmp_path / "s", "r1", {})
    finally:
        first.close()
    ResultStore.open(tmp_path / "s", "r1", {}).close()


def test_an_unrelated_directory_is_refused(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("mine")
    with pytest.raises(XLTError, match="not empty and holds no matrix results"):
        ResultStore.open(tmp_path / "s", "r1", {})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"configurations": ["TA", "XY"]}, "configurations: unknown configuration 'XY'"),
        ({"targets": ["en", "xx"]}, "targets: unknown language code 'xx'"),
        ({"task_training": {"train": {"precision": "fp16"}}}, "task_training.train.precision: 'fp16' is not allowed"),
        ({"seeds": []}, "seeds: the list is empty"),
        ({"tasks": {"toy": {"type": "regression"}}}, "tasks.toy.type: unknown task type 'regression'"),
        ({"tasks": {"toy": {"type": "classification", "trian": "x"}}}, "tasks.toy: unknown option(s) ['trian']"),
        ({"workerz": 2}, "workerz: unknown key"),
        ({"seeds": [1, 1]}, "seeds: 1 listed twice"),
        ({"corpora": "builtn"}, "corpora: 'builtn' is not allowed"),
        ({"language_training": {"prompt": {"num_virtual_tokenz": 3}}}, "language_training.prompt: unknown prompt"),
        ({"tasks": {"sst.2": "builtin"}}, "tasks: name 'sst.2' may hold only"),
    ],
)
def test_bad_config_is_one_line_and_writes_nothing(tmp_path, capsys, change, message):
    spec = {**world(tmp_path, languages=["en"]), **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    capsys.readouterr()  # the tiny model's save progress
    with pytest.raises(SystemExit) as exit_info:
        main(["matrix", str(path)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.count("\n") == 0 and message in err, err
    assert not (tmp_path / "out").exists()


def test_report_verb_rerenders_without_recomputing(tmp_path, capsys):
    spec = world(tmp_path, languages=["en", "sk"])
    spec["configurations"] = ["TA"]
    run_matrix(load_config(spec), log=lambda _: None, report=False)
    assert not (tmp_path / "out" / "report").exists()
    before = (tmp_path / "out" / "results.jsonl").read_text()
    main(["report", str(tmp_path / "out")])
    assert capsys.readouterr().out.strip().endswith("report.md")
    assert (tmp_path / "out" / "report" / "report.md").is_file()
    assert (tmp_path / "out" / "results.jsonl").read_text() == before
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path / "nothing")])
    assert "holds no matrix results" in capsys.readouterr().err


def test_report_refuses_rows_of_another_recipe(tmp_path):
    spec = world(tmp_path, languages=["en"])
    spec["configurations"] = ["TA"]
    run_matrix(load_config(spec), log=lambda _: None)
    path = tmp_path / "out" / "results.jsonl"
    row = json.loads(path.read_text().splitlines()[0])
    path.write_text(path.read_text() + json.dumps({**row, "target": "de", "recipe": "other"}) + "\n")
    from xlt.matrix import store_rows

    ok, _ = store_rows(tmp_path / "out")
    assert [r["target"] for r in ok] == ["en"]  # the foreign row is never read


def test_matrix_verb_in_a_fresh_process(tmp_path):
    spec = world(tmp_path, languages=["en", "sk"])
    spec["configurations"] = ["zero-shot"]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(spec))
    code = "import sys; from xlt.cli import main; main(sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", code, "matrix", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 cells evaluated, 0 could not be" in done.stdout


def test_matrix_verb_exits_non_zero_when_a_cell_failed(tmp_path, capsys):
    spec = world(tmp_path, languages=["en", "sk"])
    spec["configurations"] = ["zero-shot"]
    (tmp_path / "data" / "test" / "sk.jsonl").unlink()
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SystemExit) as exit_info:
        main(["matrix", str(path)])
    assert exit_info.value.code == 1
    assert "1 cells evaluated, 1 could not be" in capsys.readouterr().out
    assert [r["status"] for r in read_rows(tmp_path / "out")] == ["ok", "error"]
