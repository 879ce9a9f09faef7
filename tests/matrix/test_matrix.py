"""``xlt matrix`` on tiny models: every cell, resumable, reused, routed evaluation, per-cell errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from matrix_helpers import rows, world

from xlt import XLTError
from xlt.matrix import load_config, run_matrix
from xlt.matrix.evaluation import Evaluation
from xlt.matrix.runner import Matrix
from xlt.tasks.data import Example
from xlt.training.task import TaskFormat

SILENT = lambda _: None  # noqa: E731


def _run(spec: dict, log=SILENT, report: bool = True) -> list[dict]:
    return run_matrix(load_config(spec), log=log, report=report)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One complete run of the 7 configurations x 4 targets on a tiny BERT."""
    root = tmp_path_factory.mktemp("matrix")
    spec = world(root)
    messages: list[str] = []
    result = _run(spec, messages.append)
    return root, spec, result, messages


def test_every_cell_is_evaluated_once(finished):
    root, spec, result, _ = finished
    assert len(result) == 7 * 4 and all(r["status"] == "ok" for r in result)
    stored = rows(root / "out")
    keys = [(r["target"], r["configuration"], r["seed"]) for r in stored]
    assert len(keys) == len(set(keys)) == 28
    row = next(r for r in stored if r["configuration"] == "SLP+TA" and r["target"] == "sk")
    assert set(row["metrics"]) == {"accuracy", "macro_f1"} and row["examples"] == 30
    assert row["reps"]["language"]["name"] == "sk/prompt" and len(row["reps"]["language"]["sha256"]) == 64
    assert row["reps"]["task"]["name"] == "toy/en/slp-ta/seed42"
    assert row["recipe"] == load_config(spec).recipe_hash()
    zero = next(r for r in stored if r["configuration"] == "zero-shot")
    assert zero["reps"]["language"] is None and zero["reps"]["task"]["name"] == "toy/en/zero-shot/seed42"


def test_each_language_rep_is_trained_once_and_shared(finished):
    root, _, _, messages = finished
    language_dirs = sorted(p.name for p in (root / "out" / "reps" / "language").iterdir() if p.is_dir())
    assert language_dirs == sorted(
        f"{lang}-{kind}" for lang in ("en", "de", "sk", "sw") for kind in ("bottleneck", "prompt")
    )
    task_dirs = sorted(p.name for p in (root / "out" / "reps" / "task").iterdir() if p.is_dir())
    assert len(task_dirs) == 7  # one per configuration (the zero-shot probe included), shared by all targets
    assert sum("evaluating" in m for m in messages) == 7


def test_rerun_recomputes_nothing(finished):
    root, spec, result, _ = finished
    before = (root / "out" / "results.jsonl").read_text()
    messages: list[str] = []
    again = _run(spec, messages.append)
    assert messages[0] == "matrix: 28 cells, 28 already done, 0 to run"
    assert not any("evaluating" in m or "step" in m for m in messages)
    assert again == result and (root / "out" / "results.jsonl").read_text() == before


def test_report_is_written(finished):
    root, *_ = finished
    page = (root / "out" / "report" / "report.md").read_text()
    assert "| sk |" in page and "SLP+TP" in page and "```yaml" in page and "heatmap.png" in page
    assert (root / "out" / "config.yaml").is_file()
    pngs = list((root / "out" / "report").glob("*.png"))
    assert len(pngs) == 4 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_routed_evaluation_equals_one_target_at_a_time(finished):
    root, spec, _, _ = finished
    matrix = Matrix(load_config(spec), SILENT)
    assert matrix.run()  # loads every rep from the finished run (nothing to compute)
    model = matrix.model
    for name in ("de/prompt", "sk/prompt", "sw/prompt", "toy/en/slp-tp/seed42"):
        if name not in model.reps:
            model.load_rep(_rep_dir(root, name))
    conf = matrix.by_name["SLP+TP"]
    task = matrix.tasks["toy"]
    rep = conf.task_rep("toy", "en", 42)
    fmt = TaskFormat(model, task, model.rep(rep).head.config.labels, 16)
    mixed = [(t, e) for t in ("de", "sk", "sw") for e in task.examples(t, "test")[:7]]
    routed, _ = Evaluation._predict(matrix, fmt, conf, rep, mixed)  # type: ignore[arg-type]
    alone = []
    for target in ("de", "sk", "sw"):
        examples = [e for t, e in mixed if t == target]
        alone += fmt.predict(examples, plan=conf.plan(target, rep))
    assert routed == alone
    # and the logits themselves agree, not only the argmax
    ids = [Example(e.text, e.label) for _, e in mixed]
    batch = {k: v.to(model.device) for k, v in fmt.collate(ids).items()}
    plans = [conf.plan(t, rep) for t, _ in mixed]
    with torch.no_grad():
        together = model(batch["input_ids"], batch["attention_mask"], plans=plans).logits
        one = model(batch["input_ids"][:1], batch["attention_mask"][:1], plan=plans[0]).logits
    assert torch.allclose(together[:1], one, atol=1e-5)


def _rep_dir(root: Path, name: str) -> Path:
    if name.count("/") == 1:
        lang, kind = name.split("/")
        return root / "out" / "reps" / "language" / f"{lang}-{kind}" / "rep"
    return root / "out" / "reps" / "task" / "toy-en-slp-tp-seed42" / "rep"


def test_a_wider_grid_reuses_finished_cells_and_reps(tmp_path):
    spec = world(tmp_path, languages=["en", "de", "sk"])
    spec["targets"] = ["en", "de"]
    spec["configurations"] = ["TA", "SLP+TA"]
    first = _run(spec)
    assert len(first) == 4
    spec["targets"] = ["en", "de", "sk"]
    messages: list[str] = []
    second = _run(spec, messages.append)
    assert messages[0] == "matrix: 6 cells, 4 already done, 2 to run"
    assert "language representations: 2 (en/prompt, sk/prompt)" in messages
    assert any(m.startswith("en/prompt: already trained") for m in messages)
    assert not any(m.startswith("sk/prompt: already trained") for m in messages)
    done = {(r["target"], r["configuration"]): r for r in second}
    for row in first:
        assert done[(row["target"], row["configuration"])] == row


def test_missing_data_is_reported_per_cell(tmp_path):
    spec = world(tmp_path)
    (tmp_path / "data" / "test" / "sw.jsonl").unlink()
    del spec["corpora"]["sk"]
    spec["configurations"] = ["TA", "LA+TA"]
    result = {(r["target"], r["configuration"]): r for r in _run(spec)}
    assert len(result) == 8
    assert result[("sw", "TA")]["status"] == "error" and "no test data" in result[("sw", "TA")]["error"]
    assert "no corpus for language 'sk'" in result[("sk", "LA+TA")]["error"]
    assert result[("sk", "TA")]["status"] == "ok" and result[("de", "LA+TA")]["status"] == "ok"
    page = (tmp_path / "out" / "report" / "report.md").read_text()
    assert "not evaluated" in page and "no corpus for language 'sk'" in page
    # restoring the test data and running again fills exactly the missing cells (a corpus is part of the recipe:
    # the LM head is trained on all of them, so adding one is a different config)
    (tmp_path / "data" / "test" / "sw.jsonl").write_text((tmp_path / "data" / "test" / "de.jsonl").read_text())
    messages: list[str] = []
    again = _run(spec, messages.append)
    assert messages[0] == "matrix: 8 cells, 5 already done, 3 to run"
    failed = [(r["target"], r["configuration"]) for r in again if r["status"] != "ok"]
    assert failed == [("sk", "LA+TA")]


def test_a_different_config_is_refused_in_the_same_directory(tmp_path):
    spec = world(tmp_path)
    spec["configurations"] = ["TA"]
    spec["targets"] = ["en"]
    _run(spec)
    spec["task_training"]["max_length"] = 12
    with pytest.raises(XLTError, match=r"different config.*task_training.max_length"):
        _run(spec)


def test_text_to_text_zero_shot_trains_nothing(tmp_path):
    spec = world(tmp_path, arch="t5", languages=["en", "sk"])
    spec["configurations"] = ["zero-shot", "SLP+TP"]
    result = _run(spec)
    assert len(result) == 4 and all(r["status"] == "ok" for r in result)
    zero = [r for r in result if r["configuration"] == "zero-shot"]
    assert all(r["reps"] == {"task": None, "language": None} for r in zero)
    task_dirs = sorted(p.name for p in (tmp_path / "out" / "reps" / "task").iterdir() if p.is_dir())
    assert task_dirs == ["toy-en-slp-tp-seed42"]
    assert not (tmp_path / "out" / "reps" / "lm-head").exists()  # T5 predicts tokens with its own head


def test_seeds_give_mean_and_std(tmp_path):
    spec = world(tmp_path, languages=["en", "sk"])
    spec["configurations"] = ["TA"]
    spec["seeds"] = [1, 2]
    result = _run(spec)
    assert sorted({r["seed"] for r in result}) == [1, 2]
    names = {r["reps"]["task"]["name"] for r in result}
    assert names == {"toy/en/ta/seed1", "toy/en/ta/seed2"}
    for seed in (1, 2):  # the seed draws the adapter's initial weights too, not only the data order
        run = json.loads((tmp_path / "out" / "reps" / "task" / f"toy-en-ta-seed{seed}" / "run.json").read_text())
        assert run["config"]["run"]["rep"]["seed"] == seed and run["config"]["run"]["train"]["seed"] == seed
    assert "±" in (tmp_path / "out" / "report" / "report.md").read_text()


def test_config_file_round_trip(tmp_path):
    spec = world(tmp_path, languages=["en", "sk"])
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(spec))
    config = load_config(path)
    assert config.targets == ["en", "sk"] and config.language_training.train.steps == 4
    assert json.loads(json.dumps(config.recipe()))  # serialisable


def test_a_language_from_the_config(tmp_path, monkeypatch):
    import xlt.languages

    monkeypatch.setattr(xlt.languages, "_REGISTRY", dict(xlt.languages._REGISTRY))  # registered for this test only
    spec = world(tmp_path, languages=["en", "fo"])
    spec["languages"] = {"fo": {"name": "Faroese", "script": "Latn", "group": "focus"}}
    spec["configurations"] = ["SLP+TA"]
    result = _run(spec)
    assert [r["status"] for r in result] == ["ok", "ok"]
    assert "focus languages (1)" in (tmp_path / "out" / "report" / "report.md").read_text()
    spec["languages"] = {"fo": {"name": "Faroish", "group": "focus"}}
    with pytest.raises(XLTError, match="already registered as Faroese"):
        load_config(spec)


def test_declared_labels_are_the_heads_labels(tmp_path):
    spec = world(tmp_path, languages=["en"])
    spec["tasks"]["toy"]["labels"] = ["w2", "w1", "w9"]  # w9 never occurs in the data
    spec["configurations"] = ["TA"]
    assert _run(spec)[0]["status"] == "ok"
    saved = json.loads((tmp_path / "out" / "reps" / "task" / "toy-en-ta-seed42" / "rep" / "xlt_rep.json").read_text())
    assert saved["head"]["labels"] == ["w2", "w1", "w9"]
