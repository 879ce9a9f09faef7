"""Language-modelling objectives: T5 span corruption, BERT masked LM, causal LM; batches padded to their longest
row only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import training_helpers as th

from xlt.errors import XLTError
from xlt.plan import Plan
from xlt.training.lm_batches import (
    CausalLM,
    MaskedLM,
    SpanCorruption,
    corrupt,
    random_spans_noise_mask,
    span_corruption_lengths,
)
from xlt.training.lm_objective import ObjectiveConfig, lm_objective


def t5_reference_lengths(inputs_length: int, noise_density: float, mean_span: float) -> tuple[int, int, int]:
    """T5's ``random_spans_helper`` / HF's ``compute_input_and_target_lengths``, written out independently."""

    def lengths(tokens: int) -> tuple[int, int]:
        noise = round(tokens * noise_density)
        spans = round(noise / mean_span)
        return tokens - noise + spans + 1, noise + spans + 1

    tokens = inputs_length
    while lengths(tokens + 1)[0] <= inputs_length:
        tokens += 1
    inputs, targets = lengths(tokens)
    return tokens, inputs, targets


def test_span_corruption_lengths_of_the_paper_and_of_t5():
    paper = span_corruption_lengths(256, 0.15, 3)
    assert (paper.tokens, paper.inputs, paper.targets) == (284, 256, 58)
    t5 = span_corruption_lengths(512, 0.15, 3)  # the T5 paper's pre-training setting
    assert (t5.tokens, t5.inputs, t5.targets) == (568, 512, 114)


@pytest.mark.parametrize("inputs_length", [32, 64, 128, 200, 256, 512, 1024])
@pytest.mark.parametrize(("density", "mean_span"), [(0.15, 3.0), (0.3, 3.0), (0.15, 2.0), (0.2, 5.0), (0.25, 4.0)])
def test_span_corruption_lengths_match_t5(inputs_length, density, mean_span):
    got = span_corruption_lengths(inputs_length, density, mean_span)
    assert (got.tokens, got.inputs, got.targets) == t5_reference_lengths(inputs_length, density, mean_span)
    assert got.inputs == inputs_length or got.inputs == inputs_length - 1  # filled (a sentinel may not fit)


@pytest.mark.parametrize("inputs_length", [8, 32, 256])
def test_span_corruption_lengths_never_overflow(inputs_length):
    # With mean span 1 every noise token becomes a sentinel: T5's search, which only grows, would give
    # inputs_length + 1 here.
    got = span_corruption_lengths(inputs_length, 0.1, 1.0)
    assert got.inputs <= inputs_length
    assert span_corruption_lengths(inputs_length, 0.1, 1.0).tokens < inputs_length


@pytest.mark.parametrize(("density", "mean_span"), [(0.0, 3.0), (1.0, 3.0), (-0.1, 3.0), (0.15, 0.0)])
def test_span_corruption_lengths_refuse_bad_settings(density, mean_span):
    with pytest.raises(XLTError, match="noise_density"):
        span_corruption_lengths(256, density, mean_span)


def spans(mask: np.ndarray) -> list[tuple[bool, int]]:
    """Run-length encoding: [(is_noise, length), ...]."""
    out: list[tuple[bool, int]] = []
    for value in mask.tolist():
        if out and out[-1][0] == value:
            out[-1] = (value, out[-1][1] + 1)
        else:
            out.append((value, 1))
    return out


@pytest.mark.parametrize("length", [20, 57, 284, 568])
def test_noise_mask_density_and_spans(length):
    rng = np.random.default_rng(0)
    noise = round(length * 0.15)
    expected_spans = round(noise / 3)
    span_lengths = []
    for _ in range(50):
        mask = random_spans_noise_mask(length, 0.15, 3.0, rng)
        assert mask.shape == (length,) and mask.dtype == bool
        assert int(mask.sum()) == noise
        runs = spans(mask)
        assert runs[0][0] is False and runs[-1][0] is True  # starts with kept text, ends with noise
        noise_runs = [n for is_noise, n in runs if is_noise]
        assert len(noise_runs) == expected_spans
        span_lengths.extend(noise_runs)
    assert np.mean(span_lengths) == pytest.approx(noise / expected_spans)


def test_noise_mask_extremes_and_seeding():
    rng = np.random.default_rng(0)
    tiny = random_spans_noise_mask(2, 0.15, 3.0, rng)  # at least one noise and one kept token
    assert tiny.tolist() == [False, True]
    a = random_spans_noise_mask(284, 0.15, 3.0, np.random.default_rng(7))
    b = random_spans_noise_mask(284, 0.15, 3.0, np.random.default_rng(7))
    c = random_spans_noise_mask(284, 0.15, 3.0, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def reconstruct(inputs: list[int], targets: list[int], first_sentinel: int, eos: int) -> list[int]:
    """Undo span corruption: each sentinel in the input is replaced by what follows it in the target."""
    assert inputs[-1] == eos and targets[-1] == eos
    fills: dict[int, list[int]] = {}
    current = None
    for token in targets[:-1]:
        if token > first_sentinel - 100 and token <= first_sentinel and (current is None or token == current - 1):
            current = token
            fills[current] = []
        else:
            assert current is not None, "the target starts with a sentinel"
            fills[current].append(token)
    out: list[int] = []
    for token in inputs[:-1]:
        out.extend(fills.pop(token) if token in fills else [token])
    assert not fills, "every sentinel of the target appears in the input"
    return out


@pytest.mark.parametrize("length", [2, 10, 50, 284])
def test_corrupt_targets_reconstruct_the_tokens(length):
    rng = np.random.default_rng(length)
    first_sentinel, eos = 1099, 1
    for _ in range(20):
        tokens = rng.integers(10, 1000, length)
        mask = random_spans_noise_mask(length, 0.15, 3.0, rng)
        inputs, targets = corrupt(tokens, mask, first_sentinel, eos)
        n_spans = len([r for r in spans(mask) if r[0]])
        sentinels = [first_sentinel - i for i in range(n_spans)]
        assert [t for t in inputs.tolist() if t > 1000] == sentinels  # one per noise span, counting down
        assert [t for t in targets.tolist() if t > 1000] == sentinels
        assert targets[0] == first_sentinel
        assert len(inputs) == length - mask.sum() + n_spans + 1
        assert len(targets) == mask.sum() + n_spans + 1
        assert reconstruct(inputs.tolist(), targets.tolist(), first_sentinel, eos) == tokens.tolist()


def test_span_corruption_batch_fills_the_requested_input_length():
    lengths = span_corruption_lengths(64, 0.15, 3.0)
    builder = SpanCorruption(vocab_size=500, eos_id=1, pad_id=0, inputs_length=64)
    rng = np.random.default_rng(0)
    segments = [list(rng.integers(10, 400, lengths.tokens)) for _ in range(6)]
    batch = builder(segments, np.random.default_rng(1))
    assert batch["input_ids"].shape == (6, lengths.inputs) == (6, 64)
    assert batch["labels"].shape == (6, lengths.targets)
    assert bool(batch["attention_mask"].all())
    for row, segment in enumerate(segments):
        assert reconstruct(batch["input_ids"][row].tolist(), batch["labels"][row].tolist(), 499, 1) == segment


def test_span_corruption_pads_to_the_longest_row_only():
    builder = SpanCorruption(vocab_size=500, eos_id=1, pad_id=0, inputs_length=256)
    segments = [list(range(10, 10 + n)) for n in (12, 30, 20)]
    batch = builder(segments, np.random.default_rng(0))
    rows = batch["attention_mask"].sum(1).tolist()
    assert batch["input_ids"].shape[1] == max(rows) < 256  # not the configured 256
    assert (batch["input_ids"][batch["attention_mask"] == 0] == 0).all()
    target_rows = (batch["labels"] != -100).sum(1).tolist()
    assert batch["labels"].shape[1] == max(target_rows)
    for row, segment in enumerate(segments):
        ids = batch["input_ids"][row, : rows[row]].tolist()
        labels = batch["labels"][row, : target_rows[row]].tolist()
        assert reconstruct(ids, labels, 499, 1) == segment
    with pytest.raises(XLTError, match="at least 2 tokens"):
        builder([[5]], np.random.default_rng(0))


def masked_batch(probability=0.15, replace_vocab=None, rows=64, width=200, seed=0):
    rng = np.random.default_rng(seed)
    cls, sep, pad, mask = 2, 3, 0, 4
    segments = []
    for i in range(rows):
        n = width - (i % 7) * 10  # rows of different lengths: padding inside the batch
        segments.append([cls, *rng.integers(10, 1000, n - 2).tolist(), sep])
    builder = MaskedLM(
        mask_id=mask,
        pad_id=pad,
        vocab_size=1000,
        special_ids=(cls, sep, pad),
        probability=probability,
        replace_vocab=replace_vocab,
    )
    return segments, builder(segments, np.random.default_rng(seed + 1))


def test_masked_lm_proportions():
    segments, batch = masked_batch()
    ids, labels, attention = batch["input_ids"], batch["labels"], batch["attention_mask"]
    original = torch.zeros_like(ids)
    for row, segment in enumerate(segments):
        original[row, : len(segment)] = torch.tensor(segment)
    chosen = labels != -100
    candidates = (attention == 1) & ~torch.isin(original, torch.tensor([2, 3, 0]))
    n = int(chosen.sum())
    assert n / int(candidates.sum()) == pytest.approx(0.15, abs=0.01)
    assert torch.equal(labels[chosen], original[chosen])  # labels are the original ids
    masked = chosen & (ids == 4)
    kept = chosen & (ids == original)
    replaced = chosen & (ids != 4) & (ids != original)
    assert int(masked.sum()) / n == pytest.approx(0.8, abs=0.025)
    assert int(replaced.sum()) / n == pytest.approx(0.1, abs=0.02)
    assert int(kept.sum()) / n == pytest.approx(0.1, abs=0.02)
    assert torch.equal(ids[~chosen], original[~chosen])  # nothing else changes


def test_masked_lm_never_masks_special_or_padding_positions():
    segments, batch = masked_batch(probability=0.9)
    ids, labels, attention = batch["input_ids"], batch["labels"], batch["attention_mask"]
    for row, segment in enumerate(segments):
        n = len(segment)
        assert labels[row, 0] == -100 and ids[row, 0] == 2  # CLS untouched
        assert labels[row, n - 1] == -100 and ids[row, n - 1] == 3  # SEP untouched
        assert (labels[row, n:] == -100).all() and (ids[row, n:] == 0).all() and (attention[row, n:] == 0).all()
    assert ids.shape[1] == max(len(s) for s in segments)  # padded to the longest row only


def test_masked_lm_random_replacements_come_from_the_pool_and_every_row_predicts():
    pool = [500, 501, 502]
    _, batch = masked_batch(probability=0.5, replace_vocab=pool)
    ids, labels = batch["input_ids"], batch["labels"]
    changed = (labels != -100) & (ids != 4) & (ids != labels)
    assert int(changed.sum()) > 0
    assert set(ids[changed].tolist()) <= set(pool)
    builder = MaskedLM(mask_id=4, pad_id=0, vocab_size=50, special_ids=(2, 3), probability=1e-9)
    short = builder([[2, 11, 3], [2, 12, 13, 3]], np.random.default_rng(0))
    assert ((short["labels"] != -100).sum(1) >= 1).all()  # at least one prediction per row


def test_causal_lm_labels_and_padding():
    batch = CausalLM(pad_id=0)([[5, 6, 7], [8, 9, 10, 11, 12], [13]], np.random.default_rng(0))
    assert batch["input_ids"].shape == (3, 5)
    assert batch["input_ids"][0].tolist() == [5, 6, 7, 0, 0]
    assert batch["labels"][0].tolist() == [5, 6, 7, -100, -100]
    assert batch["labels"][1].tolist() == [8, 9, 10, 11, 12]
    assert batch["labels"][2].tolist() == [13, -100, -100, -100, -100]
    assert batch["attention_mask"].sum(1).tolist() == [3, 5, 1]


@pytest.mark.parametrize("arch", ["t5", "bert", "gpt2"])
def test_lm_objective_per_family(arch, tmp_path):
    model = th.model(arch)
    head = None
    if arch == "bert":
        from xlt.training.lm_head import MaskedLMHead

        head = MaskedLMHead.load(
            th.lm_head_dir(model, tmp_path / "head"), model.base.embeddings.word_embeddings, model.fingerprint
        )
    objective = lm_objective(model, Plan(), ObjectiveConfig(max_length=40), head)
    rng = np.random.default_rng(0)
    segments = [rng.integers(4, 100, objective.segment_length).tolist() for _ in range(3)]
    batch = objective.collate(segments, np.random.default_rng(1))
    if arch == "t5":
        assert objective.name == "span_corruption"
        assert objective.segment_length == span_corruption_lengths(40, 0.15, 3.0).tokens
        assert batch["input_ids"].shape == (3, 40)  # the corrupted input fills max_length exactly
        assert batch["labels"].shape[1] == span_corruption_lengths(40, 0.15, 3.0).targets
    elif arch == "bert":
        assert objective.name == "masked_lm" and objective.segment_length == 38
        assert batch["input_ids"].shape[1] == 38  # the tiny tokenizer has no CLS/SEP to add
    else:
        assert objective.name == "causal_lm" and batch["input_ids"].shape == (3, 40)
    loss, tokens = objective.loss(_Module(model, head), batch)
    assert torch.isfinite(loss) and tokens > 0


def test_masked_lm_needs_a_head_and_a_mask_token():
    model = th.model("bert")
    with pytest.raises(XLTError, match="LM head"):
        lm_objective(model, Plan(), ObjectiveConfig(), None)
    from tiny_models import tiny_tokenizer
    from xlt import XLTModel
    from xlt.training.lm_head import MaskedLMHead

    no_mask = XLTModel(th.base("bert"), tiny_tokenizer())
    head = MaskedLMHead(no_mask.base.embeddings.word_embeddings)
    with pytest.raises(XLTError, match="mask token"):
        lm_objective(no_mask, Plan(), ObjectiveConfig(), head)


class _Module(torch.nn.Module):
    def __init__(self, model, head):
        super().__init__()
        self.model = model
        self.extra = torch.nn.ModuleDict({"lm_head": head} if head is not None else {})
