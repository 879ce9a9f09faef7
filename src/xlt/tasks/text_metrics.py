"""Scores for free text: exact match and corpus-level chrF (chrF++ with ``word_order=2``), as fractions.

chrF equals sacrebleu's ``CHRF`` with its defaults (one reference per prediction): character n-grams of orders
1..6 taken with all whitespace removed, their counts summed over the corpus, precision and recall averaged over
the orders both sides have n-grams of (sacrebleu's "effective order"; epsilon smoothing off), then combined
into an F-beta. sacrebleu reports 0-100; these functions return 0-1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from xlt.errors import XLTError
from xlt.tasks.metrics import check_scorable

# chrF++ splits one ASCII punctuation mark off the end (or else the start) of each word, as sacrebleu does.
_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def exact_match(predictions: Sequence[str | None], references: Sequence[str]) -> float:
    """The fraction of predictions equal to their reference, both stripped of surrounding whitespace.
    ``None`` (no output) counts as the empty string."""
    check_scorable(predictions, references)
    hits = sum((p or "").strip() == r.strip() for p, r in zip(predictions, references, strict=True))
    return hits / len(references)


def _words(text: str) -> list[str]:
    words: list[str] = []
    for word in text.split():
        if len(word) > 1 and word[-1] in _PUNCTUATION:
            words += [word[:-1], word[-1]]
        elif len(word) > 1 and word[0] in _PUNCTUATION:
            words += [word[0], word[1:]]
        else:
            words.append(word)
    return words


def _ngrams(text: str, char_order: int, word_order: int) -> list[Counter[str]]:
    chars = "".join(text.split())
    counters = [Counter(chars[i : i + n] for i in range(len(chars) - n + 1)) for n in range(1, char_order + 1)]
    if word_order:
        words = _words(text)
        counters += [
            Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1)) for n in range(1, word_order + 1)
        ]
    return counters


def _f_beta(statistics: list[list[int]], beta: float) -> float:
    factor = beta**2
    precision = recall = 0.0
    orders = 0
    for n_hyp, n_ref, n_match in statistics:
        # An order only one side has n-grams of (short strings) is left out rather than counted as zero.
        if n_hyp > 0 and n_ref > 0:
            precision += n_match / n_hyp
            recall += n_match / n_ref
            orders += 1
    if orders == 0:
        return 0.0
    precision, recall = precision / orders, recall / orders
    if precision + recall == 0:
        return 0.0
    return (1 + factor) * precision * recall / (factor * precision + recall)


def chrf(
    predictions: Sequence[str | None],
    references: Sequence[str],
    char_order: int = 6,
    word_order: int = 0,
    beta: float = 2.0,
) -> float:
    """Corpus-level chrF in [0, 1] (sacrebleu's ``CHRF``); ``word_order=2`` gives chrF++. ``None`` counts as ""."""
    check_scorable(predictions, references)
    if char_order < 0 or word_order < 0 or char_order + word_order == 0:
        raise XLTError(f"chrF needs n-gram orders >= 0 with at least one > 0, got {char_order=} {word_order=}")
    if beta < 0:
        raise XLTError(f"chrF needs beta >= 0, got {beta}")
    totals = [[0, 0, 0] for _ in range(char_order + word_order)]
    for prediction, reference in zip(predictions, references, strict=True):
        hypothesis_ngrams = _ngrams(prediction or "", char_order, word_order)
        reference_ngrams = _ngrams(reference, char_order, word_order)
        for total, hyp, ref in zip(totals, hypothesis_ngrams, reference_ngrams, strict=True):
            # sacrebleu counts no hypothesis n-grams of an order the reference has none of.
            total[0] += hyp.total() if ref else 0
            total[1] += ref.total()
            total[2] += (hyp & ref).total()
    return _f_beta(totals, beta)


def seq2seq_scores(predictions: Sequence[str | None], references: Sequence[str]) -> dict[str, float]:
    """Exact match and chrF (both fractions) of generated texts against one reference each."""
    return {"exact_match": exact_match(predictions, references), "chrf": chrf(predictions, references)}
