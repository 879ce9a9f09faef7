"""Deterministic batch streams: the global sequence of micro-batches is a function of the seed alone, so a
resumed run sees the same data as an uninterrupted one, and every process of a multi-process run takes its
own rows of each micro-batch (the result does not depend on the number of processes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import count
from typing import Any

import numpy as np
import torch

from xlt.training.corpora import CorpusConfig, CorpusError, describe, documents, pack, tokenized

Collate = Callable[[Sequence[Any], np.random.Generator], dict[str, torch.Tensor]]


def shuffled(items: Iterator[Any], buffer: int, rng: np.random.Generator) -> Iterator[Any]:
    """Shuffle a stream within a buffer (streamed corpora cannot be shuffled whole)."""
    pool: list[Any] = []
    for item in items:
        pool.append(item)
        if len(pool) >= buffer:
            yield pool.pop(int(rng.integers(len(pool))))
    rng.shuffle(pool)  # type: ignore[arg-type]
    yield from pool


class SegmentSource:
    """Packed token segments of one corpus split; the training split repeats in reshuffled epochs."""

    def __init__(
        self,
        corpus: CorpusConfig,
        tokenizer: Any,
        length: int,
        separator: int | None,
        seed: int,
        shuffle_buffer: int = 2048,
    ) -> None:
        self.corpus, self.tokenizer, self.length = corpus, tokenizer, length
        self.separator, self.seed, self.shuffle_buffer = separator, seed, shuffle_buffer

    def _packed(self, split: str) -> Iterator[list[int]]:
        texts = documents(self.corpus, split)  # type: ignore[arg-type]
        return pack(tokenized(texts, self.tokenizer), self.length, self.separator)

    def describe(self) -> str:
        return describe(self.corpus)

    def count(self, split: str, limit: int) -> int:
        """Packed segments of ``split``, counted up to ``limit`` (a whole pass over a large corpus is costly)."""
        return sum(1 for _, _ in zip(range(limit), self._packed(split), strict=False))

    def train(self) -> Iterator[list[int]]:
        for epoch in count():
            produced = 0
            for segment in shuffled(
                self._packed("train"), self.shuffle_buffer, np.random.default_rng([self.seed, epoch])
            ):
                produced += 1
                yield segment
            if produced == 0:
                raise CorpusError(
                    f"{self.describe()}: the training split holds less than one segment of {self.length} tokens "
                    "(give more text or a shorter max_length)"
                )

    def validation(self, limit: int) -> list[list[int]]:
        segments = []
        for segment in self._packed("validation"):
            segments.append(segment)
            if len(segments) >= limit:
                break
        return segments


def micro_batches(
    examples: Callable[[], Iterator[Any]], collate: Collate, micro: int, seed: int
) -> Callable[[int, int, int], Iterator[dict[str, torch.Tensor]]]:
    """A stream factory ``(start, rank, world)``: global micro-batch i is collated with rng (seed, i)."""

    def stream(start: int, rank: int, world: int) -> Iterator[dict[str, torch.Tensor]]:
        source = examples()
        for index in count():
            rows = [next(source) for _ in range(micro)]
            if index < start:
                continue
            batch = collate(rows, np.random.default_rng([seed, index]))
            yield {key: value[rank::world] for key, value in batch.items()}

    return stream


def fixed_batches(rows: Sequence[Any], collate: Collate, micro: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Evaluation batches: the same every time (seeded per batch)."""
    return [collate(rows[i : i + micro], np.random.default_rng([seed, 10**6 + i])) for i in range(0, len(rows), micro)]
