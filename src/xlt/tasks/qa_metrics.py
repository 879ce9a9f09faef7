"""Extractive QA scores: SQuAD v1.1 exact match and token F1, with MLQA's normalisation for other languages.

English (or no language) follows the official SQuAD v1.1 evaluation script; any other language follows the
official MLQA evaluation script (``mlqa_evaluation_v1.py``), which differs in three ways: all Unicode
punctuation is removed, each language drops its own articles, and Chinese is scored per character. Languages
MLQA does not list get its language-neutral rules (Unicode punctuation, no articles, whitespace tokens) rather
than an error, so every language of a run can be scored.

Empty answers follow SQuAD v1.1 (and MLQA): a prediction and a gold answer that both normalise to nothing are an
exact match but have F1 0, because F1 is 0 whenever no token is shared. (SQuAD v2.0 would give F1 1 there; v2.0
scores unanswerable questions, which these tasks do not have.)
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

from xlt.errors import XLTError
from xlt.tasks.metrics import check_scorable

_ASCII_PUNCTUATION = frozenset(string.punctuation)

# MLQA's article lists, applied after lower-casing and punctuation removal, as whole words (``\b``).
_ARTICLES: dict[str, re.Pattern[str]] = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    # MLQA's Vietnamese list, as the script has it (it mixes articles with other frequent words).
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
}

# MLQA's Arabic rule is re.sub('\\sال^|ال', ' ', text): its first branch needs a start-of-string after a
# character, so it never matches, and the rule replaces every "ال" with a space, inside words too.
_ARABIC_ARTICLE = "\u0627\u0644"

# Scripts written without spaces: each of these characters is one token and runs of other characters stay
# whitespace-split words (MLQA's mixed segmentation). Chinese uses MLQA's exact range; the others extend the
# same rule to their own scripts.
_SEGMENTED: dict[str, re.Pattern[str]] = {
    "zh": re.compile(r"[\u4e00-\u9fa5]"),
    "ja": re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]"),
    "th": re.compile(r"[\u0e00-\u0e7f]"),
    "lo": re.compile(r"[\u0e80-\u0eff]"),
    "my": re.compile(r"[\u1000-\u109f]"),
    "km": re.compile(r"[\u1780-\u17ff]"),
}


def _language_code(language: str | None) -> str | None:
    """The primary subtag, lower-cased ("zh-Hans" -> "zh"); None and English both mean SQuAD's rules."""
    if language is None:
        return None
    code = re.split(r"[-_]", language.strip(), maxsplit=1)[0].lower()
    return None if code in ("", "en") else code


def _is_unicode_punctuation(char: str) -> bool:
    # MLQA's set: every code point whose category starts with "P", plus string.punctuation (which adds
    # the ASCII symbols $ + < = > ^ ` | ~ of categories S*).
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def _segment(text: str, pattern: re.Pattern[str]) -> list[str]:
    tokens: list[str] = []
    run: list[str] = []
    for char in text:
        if pattern.match(char):
            tokens.extend("".join(run).split())
            run = []
            tokens.append(char)
        else:
            run.append(char)
    tokens.extend("".join(run).split())
    return tokens


def _tokens(text: str, language: str | None) -> list[str]:
    code = _language_code(language)
    text = text.lower()
    if code is None:
        text = "".join(char for char in text if char not in _ASCII_PUNCTUATION)
        return _ARTICLES["en"].sub(" ", text).split()
    text = "".join(char for char in text if not _is_unicode_punctuation(char))
    if code in _ARTICLES:
        text = _ARTICLES[code].sub(" ", text)
    elif code == "ar":
        text = text.replace(_ARABIC_ARTICLE, " ")
    if code in _SEGMENTED:
        return _segment(text, _SEGMENTED[code])
    return text.split()


def normalize_answer(text: str, language: str | None = None) -> str:
    """The answer as the official script compares it: lower-cased, without punctuation or articles, its
    tokens joined by single spaces (for Chinese, each character is a token)."""
    return " ".join(_tokens(text, language))


def _f1(prediction_tokens: list[str], answer_tokens: list[str]) -> float:
    shared = sum((Counter(prediction_tokens) & Counter(answer_tokens)).values())
    if shared == 0:
        return 0.0
    precision = shared / len(prediction_tokens)
    recall = shared / len(answer_tokens)
    return 2 * precision * recall / (precision + recall)


def _check_answers(answers: Sequence[str], where: str) -> None:
    # A bare string is a Sequence[str] too: each character would silently become a gold answer.
    if isinstance(answers, str):
        raise XLTError(f"{where} is a string; give each question a list of gold answers")
    if len(answers) == 0:
        raise XLTError(f"{where} has no gold answer; give each question at least one")


def _example_scores(prediction: str | None, answers: Sequence[str], language: str | None) -> tuple[float, float]:
    predicted = _tokens(prediction or "", language)
    exact = f1 = 0.0
    for answer in answers:
        gold = _tokens(answer, language)
        exact = max(exact, float(predicted == gold))
        f1 = max(f1, _f1(predicted, gold))
    return exact, f1


def qa_example_score(prediction: str | None, answers: Sequence[str], language: str | None = None) -> float:
    """One question's F1: the best over its gold answers. ``None`` (no answer) counts as an empty answer."""
    _check_answers(answers, "answers")
    return _example_scores(prediction, answers, language)[1]


def qa_scores(
    predictions: Sequence[str | None], references: Sequence[Sequence[str]], language: str | None = None
) -> dict[str, float]:
    """Exact match and F1 as fractions: each question's best over its gold answers, averaged over questions.

    ``language`` None or "en" gives SQuAD v1.1's normalisation, any other code MLQA's (see the module doc).
    """
    check_scorable(predictions, references)
    exact_total = f1_total = 0.0
    for index, (prediction, answers) in enumerate(zip(predictions, references, strict=True)):
        _check_answers(answers, f"references[{index}]")
        exact, f1 = _example_scores(prediction, answers, language)
        exact_total += exact
        f1_total += f1
    return {"exact_match": exact_total / len(references), "f1": f1_total / len(references)}
