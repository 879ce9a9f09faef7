"""The LM head fitted on cached states of the frozen base (``xlt.training.lm_head_fit``): the cache is the
forward pass, the fit beats a unigram model of the same text, early stopping keeps the best weights, the run
records its baselines and curve, saves a head that loads as before, and is reused once finished."""

from __future__ import annotations

import json
import math
from collections import Counter
from itertools import islice

import numpy as np
import pytest
import torch
import training_helpers as th

from tiny_models import WORDS
from xlt.errors import XLTError
from xlt.matrix.config import ConfigError, LMHeadTraining, from_mapping
from xlt.plan import Plan
from xlt.training.corpora import CorpusConfig
from xlt.training.data import fixed_batches, micro_batches
from xlt.training.language import LMHeadRun, _pooled, train_lm_head
from xlt.training.lm_head import MaskedLMHead
from xlt.training.lm_head_fit import (
    CachedStates,
    cache_states,
    fit_config,
    fit_head,
    held_out_loss,
    initialise,
    masked_batches,
    token_counts,
    unigram_log_probs,
    unigram_loss,
)
from xlt.training.lm_objective import ObjectiveConfig, lm_objective
from xlt.training.loop import TrainingModule

OBJECTIVE = ObjectiveConfig(max_length=16)


def repeated_words(path, documents: int = 400):
    """Each document one word repeated 6 to 15 times; w10 fills a third of the documents, 39 other words share the
    rest: a unigram model knows that skew, the context gives the word away."""

    def word(i: int) -> str:
        return WORDS[10 + (i % 60 if i % 60 < 40 else 0)]

    lines = [" ".join([word(i)] * (6 + i // 60 % 10)) for i in range(documents)]
    path.write_text("\n".join(lines) + "\n")
    return path


def head_run(tmp_path, **overrides) -> LMHeadRun:
    corpus = CorpusConfig(files=[str(repeated_words(tmp_path / "text.txt"))], validation_fraction=0.1)
    values = {
        "corpora": [corpus],
        "output_dir": tmp_path / "run",
        "objective": OBJECTIVE,
        "train": th.quick(batch_size=8, lr=1e-2, checkpoint_every=1),
        "validation_segments": 64,
        "cached_segments": 256,
        "cached_epochs": 40,
    }
    values.update(overrides)
    return LMHeadRun(**values)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A cached fit on the tiny BERT: its model, run, result.json and log."""
    from threads import one_torch_thread

    tmp_path = tmp_path_factory.mktemp("fit")
    model = th.model("bert")
    run = head_run(tmp_path)
    messages: list[str] = []
    with one_torch_thread():
        head_dir = train_lm_head(model, run, log=messages.append)
    return model, run, head_dir, json.loads((run.output_dir / "result.json").read_text()), messages


def test_the_cached_fit_beats_the_unigram_model(fitted):
    _, _, _, result, messages = fitted
    assert result["fit"] == "cached"
    assert result["uniform_loss"] == pytest.approx(math.log(result["vocab"]))
    assert result["unigram_loss"] < result["uniform_loss"] - 0.3  # the baseline knows the word frequencies
    assert result["best_loss"] < result["unigram_loss"] - 0.5, result["curve"]  # the head reads the context
    summary = [m for m in messages if m.startswith("LM head: held-out loss")]
    assert len(summary) == 1 and f"unigram {result['unigram_loss']:.2f}" in summary[0]


def test_result_json_records_the_fit(fitted):
    _, run, _, result, _ = fitted
    for key in ("unigram_loss", "uniform_loss", "best_loss", "curve", "epochs", "cached_segments"):
        assert result[key] is not None, key
    assert result["cached_segments"] == run.cached_segments
    assert result["cached_positions"] > run.cached_segments  # several masked positions per segment
    assert result["validation_positions"] > 0 and result["validation_segments"] > 0
    assert result["caching_seconds"] > 0 and result["fit_seconds"] > 0
    epochs = [epoch for epoch, _ in result["curve"]]
    assert epochs == [float(e) for e in range(1, len(epochs) + 1)]  # one evaluation per epoch
    assert result["best_loss"] == min(loss for _, loss in result["curve"])
    assert result["epochs"] == epochs[-1] <= run.cached_epochs


def test_the_saved_head_loads_and_scores_its_best_loss(fitted):
    model, run, head_dir, result, _ = fitted
    embeddings = model.host.input_embeddings(model.base)
    head = MaskedLMHead.load(head_dir, embeddings, model.fingerprint)
    assert json.loads((head_dir / "xlt_lm_head.json").read_text())["provenance"]["steps"] == result["steps"]
    objective = lm_objective(model, Plan(), run.objective, head)
    source = _pooled(run, model.tokenizer, objective.segment_length, objective.separator)
    # The validation batches are fixed_batches', seeded apart from the training ones: rebuilt here the same way.
    validation = cache_states(
        model, head, fixed_batches(source.validation(run.validation_segments), objective.collate, 8, 42)
    )
    assert held_out_loss(head, validation, head.decoder_weight()) == pytest.approx(result["best_loss"], rel=1e-5)


def test_a_finished_run_is_reused(fitted):
    model, run, head_dir, _, _ = fitted
    before = {p: p.stat().st_mtime_ns for p in run.output_dir.rglob("*") if p.is_file()}
    messages: list[str] = []
    assert train_lm_head(model, run, log=messages.append) == head_dir
    assert any("already trained" in m for m in messages)
    assert not any(m.startswith("LM head: cached") for m in messages)  # the base did not run again
    assert {p: p.stat().st_mtime_ns for p in run.output_dir.rglob("*") if p.is_file()} == before


def test_the_cache_is_the_forward_pass(tmp_path):
    model = th.model("bert")
    embeddings = model.host.input_embeddings(model.base)
    head = MaskedLMHead(embeddings, list(range(4, 100)))  # some tokens fall outside: ignored as by the loss
    objective = lm_objective(model, Plan(), OBJECTIVE, head)
    rng = np.random.default_rng(0)
    segments = [rng.integers(4, 123, objective.segment_length).tolist() for _ in range(12)]
    batches = masked_batches(segments, objective.collate, 4, seed=7)
    model.train()
    states = cache_states(model, head, batches)
    assert model.training  # the caller's mode is restored
    assert states.segments == 12
    model.eval()
    expected_hidden, expected_loss, seen = [], [], 0
    with torch.no_grad():
        for batch in batches:
            out = model(batch["input_ids"], batch["attention_mask"], plan=Plan())
            labels = batch["labels"]
            keep = (labels != -100) & (head.targets(labels.clamp(min=0)) != -100)
            expected_hidden.append(out.hidden_states[keep])
            loss, _ = objective.loss(TrainingModule(model, objective.loss, {"lm_head": head}), batch)
            n = int(keep.sum())
            ours = held_out_loss(
                head,
                CachedStates(states.hidden[seen : seen + n], states.target[seen : seen + n], 4),
                head.decoder_weight(),
            )
            expected_loss.append((float(loss), ours))
            seen += n
    assert seen == len(states)
    # Rows are run in larger batches than the collated ones: equal up to float rounding, not bitwise.
    torch.testing.assert_close(states.hidden, torch.cat(expected_hidden))
    for through_the_model, from_the_cache in expected_loss:
        assert from_the_cache == pytest.approx(through_the_model, rel=1e-5)


def test_the_cached_masking_is_the_step_loops(tmp_path):
    model = th.model("bert")
    head = MaskedLMHead(model.host.input_embeddings(model.base))
    objective = lm_objective(model, Plan(), OBJECTIVE, head)
    rng = np.random.default_rng(1)
    segments = [rng.integers(4, 123, objective.segment_length).tolist() for _ in range(12)]
    stream = micro_batches(lambda: iter(segments), objective.collate, 4, 3)(0, 0, 1)
    for ours, loops in zip(masked_batches(segments, objective.collate, 4, 3), islice(stream, 3), strict=True):
        assert all(torch.equal(ours[k], loops[k]) for k in loops)


def test_the_unigram_baseline_by_hand():
    embeddings = torch.nn.Embedding(12, 4)
    head = MaskedLMHead(embeddings, [5, 6, 7])
    totals = token_counts(head, Counter({5: 3, 6: 1, 9: 4}))  # 9 is outside the head's vocabulary
    assert totals.tolist() == [3.0, 1.0, 0.0]
    log_probs = unigram_log_probs(totals)
    assert torch.allclose(log_probs.exp(), torch.tensor([4 / 7, 2 / 7, 1 / 7], dtype=torch.float64))
    states = CachedStates(torch.zeros(2, 4), torch.tensor([0, 2]), 1)
    assert unigram_loss(log_probs, states) == pytest.approx(-(math.log(4 / 7) + math.log(1 / 7)) / 2)
    assert unigram_loss(log_probs, CachedStates(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 0)) is None


def test_early_stopping_keeps_the_best_weights(tmp_path):
    """Targets a rotation of the states predicts half of the time, from 200 training states: the held-out loss
    falls while the dense layer learns the rotation, then rises as it memorises the noise; the fit stops after
    ``patience`` worse epochs and leaves the best epoch's weights in the head."""
    g = torch.Generator().manual_seed(0)
    embeddings = torch.nn.Embedding(40, 16)
    torch.nn.init.normal_(embeddings.weight, generator=g)
    head = MaskedLMHead(embeddings)
    rotation = torch.linalg.qr(torch.randn(16, 16, generator=g))[0]

    def states(n: int) -> CachedStates:
        hidden = torch.randn(n, 16, generator=g)
        target = (hidden @ rotation @ embeddings.weight.detach().T).argmax(1)
        noisy = torch.rand(n, generator=g) < 0.5
        target[noisy] = torch.randint(0, 40, (int(noisy.sum()),), generator=g)
        return CachedStates(hidden, target, n)

    training, validation = states(200), states(300)
    initialise(head, torch.zeros(40), training)
    config = fit_config(th.quick(lr=3e-2, early_stopping_patience=3), len(training), epochs=40)
    result = fit_head(head, training, validation, config, tmp_path / "fit", th.silent)
    losses = [h["loss"] for h in result.history]
    best = losses.index(min(losses))
    assert result.stopped_early and len(losses) == best + 1 + 3, losses
    assert best > 0 and losses[0] > min(losses)  # it learnt first, then got worse
    assert held_out_loss(head, validation, head.decoder_weight()) == pytest.approx(min(losses), rel=1e-6)
    assert not any(p.requires_grad for p in head.parameters())  # frozen again, as every trained piece


def test_no_cached_segments_trains_through_the_base_step_by_step(tmp_path):
    model = th.model("bert")
    run = head_run(tmp_path, cached_segments=0, train=th.quick(steps=4, batch_size=4, eval_every=2))
    head_dir = train_lm_head(model, run, log=th.silent)
    result = json.loads((run.output_dir / "result.json").read_text())
    assert "fit" not in result and result["steps"] == 4 and len(result["history"]) == 2
    MaskedLMHead.load(head_dir, model.host.input_embeddings(model.base), model.fingerprint)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"cached_segments": -1}, "cached_segments"),
        ({"cached_segments": 1.5}, "cached_segments"),
        ({"cached_epochs": 0}, "cached_epochs"),
    ],
)
def test_bad_cached_options_are_one_line_errors_before_anything_is_written(tmp_path, options, named):
    model = th.model("bert")
    run = head_run(tmp_path, **options)
    with pytest.raises(XLTError) as excinfo:
        train_lm_head(model, run, log=th.silent)
    message = str(excinfo.value)
    assert named in message and "\n" not in message
    assert not run.output_dir.exists()
    if isinstance(options.get("cached_segments", 0), int):
        with pytest.raises(ConfigError, match=f"lm_head: {named}"):
            from_mapping(LMHeadTraining, options, "lm_head")


def test_the_command_line_takes_the_cached_options_and_refuses_bad_ones(tmp_path, capsys, monkeypatch):
    """``xlt train-lm-head --cached_segments N --cached_epochs N``; a bad value is one line before the model loads
    (``--model`` names no model: reaching the load would be another error)."""
    from xlt.cli import main
    from xlt.train_cli import parser_for

    argv = ["--corpora", "[{files: [a.txt]}]", "--output_dir", str(tmp_path / "out")]
    options = parser_for("train-lm-head", [*argv, "--cached_segments", "512", "--cached_epochs", "5"]).parse_args(
        [*argv, "--cached_segments", "512", "--cached_epochs", "5"]
    )
    assert (options.cached_segments, options.cached_epochs) == (512, 5)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as excinfo:
        main(["train-lm-head", "--model", str(tmp_path / "no-model"), *argv, "--cached_segments", "-3"])
    assert excinfo.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "cached_segments must be an integer >= 0, got -3" in error
    assert not (tmp_path / "out").exists()


def test_the_head_starts_no_worse_than_the_unigram_model_on_its_training_states(fitted):
    """``initialise``: unigram bias, identity dense, the best LayerNorm gain of ``GAINS`` on the training
    sample; gain 0 (the unigram model) is among them, so the start can only be better."""
    model, run, _, result, _ = fitted
    embeddings = model.host.input_embeddings(model.base)
    head = MaskedLMHead(embeddings, list(range(4, 128)))
    objective = lm_objective(model, Plan(), run.objective, head)
    source = _pooled(run, model.tokenizer, objective.segment_length, objective.separator)
    segments = list(islice(source.train(), 64))
    training = cache_states(model, head, masked_batches(segments, objective.collate, 8, 42))
    log_probs = unigram_log_probs(token_counts(head, Counter(t for s in segments for t in s)))
    gain = initialise(head, log_probs, training)
    assert torch.equal(head.dense.weight, torch.eye(head.dense.in_features)) and gain > 0
    assert torch.all(head.norm.weight == gain)
    start = held_out_loss(head, training, head.decoder_weight())
    assert start < unigram_loss(log_probs, training) - 0.01  # the base's states already say something
    assert result["initial_gain"] in (0.0, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0)


class _Interrupt(Exception):
    pass


def test_an_interrupted_fit_resumes_where_it_stopped(tmp_path):
    """Killed at its third evaluation (its second epoch's checkpoint written), the run caches again on the rerun
    and resumes from that checkpoint: the same curve and the same head as a run never interrupted."""
    from safetensors.torch import load_file

    model = th.model("bert")
    (tmp_path / "whole").mkdir()
    whole = head_run(tmp_path / "whole", cached_epochs=5)
    train_lm_head(model, whole, log=th.silent)
    (tmp_path / "cut").mkdir()
    cut = head_run(tmp_path / "cut", cached_epochs=5)
    evaluations: list[str] = []

    def dies_at_the_third_evaluation(message: str) -> None:
        if message.startswith("step "):
            evaluations.append(message)
            if len(evaluations) == 3:
                raise _Interrupt

    with pytest.raises(_Interrupt):
        train_lm_head(model, cut, log=dies_at_the_third_evaluation)
    assert not (cut.output_dir / "result.json").exists()
    messages: list[str] = []
    train_lm_head(model, cut, log=messages.append)
    assert any(m.startswith("resuming from step") for m in messages)
    a, b = (json.loads((r.output_dir / "result.json").read_text()) for r in (whole, cut))
    assert a["curve"] == b["curve"] and len(a["curve"]) == 5
    heads = [load_file(str(r.output_dir / "head" / "lm_head.safetensors")) for r in (whole, cut)]
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])


def test_without_validation_text_the_fit_warns_and_keeps_its_last_weights(tmp_path):
    corpus = CorpusConfig(files=[str(repeated_words(tmp_path / "text.txt"))], validation_fraction=1e-6)
    run = head_run(tmp_path, corpora=[corpus], cached_epochs=3)
    messages: list[str] = []
    train_lm_head(th.model("bert"), run, log=messages.append)
    result = json.loads((run.output_dir / "result.json").read_text())
    assert result["best_loss"] is None and result["unigram_loss"] is None and result["curve"] == []
    assert result["epochs"] == 3 and result["validation_positions"] == 0
    assert len(result["warnings"]) == 1 and "raise validation_fraction" in result["warnings"][0]
    assert any(m.startswith("warning: ") for m in messages)
    assert any(m.startswith("LM head: no validation text, last weights kept after 3 epochs") for m in messages)
