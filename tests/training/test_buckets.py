"""Length buckets: bounds from the data, micro-batches within one bucket (deterministic by seed, every row once
per epoch bar a short leftover), GPU padding to the bucket's bound that changes no loss, and task runs that
record them (a run without buckets reads as one made before they existed)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tiny_models import batch, tiny_base, tiny_tokenizer
from xlt import PromptConfig, XLTModel
from xlt.errors import XLTError
from xlt.records import differing_keys, flat, jsonable
from xlt.training.buckets import bucket_bounds, bucketed_epochs, padded_bounds, padded_to_bounds
from xlt.training.task import TaskRun

LENGTHS = [3, 4, 5, 5, 6, 9, 11, 12, 17, 18, 20, 25, 30, 31, 33, 40] * 4


def test_bounds_are_rounded_quantiles_and_the_longest_fits():
    bounds = bucket_bounds(LENGTHS, 4)
    assert bounds == [8, 16, 32, 40]
    assert bucket_bounds(LENGTHS, 1) == [40]
    assert bucket_bounds([7, 7, 7], 8) == [7]  # one length: one bucket, not rounded past the longest
    assert bucket_bounds([], 4) == []
    assert len(bucket_bounds(list(range(1, 500)), 8)) <= 8
    # a GPU buckets by the same bounds and pads to them rounded up to 8 (the longest kept)
    assert padded_bounds([6, 7, 8, 9, 10, 14]) == [8, 14] and padded_bounds([]) == []


def take(stream, n):
    return list(itertools.islice(stream, n))


def test_micro_batches_hold_one_bucket_and_each_epoch_every_row_but_a_leftover():
    rows = list(range(len(LENGTHS)))
    bounds = bucket_bounds(LENGTHS, 4)
    micro = 5
    per_epoch = len(rows)
    stream = bucketed_epochs(rows, LENGTHS, bounds, micro, seed=3)
    epoch = take(stream, per_epoch - per_epoch % micro - micro)  # whole batches of the first epoch, less one
    assert len(set(epoch)) == len(epoch)  # no row twice within an epoch
    groups = [epoch[i : i + micro] for i in range(0, len(epoch), micro)]
    spans = [max(LENGTHS[r] for r in g) - min(LENGTHS[r] for r in g) for g in groups]
    assert np.mean(spans) < 8  # random batches of these lengths span about 30 tokens
    assert take(bucketed_epochs(rows, LENGTHS, bounds, micro, seed=3), 30) == take(
        bucketed_epochs(rows, LENGTHS, bounds, micro, seed=3), 30
    )
    assert take(bucketed_epochs(rows, LENGTHS, bounds, micro, seed=4), 30) != epoch[:30]
    with pytest.raises(ValueError, match="cannot fill one micro-batch"):
        next(bucketed_epochs(rows[:3], LENGTHS[:3], bounds, micro, seed=3))


def test_buckets_pad_far_less_than_random_batches():
    rng = np.random.default_rng(0)
    rows = list(range(len(LENGTHS)))
    micro, n = 8, 40

    def padding(groups):
        return sum(max(LENGTHS[r] for r in g) * len(g) - sum(LENGTHS[r] for r in g) for g in groups)

    stream = bucketed_epochs(rows, LENGTHS, bucket_bounds(LENGTHS, 8), micro, seed=0)
    bucketed = [take(stream, micro) for _ in range(n)]
    shuffled = [list(rng.choice(rows, micro, replace=False)) for _ in range(n)]
    assert padding(bucketed) * 3 < padding(shuffled)


def collate(rows, rng=None):
    ids, mask = batch(rows, seed=2)
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def test_gpu_padding_reaches_the_bucket_bound_and_changes_no_loss():
    padded = padded_to_bounds(collate, [8, 16, 24], pad_id=0, token_labels=True)
    small = collate([5, 7])
    wide = padded([5, 7])
    assert wide["input_ids"].shape == (2, 8) and wide["labels"].shape == (2, 8)
    assert torch.equal(wide["input_ids"][:, :7], small["input_ids"]) and int(wide["attention_mask"][:, 7].sum()) == 0
    assert (wide["labels"][:, 7] == -100).all()
    assert padded([24])["input_ids"].shape == (1, 24)  # at a bound already
    assert padded([30])["input_ids"].shape == (1, 30)  # beyond the last bound: as it came
    model = XLTModel(tiny_base("gpt2"), tiny_tokenizer())
    model.add_language("sk", PromptConfig(num_virtual_tokens=2, init="vocab"))
    losses = [
        model(b["input_ids"], b["attention_mask"], plan="sk/prompt", labels=b["labels"], logits=False).loss.item()
        for b in (small, wide)
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def seq2seq(rows, rng=None):
    ids, mask = batch(rows, seed=2)
    return {"input_ids": ids, "attention_mask": mask, "labels": ids[:, :3].clone()}


def test_encoder_decoder_labels_are_widened_only_for_compiled_graphs_and_exactly():
    wide = padded_to_bounds(seq2seq, [8], pad_id=0, token_labels=False)([5, 6])
    assert wide["input_ids"].shape == (2, 8) and wide["labels"].shape == (2, 3)
    compiled = padded_to_bounds(seq2seq, [8], pad_id=0, token_labels=False, widen_targets=True)([5, 6])
    assert compiled["labels"].shape == (2, 4) and (compiled["labels"][:, 3] == -100).all()
    assert torch.equal(compiled["labels"][:, :3], wide["labels"])
    # the decoder is causal and ignored labels take no loss: the same loss and prompt gradient
    model = XLTModel(tiny_base("mt5"), tiny_tokenizer())
    prompt = model.add_language("sk", PromptConfig(num_virtual_tokens=2, init="vocab"))
    prompt.requires_grad_(True)
    found = []
    for b in (wide, compiled):
        loss = model(b["input_ids"], b["attention_mask"], plan="sk/prompt", labels=b["labels"], logits=False).loss
        found.append((loss.item(), torch.autograd.grad(loss, list(prompt.parameters()))[0]))
    assert found[0][0] == pytest.approx(found[1][0], rel=1e-6)
    assert torch.allclose(found[0][1], found[1][1], rtol=1e-5, atol=1e-7)


def test_runs_record_their_buckets_and_none_reads_as_a_run_before_them(tmp_path):
    bucketed = jsonable(TaskRun("t", "prompt", None, None, tmp_path))
    plain = jsonable(TaskRun("t", "prompt", None, None, tmp_path, length_buckets=0))
    assert bucketed["length_buckets"] == 8 and plain["length_buckets"] is None
    before = {k: v for k, v in plain.items() if k != "length_buckets"}  # a record written before the option
    assert differing_keys(flat(before), flat(plain)) == []
    assert differing_keys(flat(before), flat(bucketed)) == ["length_buckets"]
    with pytest.raises(XLTError, match="length_buckets must be >= 0"):
        TaskRun("t", "prompt", None, None, tmp_path, length_buckets=-2)


def test_a_task_formats_lengths_are_its_batches_row_lengths(tmp_path):
    import json

    from xlt.tasks.text_classification import TextClassificationTask
    from xlt.training.task import TaskFormat

    lines = [{"text": " ".join(["w5"] * (i + 1)), "label": "w1" if i % 2 else "w2"} for i in range(9)]
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps(line) + "\n" for line in lines))
    task = TextClassificationTask("t", data, data, data)
    rows = task.examples("en", "train")
    for arch in ("gpt2", "t5", "bert"):
        fmt = TaskFormat(XLTModel(tiny_base(arch), tiny_tokenizer()), task, ["w1", "w2"], 32, max_new_tokens=2)
        expected = [int(fmt.collate([row])["attention_mask"].sum()) for row in rows]
        assert fmt.lengths(rows, chunk=4) == expected and len(set(expected)) == 9
