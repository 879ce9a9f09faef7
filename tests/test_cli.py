"""The ``xlt`` verbs other than training, and the demo on the real e5 (a few languages)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tiny_models import tiny_base, tiny_tokenizer
from xlt import PromptConfig, XLTModel
from xlt.cli import VERBS, main
from xlt.train_cli import parser_for, preset_asked
from xlt.training.presets import preset

LANGUAGE_RUN = ["--language", "sk", "--kind", "prompt", "--corpus.files", "[a.txt]", "--output_dir", "out"]


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


def test_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    assert all(f"    {verb} " in listed for verb in VERBS)
    assert "train-language" in VERBS and "demo" in VERBS


def test_only_the_verb_being_run_imports_its_training_modules(monkeypatch, capsys):
    def refuse():
        raise AssertionError("a train-* verb that is not being run imported its modules")

    for verb in ("train-language", "train-task", "train-lm-head"):
        monkeypatch.setitem(VERBS, verb, dataclasses.replace(VERBS[verb], training=refuse))
    main(["info"])
    with pytest.raises(SystemExit):
        main(["--help"])
    with pytest.raises(AssertionError, match="imported its modules"):
        main(["train-task", "--help"])


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["train-language", *LANGUAGE_RUN, "--train.steps", "abc"], 'Parser key "train.steps"'),
        (["train-language", *LANGUAGE_RUN, "--bogus", "1"], "unrecognized arguments: --bogus"),
        (["train-task"], "the following arguments are required"),
    ],
)
def test_a_train_verb_refuses_bad_options_in_one_line_naming_its_help(argv, problem, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1
    assert err[0].startswith("xlt: error: ") and problem in err[0] and err[0].endswith(f"(see xlt {argv[0]} --help)")


def test_an_unknown_preset_is_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["train-language", *LANGUAGE_RUN, "--preset", "turbo"])
    assert capsys.readouterr().err == "xlt: error: unknown preset 'turbo' (use 'paper' or 'fast')\n"


def test_the_preset_is_the_last_one_asked_for_on_the_command_line_or_in_a_config_file(tmp_path):
    (tmp_path / "paper.yaml").write_text("preset: paper\ntrain:\n  seed: 7\n")
    (tmp_path / "plain.yaml").write_text("train:\n  seed: 7\n")
    paper, plain = str(tmp_path / "paper.yaml"), str(tmp_path / "plain.yaml")
    assert preset_asked(LANGUAGE_RUN) == "fast"
    assert preset_asked(["--preset=paper", *LANGUAGE_RUN]) == "paper"
    assert preset_asked(["--config", paper, *LANGUAGE_RUN]) == "paper"
    assert preset_asked(["--config", paper, "--preset", "fast"]) == "fast"
    assert preset_asked(["--preset", "fast", "--config", paper, "--config", plain]) == "paper"
    assert preset_asked([*LANGUAGE_RUN, "--preset"]) == "fast"  # the verb's parser then says what is missing
    argv = ["--config", paper, *LANGUAGE_RUN]
    cfg = parser_for("train-language", argv).parse_args(argv)
    assert cfg.preset == "paper" and cfg.train.seed == 7
    assert cfg.train.steps == preset("paper", "language")["train"]["steps"] and cfg.objective.max_length == 256


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
