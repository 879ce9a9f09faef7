"""Regressions of defects a review of the ownership rules found: each test failed before its fix."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "matrix"))

from test_report import make_rows

from xlt.errors import XLTError
from xlt.formats.atomic import OWNER_MARK, clear_leftovers, contents, make_dir, remove_tree
from xlt.matrix.publish import publish
from xlt.matrix.store import META, RESULTS, ResultStore
from xlt.paths import writing_under
from xlt.training.run import claim_output_dir

# File-system behaviour, the same under every transformers version: run once, under 5.x (see the Makefile).
pytestmark = pytest.mark.slow


def store_with_rows(directory: Path) -> Path:
    with ResultStore.open(directory, "r1", {"a": 1}) as store:
        store.put([{**row, "status": "ok"} for row in make_rows("r1")[:4]])
    return directory


def test_an_output_dir_whose_parents_are_missing_is_created(tmp_path):
    out = tmp_path / "runs" / "exp" / "one"
    with writing_under(out):
        assert claim_output_dir(out, {"run": {"x": 1}}) is False
    assert (out / "run.json").is_file()
    assert (tmp_path / "runs" / OWNER_MARK).is_file()  # created by xlt, so marked as its own


def test_a_report_into_a_new_directory_under_missing_parents(tmp_path):
    matrix = store_with_rows(tmp_path / "m")
    page = publish(matrix, out=tmp_path / "new" / "parent" / "report").page
    assert page.is_file()


def test_a_users_run_json_is_never_taken_over(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "run.json").write_text('{"experiment": "mine"}')
    with pytest.raises(XLTError, match=r"holds a run\.json that is not xlt's"):
        claim_output_dir(out, {"run": {"x": 1}})
    assert (out / "run.json").read_text() == '{"experiment": "mine"}'
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]


def test_a_users_own_report_directory_in_a_matrix_dir_is_not_overwritten(tmp_path):
    matrix = store_with_rows(tmp_path / "m")
    (matrix / "report").mkdir()
    (matrix / "report" / "report.md").write_text("my own notes\n")
    with pytest.raises(XLTError, match="holds no report of xlt's"):
        publish(matrix)
    assert (matrix / "report" / "report.md").read_text() == "my own notes\n"


def test_a_report_written_before_directories_were_marked_is_replaced(tmp_path):
    matrix = store_with_rows(tmp_path / "m")
    publish(matrix)
    (matrix / "report" / OWNER_MARK).unlink()  # as an earlier version of xlt left it
    assert publish(matrix).page.is_file()


def test_a_damaged_config_yaml_falls_back_to_the_recipe(tmp_path):
    matrix = store_with_rows(tmp_path / "m")
    for text in ("- 1\n", "a: [1, 2\n"):
        (matrix / "config.yaml").write_text(text)
        assert publish(matrix, out=tmp_path / f"r{len(text)}").page.is_file()


def test_a_deletion_killed_half_way_leaves_no_half_directory(tmp_path, monkeypatch):
    parent = make_dir(tmp_path / "reps")
    run = parent / "en-prompt"
    (run / "checkpoint").mkdir(parents=True)
    (run / "run.json").write_text("{}")

    def killed(path, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        remove_tree(run)
    assert not run.exists()  # under its name it is gone whole; what is left is a temporary, cleared later
    assert [p.name.startswith(".xlt-del-") for p in parent.iterdir() if p.name != OWNER_MARK] == [True]


def test_a_save_moved_aside_by_a_killed_swap_is_restored(tmp_path):
    from processes import dead_pid, leftover

    parent = make_dir(tmp_path / "reps")
    old = leftover(parent, "rep", dead_pid(), kind="old", is_dir=True)
    (old / "xlt_rep.json").write_text("{}")
    clear_leftovers(parent)
    assert (parent / "rep" / "xlt_rep.json").is_file()


def test_a_temporary_like_name_with_an_impossible_pid_is_kept(tmp_path):
    parent = make_dir(tmp_path / "d")
    odd = parent / ".xlt-tmp-99999999999999999999-abcdef12-x"
    odd.write_text("mine")
    assert odd in clear_leftovers(parent) and odd in contents(parent) and odd.read_text() == "mine"


def test_a_store_of_an_older_recipe_is_taken_over_when_only_dropped_keys_differ(tmp_path):
    directory = tmp_path / "s"
    with ResultStore.open(directory, "old", {"a": 1, "corpora": "builtin"}) as store:
        store.put(make_rows("old")[:2])
    with ResultStore.open(directory, "new", {"a": 1}, ignore=("corpora",)) as store:
        assert len(store.rows()) == 2 and all(r["recipe"] == "new" for r in store.rows())
    assert json.loads((directory / META).read_text())["recipe"] == "new"
    assert all(json.loads(line)["recipe"] == "new" for line in (directory / RESULTS).read_text().splitlines())
    with pytest.raises(XLTError, match="different config"):
        ResultStore.open(directory, "other", {"a": 2}, ignore=("corpora",))


def test_a_changed_lm_head_given_by_path_is_detected(tmp_path, capsys):
    from matrix_helpers import world

    from xlt.cli import main

    spec = world(tmp_path, languages=["en", "de"])
    spec["configurations"] = ["SLP+TA"]
    config = tmp_path / "m.yaml"
    config.write_text(yaml.safe_dump(spec))
    main(["matrix", str(config)])
    head = tmp_path / "head"
    shutil.copytree(tmp_path / "out" / "reps" / "lm-head" / "head", head)
    spec.update(lm_head={"path": str(head)}, output_dir=str(tmp_path / "out2"))
    config.write_text(yaml.safe_dump(spec))
    main(["matrix", str(config)])
    record = head / next(p.name for p in head.iterdir() if p.suffix == ".json")
    record.write_text(record.read_text() + "\n")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["matrix", str(config)])
    assert exit_.value.code == 2
    assert f"inputs changed since the results in {tmp_path / 'out2'}" in capsys.readouterr().err
    assert os.path.isdir(tmp_path / "out2" / "reps" / "language" / "en-prompt")  # refused: nothing forgotten
