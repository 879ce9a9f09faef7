"""Free-text scores (exact match, chrF equal to sacrebleu's) and the positive-class F1 of label outputs."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlt.errors import XLTError
from xlt.tasks.metrics import classification_metrics, positive_f1
from xlt.tasks.text_metrics import chrf, exact_match, seq2seq_scores

pytestmark = pytest.mark.no_model  # no model, no transformers: run once, under transformers 5.x

# ---- exact match ------------------------------------------------------------------------------------------


def test_exact_match():
    # " Yes " = "Yes" after stripping, None = "", "no" != "No": 2 of 3
    assert exact_match([" Yes ", None, "no"], ["Yes", "", "No"]) == pytest.approx(2 / 3)


# ---- chrF (hand-computed) ---------------------------------------------------------------------------------


def test_chrf_effective_order():
    # hyp "ab", ref "abc": 1-grams hyp 2, ref 3, match 2; 2-grams hyp 1, ref 2, match 1; 3-grams hyp 0, ref 1;
    # orders 4-6 empty. Only orders 1-2 have n-grams on both sides: P = (1 + 1)/2 = 1, R = (2/3 + 1/2)/2 = 7/12,
    # F2 = 5 * 1 * 7/12 / (4 * 1 + 7/12) = 35/55 = 7/11
    assert chrf(["ab"], ["abc"]) == pytest.approx(7 / 11)


def test_chrf_sums_statistics_over_the_corpus():
    # ("a", "b") and ("abcd", "abcd"): 1-grams hyp 5, ref 5, match 4; 2-grams hyp 0 + 3 ("b" has no 2-grams, so
    # "a"'s do not count), ref 3, match 3; 3-grams 2/2/2; 4-grams 1/1/1. P = R = (4/5 + 1 + 1 + 1)/4 = 0.95.
    # (The mean of sentence scores would be (0 + 1)/2.)
    assert chrf(["a", "abcd"], ["b", "abcd"]) == pytest.approx(0.95)


def test_chrf_ignores_whitespace_and_scores_empty_as_zero():
    assert chrf(["a b c"], ["abc"]) == 1.0
    assert chrf([""], [""]) == 0.0
    assert chrf([None], ["abc"]) == 0.0
    assert chrf(["abc"], [""]) == 0.0


def test_chrf_plus_plus():
    # char_order 1, word_order 1, "a cat" vs "a dog": characters "acat" vs "adog": 4, 4, match min(2, 1) = 1;
    # words [a, cat] vs [a, dog]: 2, 2, match 1. P = R = (1/4 + 1/2)/2 = 3/8, so F2 = 3/8
    assert chrf(["a cat"], ["a dog"], char_order=1, word_order=1) == pytest.approx(3 / 8)
    # chrF++ splits a final punctuation mark off a word: [cat, .] vs [cat]: P = 1/2, R = 1,
    # F2 = 5 * 1/2 / (4 * 1/2 + 1) = 5/6
    assert chrf(["cat."], ["cat"], char_order=0, word_order=1) == pytest.approx(5 / 6)


def test_chrf_beta():
    # P = 1, R = 7/12 (as above); beta 1: 2 * 7/12 / (1 + 7/12) = 14/19
    assert chrf(["ab"], ["abc"], beta=1) == pytest.approx(14 / 19)


def test_seq2seq_scores():
    # ("abc", "abc") and ("x", "y"): 1-grams 4/4/3, 2-grams 2/2/2, 3-grams 1/1/1: P = R = (3/4 + 1 + 1)/3 = 11/12
    assert seq2seq_scores(["abc", "x"], ["abc", "y"]) == {"exact_match": 0.5, "chrf": pytest.approx(11 / 12)}


def test_text_refusals():
    for score in (exact_match, chrf, seq2seq_scores):
        with pytest.raises(XLTError, match=r"^3 predictions for 4 references$"):
            score(["a"] * 3, ["a"] * 4)
        with pytest.raises(XLTError, match=r"^no examples to score$"):
            score([], [])
    with pytest.raises(XLTError, match="n-gram orders"):
        chrf(["a"], ["a"], char_order=0, word_order=0)
    with pytest.raises(XLTError, match="beta"):
        chrf(["a"], ["a"], beta=-1)


# ---- sacrebleu as the oracle, where it is installed -------------------------------------------------------

segments = st.text(alphabet="ab c.,!(é中", max_size=14)


def _sacrebleu(predictions, references, **kwargs):
    metrics = pytest.importorskip("sacrebleu.metrics")
    return metrics.CHRF(**kwargs).corpus_score(predictions, [references]).score / 100


@settings(deadline=None)  # the first call imports sacrebleu
@given(st.lists(st.tuples(segments, segments), min_size=1, max_size=5), st.sampled_from([0, 1, 2]))
def test_chrf_equals_sacrebleu(pairs, word_order):
    predictions, references = [p for p, _ in pairs], [r for _, r in pairs]
    expected = _sacrebleu(predictions, references, word_order=word_order)
    assert chrf(predictions, references, word_order=word_order) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_chrf_equals_sacrebleu_on_sentences():
    rng = random.Random(3)
    words = ["the", "cat", "sat", "on", "mat", "a", "dog.", "(big)", "Zürich", "北京", "it's", "-"]
    references = [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(200)]
    predictions = [" ".join(w for w in r.split() if rng.random() < 0.8) for r in references]
    for kwargs in ({}, {"word_order": 2}, {"char_order": 4, "beta": 1}):
        expected = _sacrebleu(predictions, references, **kwargs)
        assert chrf(predictions, references, **kwargs) == pytest.approx(expected, rel=1e-12)


# ---- positive-class F1 (check-worthiness) -----------------------------------------------------------------


def test_positive_f1():
    # positive "C": tp 1 (example 0), predicted positive 2 (0, 3), gold positive 2 (0, 1): P = R = F1 = 1/2.
    # Accuracy 1/4 (None is wrong). Macro-F1: C 1/2, N 0 (its one prediction is wrong) -> 1/4.
    scores = positive_f1(["C", "N", None, "C"], ["C", "C", "N", "N"], positive="C")
    assert scores == {"accuracy": 0.25, "f1": 0.5, "precision": 0.5, "recall": 0.5, "macro_f1": 0.25}


def test_positive_f1_none_is_a_wrong_negative():
    # gold positive, None: a false negative; gold negative, None: no false positive but still wrong
    scores = positive_f1([None, None, "C"], ["C", "N", "C"], positive="C")
    assert scores["precision"] == 1.0 and scores["recall"] == 0.5
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["accuracy"] == pytest.approx(1 / 3)


def test_positive_f1_zero_denominators_and_unchanged_classification_metrics():
    assert positive_f1(["N", "N"], ["N", "N"], positive="C") == {
        "accuracy": 1.0,
        "f1": 0.0,
        "precision": 0.0,
        "recall": 0.0,
        "macro_f1": 1.0,
    }
    assert classification_metrics(["a", "b"], ["a", "a"]) == {"accuracy": 0.5, "macro_f1": pytest.approx(1 / 3)}
    with pytest.raises(XLTError, match=r"^3 predictions for 4 references$"):
        positive_f1(["C"] * 3, ["C"] * 4, positive="C")
    with pytest.raises(XLTError, match=r"^no examples to score$"):
        positive_f1([], [], positive="C")


@settings(deadline=None, max_examples=30)  # the first call imports scikit-learn; each call is slow
@given(st.lists(st.tuples(st.sampled_from(["C", "N", None]), st.sampled_from(["C", "N"])), min_size=1, max_size=12))
def test_positive_f1_equals_scikit_learn(pairs):
    metrics = pytest.importorskip("sklearn.metrics")
    predictions, references = [p for p, _ in pairs], [r for _, r in pairs]
    # scikit-learn needs a label for None: one that is neither class, so it is wrong and never positive
    as_labels = [p if p is not None else "none" for p in predictions]
    scores = positive_f1(predictions, references, positive="C")
    # the positive class alone: labels=["C"]
    options = {"labels": ["C"], "average": "micro", "zero_division": 0}
    assert scores["precision"] == pytest.approx(metrics.precision_score(references, as_labels, **options))
    assert scores["recall"] == pytest.approx(metrics.recall_score(references, as_labels, **options))
    assert scores["f1"] == pytest.approx(metrics.f1_score(references, as_labels, **options))
    assert scores["accuracy"] == pytest.approx(metrics.accuracy_score(references, as_labels))
