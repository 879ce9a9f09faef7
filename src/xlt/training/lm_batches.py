"""Language-modelling batches: token-id segments made into the inputs and labels of each objective.

- encoder-decoder: T5 span corruption (Raffel et al. 2020), inputs and targets derived so that inputs fill
  the requested length (the paper's 256 in / 58 out with noise density 0.15 and mean span 3);
- encoder: masked LM (BERT's 80/10/10), the loss taken only at masked positions;
- decoder-only: causal LM.
Every builder pads a batch to its longest row only: nothing is padded to a fixed length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from xlt.batching import pad
from xlt.errors import XLTError


@dataclass(frozen=True)
class SpanCorruptionLengths:
    tokens: int  # raw tokens consumed per example
    inputs: int
    targets: int


def span_corruption_lengths(inputs_length: int, noise_density: float, mean_span: float) -> SpanCorruptionLengths:
    """The longest raw segment whose corrupted input fits ``inputs_length`` (T5's own derivation)."""
    if not 0 < noise_density < 1 or mean_span <= 0:
        raise XLTError(
            f"span corruption needs 0 < noise_density < 1 and mean_span > 0, got {noise_density}, {mean_span}"
        )

    def lengths(tokens: int) -> tuple[int, int]:
        noise = round(tokens * noise_density)
        spans = max(1, round(noise / mean_span))
        return tokens - noise + spans + 1, noise + spans + 1

    tokens = inputs_length
    while lengths(tokens + 1)[0] <= inputs_length:
        tokens += 1
    # T5's search only grows: where even inputs_length raw tokens overflow (mean_span near 1: a sentinel per
    # noise token, plus EOS), shrink until the corrupted input fits.
    while tokens > 2 and lengths(tokens)[0] > inputs_length:
        tokens -= 1
    inputs, targets = lengths(tokens)
    return SpanCorruptionLengths(tokens, inputs, targets)


def random_spans_noise_mask(
    length: int, noise_density: float, mean_span: float, rng: np.random.Generator
) -> np.ndarray:
    """T5's noise mask: noise and non-noise alternate in spans of random lengths; starts with non-noise."""
    noise = round(length * noise_density)
    noise = min(max(noise, 1), length - 1)
    spans = max(1, round(noise / mean_span))
    spans = min(spans, noise, length - noise)

    def segment(total: int, parts: int) -> np.ndarray:
        marks = np.arange(total - 1) < (parts - 1)
        rng.shuffle(marks)
        ids = np.cumsum(np.concatenate([[0], marks]))
        return np.bincount(ids, minlength=parts)

    noise_lengths = segment(noise, spans)
    keep_lengths = segment(length - noise, spans)
    interleaved = np.stack([keep_lengths, noise_lengths], axis=1).reshape(-1)
    starts = np.cumsum(interleaved)[:-1]
    start_flags = np.zeros(length, dtype=np.int64)
    start_flags[starts] = 1
    span_number = np.cumsum(start_flags)
    return span_number % 2 == 1


def _sentinel_ids(tokenizer_vocab_size: int, sentinel_start: int | None) -> int:
    # T5 sentinels <extra_id_0..99> are the last ids of the vocabulary, counting down.
    return tokenizer_vocab_size - 1 if sentinel_start is None else sentinel_start


def corrupt(tokens: np.ndarray, mask: np.ndarray, first_sentinel: int, eos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Replace each noise span by one sentinel in the input; the target lists sentinels and their spans."""

    def fill(keep_noise: np.ndarray) -> np.ndarray:
        starts = keep_noise & ~np.concatenate([[False], keep_noise[:-1]])
        sentinels = first_sentinel - (np.cumsum(starts) - 1)
        out = np.where(starts, sentinels, tokens)
        out = out[~(keep_noise & ~starts)]
        return np.concatenate([out, [eos_id]])

    return fill(mask), fill(~mask)


@dataclass
class SpanCorruption:
    """Batches for encoder-decoders. ``first_sentinel``: id of ``<extra_id_0>`` (defaults to the last id)."""

    vocab_size: int
    eos_id: int
    pad_id: int
    inputs_length: int = 256
    noise_density: float = 0.15
    mean_span: float = 3.0
    first_sentinel: int | None = None

    @property
    def lengths(self) -> SpanCorruptionLengths:
        return span_corruption_lengths(self.inputs_length, self.noise_density, self.mean_span)

    def __call__(self, segments: Sequence[Sequence[int]], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        sentinel = _sentinel_ids(self.vocab_size, self.first_sentinel)
        inputs, targets = [], []
        for segment in segments:
            tokens = np.asarray(segment, dtype=np.int64)
            if len(tokens) < 2:
                raise XLTError("span corruption needs segments of at least 2 tokens; drop shorter texts")
            noise = random_spans_noise_mask(len(tokens), self.noise_density, self.mean_span, rng)
            x, y = corrupt(tokens, noise, sentinel, self.eos_id)
            inputs.append(x)
            targets.append(y)
        input_ids, attention_mask = pad(inputs, self.pad_id)
        labels, _ = pad(targets, -100)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@dataclass
class MaskedLM:
    """BERT-style masking for encoders: ``probability`` of positions chosen, 80 % ``[MASK]``, 10 % random,
    10 % kept. Labels are -100 outside the chosen positions, so logits are needed only where labels are set.
    ``special_ids`` (CLS, SEP, PAD...) are never chosen."""

    mask_id: int
    pad_id: int
    vocab_size: int
    special_ids: tuple[int, ...] = ()
    probability: float = 0.15
    replace_vocab: Sequence[int] | None = None  # ids random replacements are drawn from (default: all)

    def __call__(self, segments: Sequence[Sequence[int]], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = pad([np.asarray(s, dtype=np.int64) for s in segments], self.pad_id)
        ids = input_ids.numpy().copy()
        candidates = attention_mask.numpy().astype(bool) & ~np.isin(ids, list(self.special_ids))
        chosen = candidates & (rng.random(ids.shape) < self.probability)
        for row in range(ids.shape[0]):  # at least one prediction per row, so no row is wasted
            if not chosen[row].any() and candidates[row].any():
                chosen[row, rng.choice(np.flatnonzero(candidates[row]))] = True
        labels = np.where(chosen, ids, -100)
        roll = rng.random(ids.shape)
        pool = np.asarray(self.replace_vocab) if self.replace_vocab is not None else None
        random_ids = (
            pool[rng.integers(0, len(pool), ids.shape)]
            if pool is not None
            else rng.integers(0, self.vocab_size, ids.shape)
        )
        ids = np.where(chosen & (roll < 0.8), self.mask_id, ids)
        ids = np.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, ids)
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": attention_mask,
            "labels": torch.from_numpy(labels),
        }


@dataclass
class CausalLM:
    """Next-token prediction for decoders; labels equal the inputs (the model shifts), -100 on padding."""

    pad_id: int

    def __call__(self, segments: Sequence[Sequence[int]], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = pad([np.asarray(s, dtype=np.int64) for s in segments], self.pad_id)
        labels = input_ids.masked_fill(attention_mask == 0, -100)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
