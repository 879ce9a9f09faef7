"""Language representations aligned with parallel text: the ``-align`` configurations, which test each target
with its representation aligned with the source's, and the task representation of their paper twin."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from matrix_helpers import rows, world

from snapshots import snapshot
from tiny_models import WORDS
from xlt import XLTError
from xlt.cli import main
from xlt.matrix import load_config, run_matrix
from xlt.matrix.configurations import ALIGNED_CONFIGURATIONS, Configuration, resolve_configurations

pytestmark = pytest.mark.orchestration


def pairs(path, shift):
    lines = []
    for i in range(60):
        source = [WORDS[60 + (i * 7 + j * 3) % 40] for j in range(3)]
        text = [WORDS[WORDS.index(w) - shift] for w in source]
        split = "dev" if i < 10 else "train"
        lines.append(json.dumps({"en": " ".join(source), "text": " ".join(text), "split": split}))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def aligned_world(tmp_path, configurations):
    spec = world(tmp_path, languages=["en", "de", "sk"])
    spec["configurations"] = configurations
    spec["parallel"] = {"de": pairs(tmp_path / "de.jsonl", 30), "sk": pairs(tmp_path / "sk.jsonl", 40)}
    return spec


def test_aligned_configurations_share_their_twins_training():
    assert [c.name for c in ALIGNED_CONFIGURATIONS] == ["LA+TA-align", "LA+TP-align", "SLP+TA-align", "SLP+TP-align"]
    align, twin = resolve_configurations(["LA+TA-align", "LA+TA"], {})
    assert align.task_rep("t", "en", 1) == twin.task_rep("t", "en", 1)
    assert align.test_plan("sk", "r", "en").reps == ("sk/bottleneck-aligned-en", "r")
    assert align.test_plan("en", "r", "en") == twin.plan("en", "r")  # the source keeps its own
    with pytest.raises(XLTError, match="align takes neither cycle nor compose"):
        Configuration("x", "prompt", "prompt", cycle=True, align=True)
    with pytest.raises(XLTError, match="align: true needs a language kind"):
        resolve_configurations(["x"], {"x": {"task": "prompt", "align": True}})
    custom = resolve_configurations(["x"], {"x": {"language": "prompt", "task": "prompt", "align": True}})
    assert custom[0].align and custom[0].trains_with.name == "SLP+TP"


def test_an_aligned_configuration_runs_in_a_matrix(tmp_path):
    spec = aligned_world(tmp_path, ["LA+TA", "LA+TA-align"])
    lines: list[str] = []
    result = run_matrix(load_config(spec), log=lines.append)
    assert all(r["status"] == "ok" for r in result) and len(result) == 6, [r.get("error") for r in result]
    out = tmp_path / "out"
    task_dirs = [d.name for d in (out / "reps" / "task").iterdir() if (d / "run.json").is_file()]
    assert task_dirs == ["toy-en-la-ta-seed42"]  # trained once, tested by both
    language_dirs = sorted(d.name for d in (out / "reps" / "language").iterdir() if (d / "run.json").is_file())
    assert language_dirs == [
        "de-bottleneck",
        "de-bottleneck-aligned-en",
        "en-bottleneck",
        "sk-bottleneck",
        "sk-bottleneck-aligned-en",
    ]
    by = {(r["configuration"], r["target"]): r for r in result}
    assert by[("LA+TA-align", "en")]["reps"] == by[("LA+TA", "en")]["reps"]
    for target in ("de", "sk"):
        rep = by[("LA+TA-align", target)]["reps"]["language"]
        assert rep["name"] == f"{target}/bottleneck-aligned-en"
        assert rep["sha256"] != by[("LA+TA", target)]["reps"]["language"]["sha256"]
        assert f"parallel:{target}" in by[("LA+TA-align", target)]["inputs"]
        record = json.loads((out / "reps" / "language" / f"{target}-bottleneck-aligned-en" / "result.json").read_text())
        assert "alignment_loss" in record["best"]
    # a rerun reuses everything; changed pairs recompute only what read them
    assert run_matrix(load_config(spec), log=lines.append) == result
    pairs(tmp_path / "sk.jsonl", 35)
    with pytest.raises(XLTError, match="inputs changed"):
        run_matrix(load_config(spec), log=lines.append)
    spec["on_change"] = "recompute"
    again = {(r["configuration"], r["target"]): r for r in run_matrix(load_config(spec), log=lines.append)}
    assert again[("LA+TA-align", "sk")]["reps"]["language"] != by[("LA+TA-align", "sk")]["reps"]["language"]
    assert {k: v for k, v in again.items() if k != ("LA+TA-align", "sk")} == {
        k: v for k, v in by.items() if k != ("LA+TA-align", "sk")
    }


def test_a_target_without_parallel_text_is_reported_on_its_cells(tmp_path):
    spec = aligned_world(tmp_path, ["SLP+TA-align"])
    del spec["parallel"]["sk"]
    result = {r["target"]: r for r in run_matrix(load_config(spec), log=lambda _: None)}
    assert result["de"]["status"] == "ok" and result["en"]["status"] == "ok"
    assert result["sk"]["status"] == "error" and "no parallel text for language 'sk'" in result["sk"]["error"]
    assert "parallel.sk" in result["sk"]["error"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"parallel": {"sk": "missing.jsonl"}}, "parallel.sk: the file .* does not exist"),
        ({"parallel": "everything"}, "parallel: 'everything' is not allowed"),
        ({"language_training": {"alignment": {"weight": 0}}}, "alignment.weight must be > 0"),
        ({"sources": ["en", "de"]}, 'parallel.sk: parallel text .*sk.jsonl:1: each line must be {"de": str'),
        (
            {
                "custom_configurations": {"mine": {"language": "prompt", "task": "bottleneck", "align": "yes"}},
                "configurations": ["mine"],
            },
            "custom_configurations.mine must be a mapping .* align: and ensemble: true\\|false",
        ),
        (
            {
                "custom_configurations": {
                    "mine": {"language": "prompt", "task": "bottleneck", "align": True, "ensemble": True}
                },
                "configurations": ["mine"],
            },
            "ensemble takes none of cycle, compose and align",
        ),
        (
            {"parallel": {"de": "builtin", "sk": "builtin"}, "sources": ["en", "de"]},
            "parallel.sk: parallel text .*:1: each line must be .*the built-in pairs are English-X",
        ),
    ],
)
def test_bad_alignment_settings_are_refused_before_anything_is_written(tmp_path, change, message, capsys):
    spec = aligned_world(tmp_path, ["LA+TA-align"])
    for key, value in change.items():
        spec[key] = {**spec[key], **value} if isinstance(spec.get(key), dict) and isinstance(value, dict) else value
    config = tmp_path / "matrix.yaml"
    config.write_text(yaml.safe_dump(spec))
    before = snapshot(tmp_path)
    capsys.readouterr()  # what building the tiny model printed
    with pytest.raises(SystemExit) as exit_:
        main(["matrix", str(config)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xlt: error:")
    assert re.search(message, err[0]), err[0]
    assert snapshot(tmp_path) == before
    assert rows(tmp_path / "out") == []
