"""QA exact match and F1: SQuAD v1.1 normalisation for English, MLQA's for other languages (hand-computed)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xlt.errors import XLTError
from xlt.tasks.qa_metrics import normalize_answer, qa_example_score, qa_scores

pytestmark = pytest.mark.no_model  # no model, no transformers: run once, under transformers 5.x

# ---- normalisation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        # lower, drop ASCII punctuation (the hyphen too, which joins the words), drop "the", collapse spaces
        ("The  Eiffel-Tower!", None, "eiffeltower"),
        ("An apple a day", "en", "apple day"),
        ("Theater of the absurd", None, "theater of absurd"),  # articles only as whole words
        ("...", None, ""),
        # SQuAD keeps non-ASCII punctuation; MLQA drops every Unicode category-P character
        ("«Paris»", None, "«paris»"),
        ("«Paris»", "fr", "paris"),
        ("¿Qué?", None, "¿qué"),
        ("¿Qué?", "es", "qué"),
        # Spanish articles
        ("El Niño y los Andes", "es", "niño y andes"),
        # German articles under MLQA, none under SQuAD; "Dieser" is not an article
        ("Der Vertrag von Versailles", "de", "vertrag von versailles"),
        ("Der Vertrag", None, "der vertrag"),
        ("Dieser eine Mann, dem", "de", "dieser mann"),
        # MLQA's Vietnamese list
        ("những con mèo của tôi", "vi", "con mèo tôi"),
        # MLQA replaces every "ال" with a space, inside words too
        ("الكتاب", "ar", "كتاب"),
        ("مال", "ar", "م"),
        # Chinese: each CJK character is a token, other runs stay words
        ("北京市。", "zh", "北 京 市"),
        ("iPhone手机", "zh", "iphone 手 机"),
        ("北京市", None, "北京市"),
        ("东京タワー", "ja", "东 京 タ ワ ー"),
        ("กรุงเทพ", "th", "ก ร ุ ง เ ท พ"),
        # Hindi and the languages MLQA does not list: punctuation only
        ("भारत।", "hi", "भारत"),
        ("Москва, Россия", "ru", "москва россия"),
    ],
)
def test_normalize_answer(text, language, expected):
    assert normalize_answer(text, language) == expected


def test_language_codes_use_the_primary_subtag():
    assert normalize_answer("北京", "zh-Hans") == normalize_answer("北京", "zh_CN") == "北 京"
    # "«" is not ASCII punctuation for SQuAD, and "the" between guillemets is still a whole word
    assert normalize_answer("«The» end", "EN") == normalize_answer("«The» end", None) == "« » end"


# ---- F1 and exact match -----------------------------------------------------------------------------------


def test_token_f1():
    # prediction tokens [cat, sat, on, mat] (4), gold [cat, on, mat] (3): 3 shared, P = 3/4, R = 1,
    # F1 = 2 * 3/4 * 1 / (3/4 + 1) = 6/7
    assert qa_example_score("the cat sat on the mat", ["a cat on a mat"]) == pytest.approx(6 / 7)


def test_repeated_tokens_count_as_a_multiset():
    # [x, y, y, y] against [y, y]: min(3, 2) = 2 shared, P = 2/4, R = 1, F1 = 2/3
    assert qa_example_score("x y y y", ["y y"]) == pytest.approx(2 / 3)


def test_best_of_several_gold_answers():
    # gold [paris]: 1 shared, P = 1/2, R = 1, F1 = 2/3; gold [in, france, paris]: 2 shared, P = 1, R = 2/3,
    # F1 = 0.8; the best is 0.8, and neither is an exact match
    scores = qa_scores(["Paris France"], [["Paris", "in France, Paris"]])
    assert scores == {"exact_match": 0.0, "f1": pytest.approx(0.8)}
    assert qa_scores(["paris"], [["Lyon", "The Paris."]]) == {"exact_match": 1.0, "f1": 1.0}


def test_mean_over_questions():
    # (1, 1) + (0, 6/7) + (0, 0) over 3 questions: exact match 1/3, F1 (1 + 6/7) / 3 = 13/21
    scores = qa_scores(["Paris", "the cat sat on the mat", None], [["Paris"], ["a cat on a mat"], ["x"]])
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(13 / 21)


def test_empty_answers_follow_squad_v1_1():
    # No answer scores 0 against a real answer.
    assert qa_scores([None], [["Paris"]]) == {"exact_match": 0.0, "f1": 0.0}
    assert qa_scores([""], [["Paris"]]) == {"exact_match": 0.0, "f1": 0.0}
    # Against a gold answer that normalises to nothing: exact match, but F1 0 (no shared token; v2.0 gives 1).
    assert qa_scores([None], [["The."]]) == {"exact_match": 1.0, "f1": 0.0}
    assert qa_example_score("", ["..."]) == 0.0


def test_chinese_is_scored_per_character():
    # [北, 京] against [北, 京, 市]: 2 shared, P = 1, R = 2/3, F1 = 0.8
    assert qa_example_score("北京", ["北京市"], "zh") == pytest.approx(0.8)
    # Without the language the words are single tokens and share nothing.
    assert qa_example_score("北京", ["北京市"]) == 0.0
    assert qa_scores(["iPhone 手机"], [["iPhone手机。"]], "zh") == {"exact_match": 1.0, "f1": 1.0}


def test_german_articles_under_mlqa():
    # [bundesrepublik] against [bundesrepublik, deutschland]: P = 1, R = 1/2, F1 = 2/3
    assert qa_example_score("die Bundesrepublik", ["Bundesrepublik Deutschland"], "de") == pytest.approx(2 / 3)
    assert qa_scores(["dem Rhein"], [["der Rhein"]], "de") == {"exact_match": 1.0, "f1": 1.0}
    # SQuAD's rules keep the German articles: [dem, rhein] against [der, rhein], F1 = 1/2
    assert qa_scores(["dem Rhein"], [["der Rhein"]]) == {"exact_match": 0.0, "f1": 0.5}


@given(st.text(max_size=30), st.sampled_from([None, "en", "de", "es", "zh", "ar", "vi", "ru"]))
def test_an_answer_matches_itself(text, language):
    if normalize_answer(text, language):
        assert qa_scores([text], [[text]], language) == {"exact_match": 1.0, "f1": 1.0}
    # Normalising twice changes nothing.
    assert normalize_answer(normalize_answer(text, language), language) == normalize_answer(text, language)


@given(st.lists(st.text(alphabet="ab c.", max_size=8), min_size=1, max_size=4), st.text(alphabet="ab c.", max_size=8))
def test_scores_are_fractions(answers, prediction):
    scores = qa_scores([prediction], [answers])
    assert scores["exact_match"] in (0.0, 1.0)
    assert 0.0 <= scores["f1"] <= 1.0
    # An exact match scores F1 1 unless prediction and answer both normalise to nothing.
    if scores["exact_match"] and normalize_answer(prediction):
        assert scores["f1"] == 1.0


# ---- refusals ---------------------------------------------------------------------------------------------


def test_refusals():
    with pytest.raises(XLTError, match=r"^3 predictions for 4 references$"):
        qa_scores(["a"] * 3, [["a"]] * 4)
    with pytest.raises(XLTError, match=r"^no examples to score$"):
        qa_scores([], [])
    with pytest.raises(XLTError, match=r"references\[1\] is a string"):
        qa_scores(["a", "b"], [["a"], "b"])
    with pytest.raises(XLTError, match=r"references\[0\] has no gold answer"):
        qa_scores(["a"], [[]])
    with pytest.raises(XLTError, match="answers is a string"):
        qa_example_score("a", "a")
