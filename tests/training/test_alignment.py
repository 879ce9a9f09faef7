"""Alignment with parallel text: a language representation trained with the alignment objective moves the model's
pooled states of target strings towards the teacher's states of their source strings, on held-out pairs."""

from __future__ import annotations

import json

import pytest
import torch
import training_helpers as th

from tiny_models import WORDS
from xlt.errors import XLTError
from xlt.plan import Plan
from xlt.training.alignment import AlignmentConfig, AlignmentRun, Pairs, read_pairs
from xlt.training.corpora import CorpusConfig
from xlt.training.language import LanguageRun, train_language
from xlt.training.lm_objective import ObjectiveConfig


def pairs_file(path, n=240, dev=40):
    """Source strings of words w60..w99, their 'translations' the words 30 places lower (a fixed mapping)."""
    rows = []
    for i in range(n):
        source = [WORDS[60 + (i * 7 + j * 3) % 40] for j in range(3)]
        text = [WORDS[WORDS.index(w) - 30] for w in source]
        rows.append({"en": " ".join(source), "text": " ".join(text), "split": "dev" if i < dev else "train"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_for(tmp_path, model, alignment, name="sk/bottleneck-aligned", steps=60, kind="bottleneck"):
    return LanguageRun(
        language="sk",
        kind=kind,
        corpus=CorpusConfig(files=[str(th.lm_corpus(tmp_path / "sk.txt"))], validation_fraction=0.05),
        output_dir=tmp_path / "run",
        rep=th.rep_options(kind, tokens=4),
        objective=ObjectiveConfig(max_length=32),
        train=th.quick(steps=steps, batch_size=8, eval_every=10, lr=0.03),
        lm_head=th.lm_head_dir(model, tmp_path / "lm-head") if model.host.needs_lm_head else None,
        alignment=alignment,
        name=name,
    )


@pytest.mark.parametrize("lm_weight, weight", [(0.0, 1.0), (1.0, 10.0)])
def test_aligned_representation_moves_held_out_pairs_towards_the_teacher(tmp_path, lm_weight, weight):
    model = th.model("bert")
    config = AlignmentConfig(weight=weight, lm_weight=lm_weight)
    alignment = AlignmentRun(pairs_file(tmp_path / "pairs.jsonl"), "en", None, config)
    pairs = Pairs(model, alignment, seed=0)
    model.eval()
    with torch.no_grad():
        before = pairs.dev_loss(_Scorer(model), None, 8)  # the model alone
    rep_dir = train_language(model, run_for(tmp_path, model, alignment), log=th.silent)
    model.eval()
    with torch.no_grad():
        after = pairs.dev_loss(_Scorer(model), Plan(("sk/bottleneck-aligned",)), 8)
    assert after < 0.7 * before, (before, after)
    result = json.loads((rep_dir.parent / "result.json").read_text())
    assert result["best"]["alignment_loss"] == pytest.approx(min(h["alignment_loss"] for h in result["history"]))
    assert result["best"]["loss"] == pytest.approx(
        weight * result["best"]["alignment_loss"] + lm_weight * result["best"]["lm_loss"]
    )


class _Scorer(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model


def test_teacher_must_be_in_the_bank(tmp_path):
    model = th.model("bert")
    alignment = AlignmentRun(pairs_file(tmp_path / "pairs.jsonl"), "en", "en/bottleneck", AlignmentConfig())
    with pytest.raises(XLTError, match="teacher 'en/bottleneck' is not in the model's bank"):
        train_language(model, run_for(tmp_path, model, alignment), log=th.silent)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", "pairs.jsonl:2: each line must be"),
        ('{"en": "a", "text": "", "split": "train"}', "pairs.jsonl:2: each line must be"),
        ('{"en": "a", "text": "b", "split": "test"}', "pairs.jsonl:2: each line must be"),
        ('{"de": "a", "text": "b", "split": "train"}', "pairs.jsonl:2: each line must be"),
    ],
)
def test_malformed_pairs_are_refused_with_their_line(tmp_path, line, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"en": "x", "text": "y", "split": "dev"}\n' + line + "\n")
    with pytest.raises(XLTError, match=message):
        read_pairs(path, "en")


def test_pairs_need_both_splits(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"en": "x", "text": "y", "split": "train"}\n')
    with pytest.raises(XLTError, match="needs pairs in both splits"):
        read_pairs(path, "en")


@pytest.mark.parametrize(
    "options", [{"weight": 0}, {"weight": -1}, {"weight": float("inf")}, {"lm_weight": "1"}, {"max_length": 0}]
)
def test_bad_alignment_options_are_refused(options):
    with pytest.raises(XLTError, match="alignment\\."):
        AlignmentConfig(**options)


@pytest.mark.parametrize("family, kind", [("t5", "bottleneck"), ("gpt2", "prompt")])
def test_alignment_runs_on_every_family_even_without_a_pad_token(tmp_path, family, kind):
    model = th.model(family)
    model.tokenizer.pad_token = None  # GPT-2's and Llama's tokenizers ship none: xlt pads the pairs itself
    alignment = AlignmentRun(pairs_file(tmp_path / "pairs.jsonl"), "en", None, AlignmentConfig())
    run = run_for(tmp_path, model, alignment, name="sk/aligned", steps=20, kind=kind)
    rep_dir = train_language(model, run, log=th.silent)
    history = json.loads((rep_dir.parent / "result.json").read_text())["history"]
    assert history[-1]["alignment_loss"] < history[0]["alignment_loss"]
