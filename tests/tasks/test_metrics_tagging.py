"""NER scores: strict-IOB2 entities (equal to seqeval's strict mode) and the span-level F1 of generated spans."""

import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlt.errors import XLTError
from xlt.tasks.tagging_metrics import (
    bio_spans,
    entity_scores,
    format_spans,
    parse_spans,
    span_scores,
    spans_from_bio,
)

pytestmark = pytest.mark.no_model  # no model, no transformers: run once, under transformers 5.x

# ---- entities of a tag sequence ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([], []),
        (["O", "O"], []),
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
        # I- after O starts nothing in strict mode
        (["O", "I-PER", "I-PER"], []),
        (["I-PER", "B-PER"], [("PER", 1, 2)]),
        # I-LOC after B-PER ends the PER entity and starts nothing
        (["B-PER", "I-LOC"], [("PER", 0, 1)]),
        # B- followed by I- of another type, then I- of the first type: the entity does not resume
        (["B-PER", "I-LOC", "I-PER"], [("PER", 0, 1)]),
        # an entity at the end of the sequence
        (["O", "B-ORG", "I-ORG"], [("ORG", 1, 3)]),
        # consecutive B-'s are separate entities
        (["B-PER", "B-PER", "I-PER", "B-LOC"], [("PER", 0, 1), ("PER", 1, 3), ("LOC", 3, 4)]),
        (["B-MISC"], [("MISC", 0, 1)]),
    ],
)
def test_bio_spans(tags, expected):
    assert bio_spans(tags) == expected


@pytest.mark.parametrize("bad", ["X-PER", "E-PER", "S-LOC", "B-", "I", "per", "b-per", ""])
def test_bio_spans_refuses_non_iob2_tags(bad):
    with pytest.raises(XLTError, match=rf"^tag {bad!r} at position 3 is not IOB2 \(O, B-TYPE, I-TYPE\)$"):
        bio_spans(["O", "B-PER", "I-PER", bad])


# ---- entity scores ----------------------------------------------------------------------------------------


def test_entity_scores():
    # gold entities: (PER 0-2) (LOC 3-4) | (ORG 0-1) = 3; predicted: (PER 0-2) | (ORG 0-1) (MISC 1-2) = 3,
    # the stray I-LOC is none; 2 correct: P = R = F1 = 2/3
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "I-LOC"], ["B-ORG", "B-MISC"]]
    assert entity_scores(predicted, gold) == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})


def test_entity_scores_seqeval_docstring_example():
    # seqeval's own example: MISC spans differ (3-6 vs 2-6), PER matches: 1 of 2 either way
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    predicted = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    assert entity_scores(predicted, gold) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}


def test_entity_scores_partial_and_strict():
    # predicted 1 entity, gold 2, 1 correct: P = 1, R = 1/2, F1 = 2 * 1/2 / (3/2) = 2/3
    assert entity_scores([["B-LOC", "O", "O"]], [["B-LOC", "O", "B-PER"]]) == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3}
    )
    # A gold "I-PER I-PER" is no entity in strict mode (seqeval's default mode would count it and give 1.0):
    # 1 predicted, 0 gold, 0 correct
    assert entity_scores([["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]]) == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
    }


def test_no_entities_anywhere_scores_zero_as_seqeval():
    assert entity_scores([["O", "O"]], [["O", "O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_entity_scores_refusals():
    with pytest.raises(XLTError, match=r"^3 predictions for 4 references$"):
        entity_scores([["O"]] * 3, [["O"]] * 4)
    with pytest.raises(XLTError, match=r"^no examples to score$"):
        entity_scores([], [])
    with pytest.raises(XLTError, match=r"^example 1 has 2 predicted tags for 3 gold tags"):
        entity_scores([["O"], ["O", "O"]], [["O"], ["O", "O", "O"]])


# ---- seqeval as the oracle, where it is installed ---------------------------------------------------------

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
sentences = st.lists(st.lists(st.sampled_from(TAGS), max_size=8), min_size=1, max_size=5)


def _seqeval(predicted, gold):
    metrics = pytest.importorskip("seqeval.metrics")
    scheme = pytest.importorskip("seqeval.scheme")
    kwargs = {"mode": "strict", "scheme": scheme.IOB2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on zero denominators
        return {
            "precision": metrics.precision_score(gold, predicted, **kwargs),
            "recall": metrics.recall_score(gold, predicted, **kwargs),
            "f1": metrics.f1_score(gold, predicted, **kwargs),
        }


@settings(deadline=None, max_examples=40)  # the first call imports seqeval and scikit-learn; each call is slow
@given(sentences, st.randoms(use_true_random=False))
def test_entity_scores_equal_seqeval_strict(gold, rnd):
    predicted = [[rnd.choice(TAGS) if rnd.random() < 0.4 else tag for tag in sentence] for sentence in gold]
    expected = _seqeval(predicted, gold)
    assert entity_scores(predicted, gold) == {key: float(value) for key, value in expected.items()}


def test_entity_scores_equal_seqeval_strict_on_a_corpus():
    rng = random.Random(7)
    gold = [[rng.choice(TAGS) for _ in range(rng.randint(0, 30))] for _ in range(300)]
    predicted = [[rng.choice(TAGS) if rng.random() < 0.3 else tag for tag in sentence] for sentence in gold]
    expected = _seqeval(predicted, gold)
    assert entity_scores(predicted, gold) == {key: float(value) for key, value in expected.items()}


# ---- generated spans --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PER: John Smith$$LOC: Paris", [("PER", "John Smith"), ("LOC", "Paris")]),
        ("", []),
        ("PER John", []),  # no ':'
        ("$$$$", []),
        (":", []),
        (": John", []),  # empty type
        ("PER:   ", []),  # empty text
        ("PER: John$$", [("PER", "John")]),  # trailing separator
        ("$$PER: John$$$$LOC: Rome$$", [("PER", "John"), ("LOC", "Rome")]),
        (" per :  John   Smith  $$ LOC:Paris", [("PER", "John Smith"), ("LOC", "Paris")]),
        ("ORG: Foo: Bar", [("ORG", "Foo: Bar")]),  # the text may hold a ':'
        ("PER: John$$garbage$$LOC Rome$$MISC: Euro", [("PER", "John"), ("MISC", "Euro")]),
        ("PER: A$$PER: A", [("PER", "A"), ("PER", "A")]),
    ],
)
def test_parse_spans(text, expected):
    assert parse_spans(text) == expected


@given(st.text())
def test_parse_spans_never_raises(text):
    for kind, words in parse_spans(text):
        assert kind and words and kind == kind.strip().upper() and words == " ".join(words.split())


def test_format_spans():
    assert format_spans([]) == ""
    assert format_spans([("PER", "John Smith"), ("LOC", "Paris")]) == "PER: John Smith$$LOC: Paris"


span_type = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=6)
span_text = st.lists(st.text(alphabet="abcxyzÉé中:-. ", min_size=1, max_size=5), min_size=1, max_size=3).map(
    lambda words: " ".join(" ".join(words).split())
)


@given(st.lists(st.tuples(span_type, span_text.filter(bool)), max_size=5))
def test_parse_spans_inverts_format_spans(spans):
    assert parse_spans(format_spans(spans)) == spans


def test_spans_from_bio():
    tokens = ["John", "Smith", "visited", "Paris", "and", "Rome"]
    tags = ["B-PER", "I-PER", "O", "B-LOC", "O", "I-LOC"]
    assert spans_from_bio(tokens, tags) == [("PER", "John Smith"), ("LOC", "Paris")]
    with pytest.raises(XLTError, match=r"^2 tokens for 1 tags"):
        spans_from_bio(["a", "b"], ["O"])


# ---- span scores ------------------------------------------------------------------------------------------


def test_span_scores():
    # example 0: PER hit, LOC Paris hit once (the gold has it once), one extra LOC Paris;
    # example 1: nothing predicted, ORG UN missed. correct 2, predicted 3, gold 3: P = R = F1 = 2/3
    predicted = [[("PER", "John Smith"), ("LOC", "Paris"), ("LOC", "Paris")], []]
    gold = [[("PER", "John Smith"), ("LOC", "Paris")], [("ORG", "UN")]]
    assert span_scores(predicted, gold) == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})


def test_span_scores_need_type_and_text():
    # right text, wrong type; right type, wrong text: 0 correct of 2 predicted, 2 gold
    predicted = [[("ORG", "Paris"), ("PER", "John")]]
    gold = [[("LOC", "Paris"), ("PER", "John Smith")]]
    assert span_scores(predicted, gold) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # type case and spacing do not matter
    assert span_scores([[("per", " John  Smith ")]], [[("PER", "John Smith")]]) == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
    }


def test_span_scores_are_micro_averaged():
    # example 0: 1 of 1 predicted correct, 1 gold; example 1: 0 of 3 predicted, 1 gold.
    # micro: P = 1/4, R = 1/2, F1 = 2 * 1/8 / (3/4) = 1/3 (a per-example mean would give P = 1/2)
    predicted = [[("PER", "A")], [("PER", "B"), ("PER", "C"), ("PER", "D")]]
    gold = [[("PER", "A")], [("LOC", "E")]]
    assert span_scores(predicted, gold) == pytest.approx({"precision": 0.25, "recall": 0.5, "f1": 1 / 3})


def test_span_scores_with_nothing_to_find():
    # zero denominators give 0, as seqeval's default
    assert span_scores([[]], [[]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert span_scores([[("PER", "A")]], [[]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_span_scores_refusals():
    with pytest.raises(XLTError, match=r"^3 predictions for 4 references$"):
        span_scores([[]] * 3, [[]] * 4)
    with pytest.raises(XLTError, match=r"^no examples to score$"):
        span_scores([], [])


@given(sentences, st.randoms(use_true_random=False))
def test_span_scores_equal_entity_scores_when_words_are_distinct(gold, rnd):
    # With every token distinct, a span's text fixes its position, so the two scores agree.
    predicted = [[rnd.choice(TAGS) if rnd.random() < 0.4 else tag for tag in sentence] for sentence in gold]
    tokens = [[f"w{i}" for i in range(len(sentence))] for sentence in gold]
    by_span = span_scores(
        [spans_from_bio(words, tags) for words, tags in zip(tokens, predicted, strict=True)],
        [spans_from_bio(words, tags) for words, tags in zip(tokens, gold, strict=True)],
    )
    assert by_span == entity_scores(predicted, gold)


@given(st.lists(st.lists(st.tuples(st.sampled_from("AB"), st.sampled_from("xy")), max_size=4), min_size=1, max_size=4))
def test_span_scores_of_a_prediction_against_itself(spans):
    total = sum(len(example) for example in spans)
    expected = 1.0 if total else 0.0
    assert span_scores(spans, spans) == {"precision": expected, "recall": expected, "f1": expected}
