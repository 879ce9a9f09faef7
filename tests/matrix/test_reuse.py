"""Representations reused across tasks and matrices: tasks are a grid axis (a new task, target or configuration
computes only what is missing; a changed task spec is refused or recomputed), and a rep store shared by
matrices keeps each language representation and LM head under a key of what determines it, so a second matrix
trains none that exists, side by side with the first, and a killed run leaves nothing the next one trusts."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from matrix_helpers import rows, world
from training_helpers import task_rows, write_jsonl

from xlt import XLTError
from xlt.matrix import load_config, run_matrix
from xlt.matrix.config import ConfigError, to_dict
from xlt.matrix.store import key_of, read_rows

SILENT = lambda _: None  # noqa: E731


def _run(spec: dict, log=SILENT) -> list[dict]:
    return run_matrix(load_config(spec), log=log, report=False)


def _finished(directory: Path) -> dict[str, int]:
    """Every finished training run under ``directory``: its path -> when its result was recorded."""
    return {str(p.parent.relative_to(directory)): p.stat().st_mtime_ns for p in directory.rglob("result.json")}


def _trained(before: dict[str, int], after: dict[str, int]) -> list[str]:
    return sorted(k for k, stamp in after.items() if before.get(k) != stamp)


def _second_task(root: Path) -> dict:
    """Another classification task over other files."""
    data = root / "data2"
    (data / "test").mkdir(parents=True, exist_ok=True)
    write_jsonl(data / "train.jsonl", task_rows(90, 50))
    write_jsonl(data / "dev.jsonl", task_rows(20, 51))
    for i, language in enumerate(["en", "de", "sk", "sw"]):
        write_jsonl(data / "test" / f"{language}.jsonl", task_rows(20, 60 + i))
    return {
        "type": "classification",
        "train": str(data / "train.jsonl"),
        "dev": str(data / "dev.jsonl"),
        "test": str(data / "test" / "{language}.jsonl"),
    }


def _cells(result: list[dict]) -> dict:
    return {key_of(r): r for r in result}


def test_a_new_task_and_target_train_only_what_is_missing(tmp_path):
    spec = world(tmp_path, languages=["en", "de", "sk"])
    spec["targets"], spec["configurations"] = ["en", "de"], ["TA", "SLP+TA"]
    first = _cells(_run(spec))
    assert len(first) == 4 and all(r["status"] == "ok" for r in first.values())
    reps = tmp_path / "out" / "reps"
    before = _finished(reps)

    spec["tasks"]["toy2"] = _second_task(tmp_path)
    spec["targets"] = ["en", "de", "sk"]
    messages: list[str] = []
    second = _cells(_run(spec, messages.append))
    assert messages[0] == "matrix: 12 cells, 4 already done, 8 to run"
    assert len(second) == 12 and all(r["status"] == "ok" for r in second.values())
    # only the new target's language representation, only the new task's task representations
    assert _trained(before, _finished(reps)) == [
        "language/sk-prompt",
        "task/toy2-en-slp-ta-seed42",
        "task/toy2-en-ta-seed42",
    ]
    for key, row in first.items():
        assert second[key] == row  # the first task's cells are kept as they were: metrics, rep hashes, recipe
    toy = [r for k, r in second.items() if k[0] == "toy" and k[2] == "sk"]
    assert {r["reps"]["task"]["sha256"] for r in toy} <= {r["reps"]["task"]["sha256"] for r in first.values()}
    meta = json.loads((tmp_path / "out" / "matrix.json").read_text())
    assert set(meta["tasks"]) == {"toy", "toy2"} and "train" not in meta["tasks"]["toy2"]
    assert "tasks" not in meta["config"] and "rep_dirs" not in meta  # the default layout records no rep store


def test_a_changed_task_spec_is_refused_or_recomputed_alone(tmp_path):
    spec = world(tmp_path, languages=["en", "de"])
    spec["configurations"] = ["TA"]
    spec["tasks"]["toy2"] = _second_task(tmp_path)
    first = _cells(_run(spec))
    reps = tmp_path / "out" / "reps"
    before = _finished(reps)
    spec["tasks"]["toy2"]["labels"] = ["w1", "w2", "w3", "w9"]
    with pytest.raises(XLTError, match=r"changed since .*tasks\.toy2 \(labels\).*--on_change recompute"):
        _run(spec)
    assert _finished(reps) == before
    spec["on_change"] = "recompute"
    messages: list[str] = []
    second = _cells(_run(spec, messages.append))
    assert "forgot 1 representation(s) and 2 cell(s) of the changed task(s)" in messages
    assert _trained(before, _finished(reps)) == ["task/toy2-en-ta-seed42"]
    assert all(second[k] == r for k, r in first.items() if k[0] == "toy")
    # the same task under another path (same content) is the same task
    moved = tmp_path / "moved-train.jsonl"
    moved.write_bytes(Path(spec["tasks"]["toy"]["train"]).read_bytes())
    spec["tasks"]["toy"]["train"], spec["on_change"] = str(moved), "refuse"
    messages = []
    _run(spec, messages.append)
    assert messages[0] == "matrix: 4 cells, 4 already done, 0 to run"


def test_a_store_whose_recipe_held_the_tasks_still_opens(tmp_path):
    spec = world(tmp_path, languages=["en"])
    spec["configurations"] = ["TA"]
    _run(spec)
    out = tmp_path / "out"
    # the store as it was written when the tasks were part of the recipe
    config = load_config(spec)
    old = {**config.recipe(), "tasks": to_dict(config)["tasks"]}
    old_hash = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    meta = json.loads((out / "matrix.json").read_text())
    meta.pop("tasks")
    (out / "matrix.json").write_text(json.dumps({**meta, "recipe": old_hash, "config": old}))
    (out / "results.jsonl").write_text("".join(json.dumps({**r, "recipe": old_hash}) + "\n" for r in rows(out)))

    messages: list[str] = []
    again = _run(spec, messages.append)
    assert messages[0] == "matrix: 1 cells, 1 already done, 0 to run"
    assert again[0]["recipe"] == config.recipe_hash() != old_hash
    assert json.loads((out / "matrix.json").read_text())["tasks"] == {"toy": {"type": "classification"}}
    spec["tasks"]["toy"]["template"] = "w1 {text}"  # the old recipe's task spec is still what a change is told from
    with pytest.raises(XLTError, match=r"tasks\.toy \(template\)"):
        _run(spec)


def test_generation_is_in_the_recipe_only_when_set():
    spec = {"model": "e5", "tasks": {"emoji": "builtin"}, "targets": ["en"]}
    default = load_config(spec)
    assert "generation" not in default.recipe()
    assert load_config({**spec, "generation": {"num_beams": 1}}).recipe_hash() == default.recipe_hash()
    beams = load_config({**spec, "generation": {"num_beams": 4, "max_new_tokens": 8}})
    assert beams.recipe()["generation"] == {"num_beams": 4, "max_new_tokens": 8}
    assert load_config({**spec, "rep_store": "elsewhere"}).recipe_hash() == default.recipe_hash()
    for bad, message in [
        ({"num_beams": 0}, "generation.num_beams: 0 is not allowed"),
        ({"max_new_tokens": 0}, "generation.max_new_tokens: 0 is not allowed"),
        ({"num_beams": "4"}, "generation.num_beams: expected int"),
        ({"beams": 4}, "generation.beams: unknown key"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config({**spec, "generation": bad})


def _shared(spec: dict, store: Path, out: Path, languages: list[str]) -> dict:
    """``spec`` (a world's) on ``languages``, with their corpora only, keeping its reps in ``store``."""
    spec = json.loads(json.dumps(spec))
    spec["targets"], spec["configurations"] = languages, ["TA", "SLP+TA", "LA+TA"]
    spec["corpora"] = {k: v for k, v in spec["corpora"].items() if k in languages}
    return {**spec, "output_dir": str(out), "rep_store": str(store)}


def test_a_second_matrix_sharing_the_rep_store_trains_no_language_rep(tmp_path):
    store, spec = tmp_path / "store", world(tmp_path, languages=["en", "de", "sk"])
    first = _cells(_run(_shared(spec, store, tmp_path / "a", ["en", "de", "sk"])))
    assert all(r["status"] == "ok" for r in first.values())
    assert not (tmp_path / "a" / "reps" / "language").exists() and not (tmp_path / "a" / "reps" / "lm-head").exists()
    language = sorted(p.name for p in (store / "language").iterdir() if p.is_dir())
    assert len(language) == 6 and all(len(n.rsplit("-", 1)[1]) == 12 for n in language)
    assert (store / ".xlt-owned").is_file() and (store / "xlt_rep_store.json").is_file()
    before = _finished(store)

    # fewer languages: its own LM head would differ, so the store's head (trained on these corpora too) is taken
    messages: list[str] = []
    second = _cells(_run(_shared(spec, store, tmp_path / "b", ["en", "sk"]), messages.append))
    assert _finished(store) == before  # nothing in the store was trained again
    assert not any("training one on" in m for m in messages)
    assert sum(m.endswith("reusing it") for m in messages) == 4  # en and sk, prompt and bottleneck
    assert len(second) == 6
    for key, row in second.items():
        mine, theirs = dict(row), dict(first[key])
        assert mine["metrics"] == theirs["metrics"] and mine["reps"] == theirs["reps"]
    a, b = (json.loads((tmp_path / d / "matrix.json").read_text())["rep_dirs"] for d in ("a", "b"))
    assert b == {k: v for k, v in a.items() if k == "lm_head" or k.split("/")[0] in ("en", "sk")}
    assert all((store / v / "result.json").is_file() for v in a.values())

    # another language recipe is another key: a new representation beside the old ones, none replaced
    third = _shared(spec, store, tmp_path / "c", ["en"])
    third["configurations"] = ["SLP+TA"]
    third["language_training"]["prompt"]["num_virtual_tokens"] = 3
    _run(third)
    assert _trained(before, _finished(store)) == [n for n in sorted(_finished(store)) if n not in before]
    assert len([n for n in _finished(store) if n.startswith("language/en-prompt-")]) == 2


def test_a_rep_store_that_holds_someone_elses_files_is_refused(tmp_path):
    spec = world(tmp_path, languages=["en"])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(XLTError, match=r"rep_store .*mine is not empty and holds no rep store of xlt's"):
        _run({**spec, "rep_store": str(mine)})
    with pytest.raises(XLTError, match="is the output directory"):
        _run({**spec, "rep_store": spec["output_dir"]})
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and not (tmp_path / "out").exists()


# ---- killed and side by side ---------------------------------------------------------------------------------


def _start(config: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = "import torch, sys; torch.set_num_threads(1); from xlt.cli import main; main(sys.argv[1:])"
    argv = [sys.executable, "-c", code, "matrix", str(config), "--output_dir", str(out), "--report", "false"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _unfinished(store: Path) -> list[Path]:
    """Language runs claimed (mid-training) but not finished."""
    language = store / "language"
    runs = [p for p in language.iterdir() if p.is_dir()] if language.is_dir() else []
    return [p for p in runs if (p / "run.json").is_file() and not (p / "result.json").is_file()]


def _started(store: Path) -> bool:
    return any(len([e for e in p.iterdir() if e.name != ".xlt-owned"]) > 1 for p in _unfinished(store))


@pytest.mark.slow
def test_killed_mid_training_then_two_matrices_side_by_side(tmp_path):
    spec = world(tmp_path, languages=["en", "de", "sk"])
    reference = _shared(spec, tmp_path / "ref-store", tmp_path / "ref", ["en", "de", "sk"])
    want = {k: (r["metrics"], r["reps"]) for k, r in _cells(_run(reference)).items()}

    store = tmp_path / "store"
    config = tmp_path / "m.yaml"
    config.write_text(yaml.safe_dump(_shared(spec, store, tmp_path / "a", ["en", "de", "sk"])))
    proc = _start(config, tmp_path / "a")
    deadline = time.monotonic() + 300
    # killed once a language run has begun to write (beyond its claim), before it finishes
    while proc.poll() is None and time.monotonic() < deadline and not _started(store):
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be killed mid-training"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    half = _unfinished(store)
    assert half
    used = json.loads((tmp_path / "a" / "matrix.json").read_text()).get("rep_dirs", {})
    assert not any(k != "lm_head" and (store / v) in half for k, v in used.items())  # nothing half-trained recorded

    # the killed matrix again and a second one on the same store, at the same time
    procs = [_start(config, tmp_path / "a"), _start(config, tmp_path / "b")]
    for p in procs:
        p.wait(timeout=600)
        assert p.returncode == 0, p.stderr.read().decode()[-3000:]
    assert not _unfinished(store)
    for out in ("a", "b"):
        got = {key_of(r): (r["metrics"], r["reps"]) for r in read_rows(tmp_path / out)}
        assert got == want  # the same weights as an uninterrupted run, for both
    # each representation trained once, in one directory
    assert len([p for p in (store / "language").iterdir() if p.is_dir()]) == 6
