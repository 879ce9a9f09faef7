"""NER scores: entity-level F1 over IOB2 tags, and the span-level F1 of generated ``TYPE: text`` spans.

Entities follow seqeval's strict IOB2 mode (``mode="strict", scheme=IOB2``): an entity starts at ``B-X`` and
runs over the ``I-X`` tags that follow it; an ``I-X`` that does not continue a ``B-X``/``I-X`` of the same type
(after ``O``, or after another type) belongs to no entity. A zero denominator gives 0, as seqeval's default
(which also warns): no predicted entities means precision 0, no gold entities means recall 0, and F1 is 0 then.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from xlt.errors import XLTError
from xlt.tasks.metrics import check_scorable

SPAN_SEPARATOR = "$$"


def _tag_type(tag: str, position: int) -> tuple[str, str]:
    """(prefix, type) of one IOB2 tag; ("O", "") for outside."""
    if tag == "O":
        return "O", ""
    # seqeval strips the delimiter off both ends of the type, so "B--X" is of type "X".
    kind = tag[2:].strip("-") if tag[:2] in ("B-", "I-") else ""
    if not kind:
        raise XLTError(f"tag {tag!r} at position {position} is not IOB2 (O, B-TYPE, I-TYPE)")
    return tag[0], kind


def bio_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities of one tag sequence as (type, start, end-exclusive), in order, under strict IOB2."""
    spans: list[tuple[str, int, int]] = []
    current: tuple[str, int] | None = None  # the open entity's type and start
    for position, tag in enumerate(tags):
        prefix, kind = _tag_type(tag, position)
        if prefix == "I" and current is not None and current[0] == kind:
            continue
        if current is not None:
            spans.append((current[0], current[1], position))
        current = (kind, position) if prefix == "B" else None
    if current is not None:
        spans.append((current[0], current[1], len(tags)))
    return spans


def _prf(correct: int, predicted: int, actual: int) -> dict[str, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def entity_scores(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro-averaged entity precision, recall and F1 as fractions, equal to seqeval's ``precision_score``,
    ``recall_score`` and ``f1_score`` with ``mode="strict", scheme=IOB2``."""
    check_scorable(predictions, references)
    correct = predicted = actual = 0
    for index, (predicted_tags, gold_tags) in enumerate(zip(predictions, references, strict=True)):
        if len(predicted_tags) != len(gold_tags):
            raise XLTError(
                f"example {index} has {len(predicted_tags)} predicted tags for {len(gold_tags)} gold tags; "
                "predict one tag per token"
            )
        predicted_spans = set(bio_spans(predicted_tags))
        gold_spans = set(bio_spans(gold_tags))
        correct += len(predicted_spans & gold_spans)
        predicted += len(predicted_spans)
        actual += len(gold_spans)
    return _prf(correct, predicted, actual)


def parse_spans(text: str) -> list[tuple[str, str]]:
    """The (TYPE, text) spans of a generated ``TYPE: text$$TYPE: text`` answer, in order.

    Generations are often malformed, so nothing here raises: pieces without a ':' or with an empty type or text
    are skipped, the type is upper-cased and the text's whitespace collapsed. The text may itself hold a ':'.
    """
    if not isinstance(text, str):
        return []
    spans: list[tuple[str, str]] = []
    for piece in text.split(SPAN_SEPARATOR):
        kind, colon, words = piece.partition(":")
        kind, words = kind.strip().upper(), " ".join(words.split())
        if colon and kind and words:
            spans.append((kind, words))
    return spans


def format_spans(spans: Sequence[tuple[str, str]]) -> str:
    """The target text for ``spans``: ``TYPE: text`` pieces joined with ``$$``; "" for no spans."""
    return SPAN_SEPARATOR.join(f"{kind}: {words}" for kind, words in spans)


def spans_from_bio(tokens: Sequence[str], tags: Sequence[str]) -> list[tuple[str, str]]:
    """The (TYPE, words joined by a space) of the strict-IOB2 entities of a tagged sentence, in order."""
    if len(tokens) != len(tags):
        raise XLTError(f"{len(tokens)} tokens for {len(tags)} tags; give one tag per token")
    return [(kind, " ".join(tokens[start:end])) for kind, start, end in bio_spans(tags)]


def _canonical(spans: Sequence[tuple[str, str]]) -> Counter[tuple[str, str]]:
    # The same canonical form parse_spans gives, so gold spans built any other way compare alike.
    return Counter((kind.strip().upper(), " ".join(words.split())) for kind, words in spans)


def span_scores(
    predictions: Sequence[Sequence[tuple[str, str]]], references: Sequence[Sequence[tuple[str, str]]]
) -> dict[str, float]:
    """Span-level precision, recall and F1 as fractions, micro-averaged over the corpus.

    A predicted span is correct when type and text both equal a gold span's (type upper-cased, whitespace
    collapsed); each example's spans compare as multisets, so a span repeated twice in the gold earns two hits
    at most. Zero denominators give 0, as seqeval's default.
    """
    check_scorable(predictions, references)
    correct = predicted = actual = 0
    for predicted_spans, gold_spans in zip(predictions, references, strict=True):
        guessed, gold = _canonical(predicted_spans), _canonical(gold_spans)
        correct += sum((guessed & gold).values())
        predicted += sum(guessed.values())
        actual += sum(gold.values())
    return _prf(correct, predicted, actual)
