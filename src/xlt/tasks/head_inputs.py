"""How an encoder's head sees a task's examples: one row per text (or text pair), one row per sentence with a
label on each word's first sub-token, or sliding windows over a long context with answer positions. Each
encoding keeps what maps the head's outputs back to the examples: the example of every row, the words' first
sub-tokens, the context's character offsets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from xlt.batching import pad
from xlt.errors import XLTError

IGNORE = -100  # a position no loss reads (HF's convention)


@dataclass
class HeadBatch:
    """A head's input rows. ``example``: the example each row belongs to (several rows for one example when a
    long context is split into windows); ``words``: per row, the position of each word's first sub-token (token
    heads); ``offsets``: per row, each token's character span in the context, or None for tokens that are not
    the context's (span heads). A word with no sub-token of its own (a control or zero-width character that the
    tokenizer drops) or beyond the input's length has no position: it is predicted outside any entity."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor | None = None
    example: list[int] = field(default_factory=list)
    words: list[list[int | None]] = field(default_factory=list)
    offsets: list[list[tuple[int, int] | None]] = field(default_factory=list)

    def tensors(self) -> dict[str, torch.Tensor]:
        """What a training step reads."""
        if self.labels is None:
            raise XLTError("a training batch needs labels (encode with train=True)")
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "labels": self.labels}


def _padded(rows: list[list[int]], tokenizer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return pad([np.asarray(r, dtype=np.int64) for r in rows], int(pad_id))


def _fast(tokenizer: Any, what: str) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise XLTError(f"{what} needs a fast tokenizer (offsets and word ids); load the model's tokenizer.json")


def encode_texts(
    tokenizer: Any, texts: Sequence[str], pairs: Sequence[str | None] | None, max_length: int
) -> HeadBatch:
    """One row per text, or per (text, pair) joined as the tokenizer joins a pair (the pair is truncated
    first: a hypothesis is short, a premise may be long)."""
    if pairs is None:
        ids = [tokenizer(t, truncation=True, max_length=max_length)["input_ids"] for t in texts]
    else:
        ids = [
            tokenizer(t, p or "", truncation="longest_first", max_length=max_length)["input_ids"]
            for t, p in zip(texts, pairs, strict=True)
        ]
    input_ids, mask = _padded([list(r) for r in ids], tokenizer)
    return HeadBatch(input_ids, mask, example=list(range(len(texts))))


def encode_words(
    tokenizer: Any,
    words: Sequence[Sequence[str]],
    tags: Sequence[Sequence[str]] | None,
    labels: Sequence[str],
    max_length: int,
) -> HeadBatch:
    """One row per sentence of words; a word's tag is the label of its first sub-token (the others and the
    special tokens are ignored by the loss), the convention of token classification on sub-word models."""
    _fast(tokenizer, "a token head")
    index = {label: i for i, label in enumerate(labels)}
    rows: list[list[int]] = []
    firsts: list[list[int | None]] = []
    targets = []
    for n, sentence in enumerate(words):
        encoding = tokenizer(list(sentence), is_split_into_words=True, truncation=True, max_length=max_length)
        word_ids = encoding.word_ids()
        # Each word's first sub-token, by the word's own index: a word that yields no token must not shift the
        # words after it onto its label.
        first: list[int | None] = [None] * len(sentence)
        for position, word in enumerate(word_ids):
            if word is not None and first[word] is None:
                first[word] = position
        rows.append(list(encoding["input_ids"]))
        firsts.append(first)
        if tags is not None:
            row = [IGNORE] * len(word_ids)
            for word, position in enumerate(first):
                if position is None:
                    continue
                tag = tags[n][word]
                if tag not in index:
                    raise XLTError(f"tag '{tag}' is not among the head's labels {list(labels)}")
                row[position] = index[tag]
            targets.append(row)
    input_ids, mask = _padded(rows, tokenizer)
    batch = HeadBatch(input_ids, mask, example=list(range(len(words))), words=firsts)
    if tags is not None:
        labels_t = torch.full(input_ids.shape, IGNORE, dtype=torch.long)
        for i, row in enumerate(targets):
            labels_t[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        batch.labels = labels_t
    return batch


def tags_from_logits(
    logits: torch.Tensor, batch: HeadBatch, lengths: Sequence[int], labels: Sequence[str]
) -> list[list[str]]:
    """Each sentence's tags from its words' first sub-tokens; a word without a position is "O"."""
    best = logits.argmax(-1).tolist()
    out = []
    for row, (first, length) in enumerate(zip(batch.words, lengths, strict=True)):
        tags = ["O" if position is None else labels[best[row][position]] for position in first]
        out.append(tags + ["O"] * (length - len(tags)))
    return out


def encode_windows(
    tokenizer: Any,
    questions: Sequence[str],
    contexts: Sequence[str],
    max_length: int,
    stride: int,
    answers: Sequence[tuple[int, str] | None] | None = None,
) -> HeadBatch:
    """Question and context as sliding windows over the context (``stride`` tokens shared by neighbours), so
    that no part of a long context is out of reach. With ``answers`` (character start and text per example),
    each window's target is the answer's first and last token, or position 0 where the window does not hold the
    whole answer (the convention of SQuAD fine-tuning)."""
    _fast(tokenizer, "a span head")
    # A question keeps at most a quarter of the window (as max_query_length does in SQuAD fine-tuning), so every
    # window holds context; the stride must be shorter than the room the longest question leaves.
    # The stride is bounded by the room the longest allowed question leaves, not by this batch's questions, so an
    # example's windows do not depend on its batch.
    query = max(1, max_length // 4)
    questions = [_clipped(tokenizer, q, query) for q in questions]
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    longest = max((len(tokenizer(q, add_special_tokens=False)["input_ids"]) for q in questions), default=0)
    room = max_length - max(query, longest) - specials
    if room < 2:
        raise XLTError(
            f"max_length {max_length} leaves no room for a context beside a question of {longest} tokens "
            f"(raise max_length to at least {longest + specials + 8})"
        )
    stride = max(0, min(stride, room - 1))
    try:
        encoding = tokenizer(
            list(questions),
            list(contexts),
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
    except BaseException as exc:  # the Rust tokenizer panics (a BaseException) on what it cannot window
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise XLTError(f"cannot split a context into windows of {max_length} tokens: {exc}") from None
    rows: list[list[int]] = []
    offsets: list[list[tuple[int, int] | None]] = []
    targets: list[tuple[int, int]] = []
    example = [int(i) for i in encoding["overflow_to_sample_mapping"]]
    firsts = {owner: example.index(owner) for owner in set(example)}
    for window, owner in enumerate(example):
        sequence = _sequence_ids(encoding, window, firsts[owner])
        spans = [
            (int(a), int(b)) if part == 1 else None
            for part, (a, b) in zip(sequence, encoding["offset_mapping"][window], strict=True)
        ]
        rows.append(list(encoding["input_ids"][window]))
        offsets.append(spans)
        if answers is not None:
            targets.append(_answer_positions(spans, answers[owner]))
    input_ids, mask = _padded(rows, tokenizer)
    batch = HeadBatch(input_ids, mask, example=example, offsets=offsets)
    if answers is not None:
        batch.labels = torch.tensor(targets, dtype=torch.long).reshape(-1, 2)
    return batch


def _sequence_ids(encoding: Any, window: int, first: int) -> list[int | None]:
    """Which part of the pair each token of ``window`` is (0 question, 1 context, None special). Older
    ``tokenizers`` releases lose these ids on overflowing windows of a tokenizer without a pair template; every
    window of a sample then has its first window's question prefix and special suffix around the context."""
    ids = list(encoding.sequence_ids(window))
    if 1 in ids or window == first:
        return ids
    layout = list(encoding.sequence_ids(first))
    if 1 not in layout:
        return ids
    start = layout.index(1)
    suffix = len(layout) - 1 - max(i for i, part in enumerate(layout) if part == 1)
    return layout[:start] + [1] * (len(ids) - start - suffix) + layout[len(layout) - suffix :]


def _clipped(tokenizer: Any, text: str, tokens: int) -> str:
    """``text`` cut after its first ``tokens`` tokens (through the offsets, so the kept text is the text's own)."""
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if len(encoding["input_ids"]) <= tokens:
        return text
    return text[: encoding["offset_mapping"][tokens - 1][1]]


def _answer_positions(spans: list[tuple[int, int] | None], answer: tuple[int, str] | None) -> tuple[int, int]:
    if answer is None:
        return (0, 0)
    start_char, text = answer
    end_char = start_char + len(text)
    inside = [i for i, span in enumerate(spans) if span is not None]
    if not inside or spans[inside[0]][0] > start_char or spans[inside[-1]][1] < end_char:  # type: ignore[index]
        return (0, 0)
    start = next(i for i in inside if spans[i][1] > start_char)  # type: ignore[index]
    end = next(i for i in reversed(inside) if spans[i][0] < end_char)  # type: ignore[index]
    return (start, end) if start <= end else (0, 0)


def best_answers(
    logits: torch.Tensor, batch: HeadBatch, contexts: Sequence[str], max_answer_tokens: int = 30
) -> list[str]:
    """Each example's highest-scoring span (start + end logit) over ALL of its windows, in the context's own
    characters (through the offsets); "" when no window holds a valid span."""
    spans = best_spans(logits, batch, contexts, max_answer_tokens)
    return ["" if span is None else contexts[i][span[0] : span[1]] for i, span in enumerate(spans)]


def best_spans(
    logits: torch.Tensor, batch: HeadBatch, contexts: Sequence[str], max_answer_tokens: int = 30
) -> list[tuple[int, int, float] | None]:
    """``best_answers`` as (start, end, score) character offsets into each context (score: the start plus the end
    logit); None when no window holds a valid span."""
    start_logits, end_logits = logits[..., 0].float(), logits[..., 1].float()
    best: dict[int, tuple[int, int, float]] = {}
    for window, owner in enumerate(batch.example):
        spans = batch.offsets[window]
        inside = torch.tensor([s is not None for s in spans] + [False] * (logits.shape[1] - len(spans)))
        if not inside.any():
            continue
        start = start_logits[window].masked_fill(~inside, float("-inf"))
        end = end_logits[window].masked_fill(~inside, float("-inf"))
        # Every (start, end) with start <= end < start + max_answer_tokens: a banded upper triangle.
        scores = start[:, None] + end[None, :]
        width = scores.shape[0]
        rows = torch.arange(width)[:, None]
        cols = torch.arange(width)[None, :]
        scores = scores.masked_fill((cols < rows) | (cols >= rows + max_answer_tokens), float("-inf"))
        flat = int(scores.argmax())
        value = float(scores.view(-1)[flat])
        if value == float("-inf"):
            continue
        s, e = divmod(flat, width)
        a, b = spans[s][0], spans[e][1]  # type: ignore[index]
        context = contexts[owner]
        while a < b and context[a].isspace():  # sentencepiece offsets may take the space before a word
            a += 1
        while b > a and context[b - 1].isspace():
            b -= 1
        if a == b:  # a span of whitespace alone is no answer
            continue
        if owner not in best or value > best[owner][2]:
            best[owner] = (a, b, value)
    return [best.get(i) for i in range(len(contexts))]
