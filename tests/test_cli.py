"""The ``xlt`` verbs other than training, and the demo on the real e5 (a few languages)."""

from __future__ import annotations

import json

import pytest

from tiny_models import tiny_base, tiny_tokenizer
from xlt import PromptConfig, XLTModel
from xlt.cli import main


def test_info_and_languages(capsys):
    main(["info"])
    out = capsys.readouterr().out
    assert "bottleneck" in out and "prompt" in out and "lora" in out and "mt5" in out and "bert" in out
    main(["languages"])
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 16 and rows[0].split("\t")[:2] == ["ar", "Arabic"]


def test_inspect_and_bad_directory(tmp_path, capsys):
    m = XLTModel(tiny_base("t5"), tiny_tokenizer())
    m.add_language("sk", PromptConfig(num_virtual_tokens=3, init="vocab"))
    m.save_rep("sk/prompt", tmp_path / "rep")
    main(["inspect", str(tmp_path / "rep")])
    shown = json.loads(capsys.readouterr().out)
    assert shown["format"] == "xlt" and shown["config"]["name"] == "sk/prompt"
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", str(tmp_path / "nothing")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xlt: error:")


@pytest.mark.e5
def test_demo_routes_exactly_on_e5(e5_dir, monkeypatch, capsys):
    import xlt.tour

    monkeypatch.setattr(xlt.tour, "load_e5", lambda: __import__("xlt.e5", fromlist=["load_e5"]).load_e5(e5_dir))
    rows = xlt.tour.run_tour(languages="en,sk,sw", prompt_tokens=5)
    out = capsys.readouterr().out
    assert [r.language for r in rows] == ["en", "sk", "sw"]
    assert all(r.prompt_diff < 1e-4 and r.adapter_diff < 1e-4 for r in rows)
    assert "| sk | Slovak |" in out and "save -> load round trip" in out
    assert rows[0].cosine_to_en == pytest.approx(1.0, abs=1e-5) and 0.5 < rows[1].cosine_to_en < 1.0
