"""Task data files of every schema in every file type: written, loaded, compared with the Examples they hold;
renamed columns; the .json suffix read as JSON lines; a property test of NER's IOB2 rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlt.tasks.data import Example, load_examples
from xlt.tasks.rows import read_rows
from xlt.tasks.schemas import SCHEMAS, WIKIANN_TAGS, load_task_examples
from xlt.tasks.tagging_metrics import format_spans, spans_from_bio

pytestmark = pytest.mark.no_model  # no model, no transformers: run once, under transformers 5.x

HUB = (".jsonl", ".json", ".parquet")  # the hub's types: lists and structs as such
TABLES = (".csv", ".tsv")  # plain-text cells: lists space-separated, one QA answer


def write(path: Path, rows: list[dict]) -> Path:
    """``rows`` in ``path``'s file type; in CSV / TSV a list becomes its items joined by spaces."""
    if path.suffix in (".jsonl", ".json"):
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    elif path.suffix in TABLES:
        header = list(dict.fromkeys(key for row in rows for key in row))
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, header, delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in row.items()})
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_schema_names():
    assert SCHEMAS == ("classification", "nli", "qa", "ner", "seq2seq")


# ---- round trips -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", HUB + TABLES)
def test_classification(tmp_path, suffix):
    # One type per parquet column: there the integer label is an integer column of its own file.
    label: object = "1" if suffix == ".parquet" else 1
    path = write(tmp_path / f"train{suffix}", [{"text": "a, b", "label": "pos"}, {"text": "c\td", "label": label}])
    expected = [Example("a, b", "pos"), Example("c\td", "1")]
    assert load_task_examples(path, "classification") == expected
    assert load_examples(path) == expected
    if suffix == ".parquet":
        path = write(tmp_path / "ints.parquet", [{"text": "a", "label": 0}, {"text": "b", "label": 1}])
        assert load_task_examples(path, "classification") == [Example("a", "0"), Example("b", "1")]


@pytest.mark.parametrize("suffix", HUB + TABLES)
def test_nli(tmp_path, suffix):
    rows = [
        {"premise": "A man eats.", "hypothesis": "Someone eats.", "label": 0},
        {"premise": "A man eats.", "hypothesis": "He is hungry.", "label": 1},
        {"premise": "Ein Mann isst.", "hypothesis": "Niemand isst.", "label": 2},
    ]
    path = write(tmp_path / f"xnli{suffix}", rows)
    assert load_task_examples(path, "nli") == [
        Example("A man eats.", "entailment", pair="Someone eats."),
        Example("A man eats.", "neutral", pair="He is hungry."),
        Example("Ein Mann isst.", "contradiction", pair="Niemand isst."),
    ]


@pytest.mark.parametrize("suffix", HUB + TABLES)
def test_nli_label_names_in_any_case(tmp_path, suffix):
    labels = ["Entailment", "NEUTRAL", " contradiction "]
    path = write(tmp_path / f"nli{suffix}", [{"premise": "p", "hypothesis": "h", "label": label} for label in labels])
    assert [e.label for e in load_task_examples(path, "nli")] == ["entailment", "neutral", "contradiction"]


CONTEXT = "Ann met Bob in Paris. Bob left Paris."


@pytest.mark.parametrize("suffix", HUB)
def test_qa_squad_rows(tmp_path, suffix):
    rows = [
        {
            "id": "q1",
            "question": "Who?",
            "context": CONTEXT,
            "answers": {"text": ["Bob", "Bob"], "answer_start": [8, 22]},
        },
        {"id": None, "question": "Where?", "context": CONTEXT, "answers": {"text": ["Paris"], "answer_start": [15]}},
    ]
    path = write(tmp_path / f"squad{suffix}", rows)
    assert load_task_examples(path, "qa") == [
        Example(CONTEXT, "Bob", pair="Who?", answers=("Bob", "Bob"), starts=(8, 22), id="q1"),
        Example(CONTEXT, "Paris", pair="Where?", answers=("Paris",), starts=(15,), id=f"squad{suffix}:2"),
    ]


@pytest.mark.parametrize("suffix", (".jsonl", ".json"))
def test_qa_without_offsets_or_ids(tmp_path, suffix):
    rows = [
        {"question": "Who?", "context": CONTEXT, "answers": {"text": ["Bob", "Ann"]}},
        {"question": "Where?", "context": CONTEXT, "answers": {"text": "Paris", "answer_start": 15}},
        {"question": "Who?", "context": CONTEXT, "answers": [{"text": "Ann", "answer_start": 0}, {"text": "Bob"}]},
    ]
    path = write(tmp_path / f"qa{suffix}", rows)
    assert load_task_examples(path, "qa") == [
        Example(CONTEXT, "Bob", pair="Who?", answers=("Bob", "Ann"), starts=(-1, -1), id=f"qa{suffix}:1"),
        Example(CONTEXT, "Paris", pair="Where?", answers=("Paris",), starts=(15,), id=f"qa{suffix}:2"),
        Example(CONTEXT, "Ann", pair="Who?", answers=("Ann", "Bob"), starts=(0, -1), id=f"qa{suffix}:3"),
    ]


@pytest.mark.parametrize("suffix", TABLES)
def test_qa_one_answer_per_table_row(tmp_path, suffix):
    rows = [
        {"id": "a", "question": "Who?", "context": CONTEXT, "answer": "Bob", "answer_start": 8},
        {"id": "", "question": "Where, then?", "context": CONTEXT, "answer": "Paris", "answer_start": ""},
    ]
    path = write(tmp_path / f"qa{suffix}", rows)
    assert load_task_examples(path, "qa") == [
        Example(CONTEXT, "Bob", pair="Who?", answers=("Bob",), starts=(8,), id="a"),
        Example(CONTEXT, "Paris", pair="Where, then?", answers=("Paris",), starts=(-1,), id=f"qa{suffix}:3"),
    ]


def test_qa_table_without_the_optional_columns(tmp_path):
    path = write(tmp_path / "qa.csv", [{"question": "Who?", "context": CONTEXT, "answer": "Ann"}])
    assert load_task_examples(path, "qa") == [
        Example(CONTEXT, "Ann", pair="Who?", answers=("Ann",), starts=(-1,), id="qa.csv:2")
    ]


NER_EXPECTED = [
    Example(
        "John Smith lives in New York",
        "PER: John Smith$$LOC: New York",
        tokens=("John", "Smith", "lives", "in", "New", "York"),
        tags=("B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"),
    ),
    Example("nothing here", "", tokens=("nothing", "here"), tags=("O", "O")),
]


@pytest.mark.parametrize("suffix", HUB + TABLES)
@pytest.mark.parametrize("as_indices", [True, False])
def test_ner(tmp_path, suffix, as_indices):
    rows = [
        {"tokens": list(e.tokens), "ner_tags": [WIKIANN_TAGS.index(t) if as_indices else t for t in e.tags]}
        for e in NER_EXPECTED
    ]
    path = write(tmp_path / f"wikiann{suffix}", rows)
    assert load_task_examples(path, "ner") == NER_EXPECTED


def test_ner_tag_names_of_another_dataset(tmp_path):
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]  # CoNLL-2003's
    path = write(tmp_path / "conll.jsonl", [{"tokens": ["EU", "rejects", "German", "call"], "ner_tags": [3, 0, 7, 0]}])
    [example] = load_task_examples(path, "ner", tag_names=names)
    assert example.tags == ("B-ORG", "O", "B-MISC", "O") and example.label == "ORG: EU$$MISC: German"


@pytest.mark.parametrize("suffix", HUB + TABLES)
def test_seq2seq(tmp_path, suffix):
    rows = [{"input": "translate: Hallo, Welt", "target": "Hello, world"}, {"input": "x\ty", "target": "z"}]
    path = write(tmp_path / f"pairs{suffix}", rows)
    assert load_task_examples(path, "seq2seq") == [
        Example("translate: Hallo, Welt", "Hello, world"),
        Example("x\ty", "z"),
    ]


# ---- renamed columns ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", (".jsonl", ".parquet", ".csv"))
def test_fields_rename_columns(tmp_path, suffix):
    table = suffix == ".csv"
    answer = {"answer": "Bob", "answer_start": 8} if table else {"answers": {"text": ["Bob"], "answer_start": [8]}}
    path = write(tmp_path / f"qa{suffix}", [{"q": "Who?", "passage": CONTEXT, **answer}])
    [example] = load_task_examples(path, "qa", fields={"question": "q", "context": "passage"})
    assert (example.text, example.pair, example.answers) == (CONTEXT, "Who?", ("Bob",))
    path = write(tmp_path / f"cls{suffix}", [{"sentence": "a", "gold": "x"}])
    assert load_task_examples(path, "classification", fields={"text": "sentence", "label": "gold"}) == [
        Example("a", "x")
    ]
    path = write(tmp_path / f"nli{suffix}", [{"sentence1": "p", "sentence2": "h", "gold_label": "neutral"}])
    fields = {"premise": "sentence1", "hypothesis": "sentence2", "label": "gold_label"}
    assert load_task_examples(path, "nli", fields=fields) == [Example("p", "neutral", pair="h")]


def test_a_json_file_is_read_as_json_lines(tmp_path):
    # The hub's json datasets, and Dataset.to_json, are JSON lines: one object per line.
    path = write(tmp_path / "train.json", [{"input": "a", "target": "b"}, {"input": "c", "target": "d"}])
    assert [number for number, _ in read_rows(path)] == [1, 2]
    assert len(load_task_examples(path, "seq2seq")) == 2


def test_parquet_rows_are_streamed_and_numbered_from_one(tmp_path):
    rows = [{"input": f"i{n}", "target": f"t{n}"} for n in range(2500)]
    path = tmp_path / "big.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=700)
    numbered = read_rows(path)
    assert next(numbered) == (1, rows[0])
    assert [number for number, _ in numbered][-1] == 2500
    assert load_task_examples(path, "seq2seq")[-1] == Example("i2499", "t2499")


# ---- NER rows as a property --------------------------------------------------------------------------------------


@st.composite
def iob2_sentences(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """A sentence and valid IOB2 tags: each I-X continues an entity of type X."""
    words = draw(st.lists(st.text("abcxyzäß", min_size=1, max_size=5), min_size=1, max_size=12))
    tags: list[str] = []
    for _ in words:
        choices = ["O", "B-PER", "B-ORG", "B-LOC"]
        if tags and tags[-1] != "O":
            choices.append("I-" + tags[-1][2:])
        tags.append(draw(st.sampled_from(choices)))
    return words, tags


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sentences=st.lists(iob2_sentences(), min_size=1, max_size=4), suffix=st.sampled_from(HUB + TABLES))
def test_valid_iob2_rows_load_as_written(tmp_path, sentences, suffix):
    indices = suffix == ".parquet"  # parquet as the hub writes WikiANN: tags as indices
    rows = [{"tokens": w, "ner_tags": [WIKIANN_TAGS.index(t) for t in t_] if indices else t_} for w, t_ in sentences]
    path = write(tmp_path / f"ner{suffix}", rows)
    loaded = load_task_examples(path, "ner")
    assert [(list(e.tokens), list(e.tags)) for e in loaded] == sentences
    assert [e.label for e in loaded] == [format_spans(spans_from_bio(w, t)) for w, t in sentences]
