"""Length buckets for task training: a few padded lengths chosen from the data, and batches drawn within one.

Random batches of short inputs pad every row to the batch's longest: with sentences of 10 to 40 tokens, half of
a batch is padding. Drawing each micro-batch from rows of similar length removes most of it (a CPU computes
less), and padding each batch to its bucket's bound instead of its longest row leaves a GPU a handful of shapes
to compile kernels for and cache (a new length costs a slow first step there). The order stays a function of
the seed alone: every epoch permutes the rows, splits each bucket into micro-batches, and shuffles those;
each epoch drops fewer than one micro-batch's rows of leftovers (different ones every epoch).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Sequence
from itertools import count
from typing import Any

import numpy as np
import torch

from xlt.batching import IGNORE_INDEX
from xlt.errors import XLTError

# A GPU pads batches to their bucket's bound rounded up to a multiple of this (tensor-core tiles); buckets
# themselves are the data's quantiles as they are (rounding short inputs up to 8 tokens would merge them).
MULTIPLE = 8


def length_buckets(value: int | None, key: str = "length_buckets") -> int | None:
    """A ``length_buckets`` setting checked, 0 made None: a run or matrix without buckets records what one made
    before they existed recorded (nothing), so that it still matches its record."""
    if value is not None and value < 0:
        raise XLTError(f"{key} must be >= 0 (0: no buckets), got {value}")
    return value or None


def bucket_bounds(lengths: Sequence[int], buckets: int, multiple: int = MULTIPLE) -> list[int]:
    """Up to ``buckets`` padded lengths: the data's length quantiles rounded up to ``multiple``, the last one the
    longest length (so every row fits one)."""
    ordered = sorted(lengths)
    if not ordered:
        return []
    longest = ordered[-1]
    bounds = {longest}
    for i in range(1, buckets):
        quantile = ordered[max(0, math.ceil(i * len(ordered) / buckets) - 1)]
        bounds.add(min(longest, -(-quantile // multiple) * multiple))
    return sorted(bounds)


def padded_bounds(bounds: Sequence[int], multiple: int = MULTIPLE) -> list[int]:
    """The lengths a GPU pads ``bounds``' batches to: each rounded up to ``multiple``, the longest kept (rows are
    bucketed by the unrounded bounds on every device, so the data order does not depend on the device)."""
    if not bounds:
        return []
    longest = max(bounds)
    return sorted({min(longest, -(-b // multiple) * multiple) for b in bounds})


def bucketed_epochs(
    rows: Sequence[Any], lengths: Sequence[int], bounds: Sequence[int], micro: int, seed: int
) -> Iterator[Any]:
    """``rows`` in epochs, each run of ``micro`` consecutive rows from one bucket (rows that leave a bucket short
    of a micro-batch are batched together, longest apart from shortest; the last short batch is dropped)."""
    if len(rows) < micro:
        raise ValueError(f"{len(rows)} rows cannot fill one micro-batch of {micro}")
    bucket_of = [bisect.bisect_left(bounds, n) for n in lengths]
    for epoch in count():
        rng = np.random.default_rng([seed, epoch])
        members: dict[int, list[int]] = {}
        for index in rng.permutation(len(rows)):
            members.setdefault(bucket_of[int(index)], []).append(int(index))
        batches, leftovers = [], []
        for bucket in sorted(members):
            items = members[bucket]
            whole = len(items) - len(items) % micro
            batches += [items[i : i + micro] for i in range(0, whole, micro)]
            leftovers += items[whole:]
        batches += [leftovers[i : i + micro] for i in range(0, len(leftovers) - micro + 1, micro)]
        for batch in rng.permutation(len(batches)):
            for index in batches[int(batch)]:
                yield rows[index]


def padded_to_bounds(
    collate: Callable[..., dict[str, torch.Tensor]],
    bounds: Sequence[int],
    pad_id: int,
    token_labels: bool,
    widen_targets: bool = False,
) -> Callable[..., dict[str, torch.Tensor]]:
    """``collate`` whose batches are padded to the smallest bound that holds them (a GPU's few shapes).
    ``token_labels``: the labels align with the input positions (decoders, token heads) and are padded too.
    ``widen_targets``: an encoder-decoder's target labels are padded (ignored) to the next power of two, so that
    compiled graphs see few target lengths; exact, as the decoder is causal and ignored labels take no loss."""

    def padded(rows: Sequence[Any], rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
        batch = collate(rows, rng)
        if widen_targets and not token_labels:
            batch = _widened_targets(batch)
        width = batch["input_ids"].shape[1]
        index = bisect.bisect_left(bounds, width)
        extra = (bounds[index] if index < len(bounds) else width) - width
        if extra <= 0:
            return batch
        fill = {"input_ids": pad_id, "attention_mask": 0, "token_type_ids": 0}
        if token_labels:
            fill["labels"] = IGNORE_INDEX
        out = dict(batch)
        for key, value in fill.items():
            tensor = batch.get(key)
            if tensor is not None and tensor.dim() == 2 and tensor.shape[1] == width:
                out[key] = torch.nn.functional.pad(tensor, (0, extra), value=value)
        return out

    return padded


def _widened_targets(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    labels = batch.get("labels")
    if labels is None or labels.dim() != 2 or "decoder_input_ids" in batch or "decoder_attention_mask" in batch:
        return batch  # decoder inputs given beside the labels would have to be widened alike
    width = labels.shape[1]
    wider = 1 << max(width - 1, 0).bit_length()
    if wider == width:
        return batch
    return {**batch, "labels": torch.nn.functional.pad(labels, (0, wider - width), value=IGNORE_INDEX)}
