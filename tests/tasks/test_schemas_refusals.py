"""Bad task data files and bad arguments, each refused with one line naming the file, the line or row, and the fix."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_schemas import write

from xlt.tasks.data import TaskDataError
from xlt.tasks.schemas import load_task_examples

pytestmark = pytest.mark.no_model  # no model, no transformers: run once, under transformers 5.x

CONTEXT = "Ann met Bob in Paris."
QA = {"question": "Who?", "context": CONTEXT}
NLI = {"premise": "A man eats.", "hypothesis": "Someone eats."}
UNANSWERABLE = "unanswerable questions (SQuAD 2.0) are not supported"
NOT_IOB2 = "is not IOB2 (write O, B-TYPE or I-TYPE)"


def ner(tokens: str, tags: list) -> dict:
    return {"tokens": tokens.split(), "ner_tags": tags}


def refused(path: Path, schema: str, *parts: str, **options: object) -> str:
    with pytest.raises(TaskDataError) as excinfo:
        load_task_examples(path, schema, **options)
    message = str(excinfo.value)
    assert "\n" not in message, message
    for part in (path.name, *parts):
        assert part in message, (part, message)
    return message


def make(path: Path, content: list[dict] | str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        write(path, content)
    return path


BAD_FILES = [
    # ---- missing columns: the columns present are listed, with how to map others ----------------------------
    (
        "nli.jsonl",
        [{"premise": "p", "label": 0}],
        "nli",
        ["nli.jsonl:1", "lacks 'premise', 'hypothesis' or 'label'", "no value for 'hypothesis'", "premise, label"],
    ),
    (
        "nli.csv",
        "premise,label\np,0\n",
        "nli",
        ["nli.csv:2", "header (line 1) has no column 'hypothesis'", "columns: premise, label", "set fields="],
    ),
    ("qa.parquet", [QA], "qa", ["qa.parquet lacks", "no column 'answers'", "columns: question, context", "fields="]),
    ("qa.tsv", "question\tcontext\nq\tc\n", "qa", ["qa.tsv:2", "no column 'answer'", "columns: question, context"]),
    ("ner.tsv", "tokens\nJohn\n", "ner", ["ner.tsv:2", "no column 'ner_tags'", "set fields="]),
    ("s.jsonl", [{"input": "a"}], "seq2seq", ["s.jsonl:1", "no value for 'target'", "its fields: input"]),
    ("s.jsonl", [{"input": "a", "target": None}], "seq2seq", ["s.jsonl:1", "no value for 'target'"]),
    # ---- empty values and files --------------------------------------------------------------------------------
    ("s.csv", "input,target\na,\n", "seq2seq", ["s.csv:2", "'target' is empty", "fill it in or remove the row"]),
    ("nli.jsonl", "", "nli", ["holds no examples", "'premise', 'hypothesis', 'label'"]),
    ("nli.jsonl", "\n \n", "nli", ["holds no examples"]),
    ("qa.csv", "question,context,answer\n", "qa", ["holds no examples"]),
    ("nli.jsonl", [{**NLI, "label": ""}], "nli", ["nli.jsonl:1", "'label' is empty"]),
    ("qa.jsonl", [{**QA, "question": " "}], "qa", ["qa.jsonl:1", "'question' is empty"]),
    # ---- NLI labels ----------------------------------------------------------------------------------------------
    (
        "nli.jsonl",
        [{**NLI, "label": "maybe"}],
        "nli",
        ["nli.jsonl:1", "'maybe', not an NLI label", "entailment, neutral"],
    ),
    ("nli.jsonl", [{**NLI, "label": 3}], "nli", ["nli.jsonl:1", "is 3, outside 0, 1, 2", "XNLI's order"]),
    ("nli.tsv", "premise\thypothesis\tlabel\np\th\tyes\n", "nli", ["nli.tsv:2", "not an NLI label"]),
    ("nli.jsonl", [{**NLI, "label": 1.0}], "nli", ["nli.jsonl:1", "'label' is a number", "write entailment"]),
    ("nli.jsonl", [{**NLI, "label": True}], "nli", ["nli.jsonl:1", "'label' is a boolean"]),
    (
        "nli.jsonl",
        [{**NLI, "label": 0}, {**NLI, "label": -1}],
        "nli",
        ["nli.jsonl:2", "no gold label", "drop rows without a gold label"],
    ),
    ("nli.csv", "premise,hypothesis,label\np,h,0\np,h,-1\n", "nli", ["nli.csv:3", "'-1', no gold label", "drop rows"]),
    ("snli.jsonl", [{**NLI, "label": "-"}], "nli", ["snli.jsonl:1", "no gold label", "drop rows without a gold label"]),
    # ---- QA answers ----------------------------------------------------------------------------------------------
    (
        "qa.jsonl",
        [{**QA, "answers": {"text": ["Bob"], "answer_start": [9]}}],
        "qa",
        ["qa.jsonl:1", "answer 'Bob' is not at answer_start 9", "the context has it at 8; fix answer_start"],
    ),
    (
        "qa.jsonl",
        [{**QA, "answers": {"text": ["Bob", "Carl"], "answer_start": [8, 0]}}],
        "qa",
        ["qa.jsonl:1", "answer 'Carl' is not at answer_start 0", "the context does not hold it", "drop the row"],
    ),
    (
        "qa.jsonl",
        [{**QA, "answers": {"text": ["bob"]}}],
        "qa",
        ["qa.jsonl:1", "answer 'bob' does not occur in the context", "fix the answer or the context"],
    ),
    (
        "qa.csv",
        "question,context,answer,answer_start\nWho?,Ann met Bob.,Bob,8\nWho?,Ann met Bob.,Carl,\n",
        "qa",
        ["qa.csv:3", "answer 'Carl' does not occur in the context"],
    ),
    (
        "qa.jsonl",
        [{**QA, "answers": {"text": [], "answer_start": []}}],
        "qa",
        ["qa.jsonl:1", "holds no answer", UNANSWERABLE],
    ),
    ("qa.csv", "question,context,answer\nWho?,Ann,\n", "qa", ["qa.csv:2", "'answer' is empty", UNANSWERABLE]),
    ("qa.jsonl", [{**QA, "answers": {"text": [""], "answer_start": [0]}}], "qa", ["qa.jsonl:1", "an answer is empty"]),
    (
        "qa.jsonl",
        [{**QA, "answers": {"text": ["Bob"], "answer_start": [8, 15]}}],
        "qa",
        ["qa.jsonl:1", "1 answer(s) and 2 answer_start(s)", "give each answer its offset"],
    ),
    ("qa.jsonl", [{**QA, "answers": ["Bob"]}], "qa", ["qa.jsonl:1", "'answers' is a list", '{"text": [...]']),
    ("qa.jsonl", [{**QA, "answers": []}], "qa", ["qa.jsonl:1", "holds no answer", UNANSWERABLE]),
    ("qa.jsonl", [{**QA, "answers": {"text": [3]}}], "qa", ["qa.jsonl:1", "an answer that is an integer"]),
    (
        "qa.jsonl",
        [{**QA, "answers": {"text": ["Bob"], "answer_start": ["8"]}}],
        "qa",
        ["qa.jsonl:1", "answer_start ['8']", "one integer offset per answer"],
    ),
    (
        "qa.tsv",
        "question\tcontext\tanswer\tanswer_start\nq\tAnn\tAnn\tfirst\n",
        "qa",
        ["qa.tsv:2", "not a character offset"],
    ),
    ("qa.jsonl", [{**QA, "answers": {"text": ["Bob"], "answer_start": [-3]}}], "qa", ["qa.jsonl:1", "-3 is negative"]),
    ("qa.jsonl", [{**QA, "id": [1], "answers": {"text": ["Bob"]}}], "qa", ["qa.jsonl:1", "'id' is a list"]),
    # ---- NER tags: IOB2, lengths, indices -------------------------------------------------------------------------
    (
        "ner.jsonl",
        [ner("John Smith", ["I-PER", "I-PER"])],
        "ner",
        ["ner.jsonl:1", "tag 'I-PER' at token 1 ('John') follows 'O'", "starts with B-PER", "IOB1 tags to IOB2"],
    ),
    (
        "ner.jsonl",
        [ner("a b", ["O", "O"]), ner("in New York", ["O", "O", "I-LOC"])],
        "ner",
        ["ner.jsonl:2", "tag 'I-LOC' at token 3 ('York') follows 'O'"],
    ),
    (
        "ner.jsonl",
        [ner("John Paris", ["B-PER", "I-LOC"])],
        "ner",
        ["ner.jsonl:1", "tag 'I-LOC' at token 2 ('Paris') follows 'B-PER'", "B-LOC"],
    ),
    ("ner.jsonl", [ner("John Smith", ["X-PER", "O"])], "ner", ["ner.jsonl:1", "tag 'X-PER' at token 1", NOT_IOB2]),
    ("ner.jsonl", [ner("John", ["B-"])], "ner", ["ner.jsonl:1", "tag 'B-' at token 1", NOT_IOB2]),
    ("ner.jsonl", [ner("John", ["PER"])], "ner", ["ner.jsonl:1", "tag 'PER'", NOT_IOB2]),
    ("ner.csv", "tokens,ner_tags\nJohn Smith,B-PER I-PER\nin Paris,O B-LOC X\n", "ner", ["ner.csv:3", "2 token(s)"]),
    (
        "ner.jsonl",
        [ner("John Smith lives", ["B-PER", "I-PER"])],
        "ner",
        ["ner.jsonl:1", "3 token(s) in 'tokens' but 2 tag(s) in 'ner_tags'", "give each token one tag"],
    ),
    (
        "ner.jsonl",
        [ner("John Smith", [1, 7])],
        "ner",
        ["ner.jsonl:1", "tag 7 at token 2 ('Smith') is outside tag_names (0 to 6", "pass the dataset's tag names"],
    ),
    ("ner.tsv", "tokens\tner_tags\nJohn\t9\n", "ner", ["ner.tsv:2", "tag 9 at token 1", "outside tag_names"]),
    ("ner.jsonl", [ner("John", [1.0])], "ner", ["ner.jsonl:1", "tag 1.0 at token 1 ('John') is a number"]),
    ("ner.jsonl", [{"tokens": [], "ner_tags": []}], "ner", ["ner.jsonl:1", "'tokens' is empty", "remove the row"]),
    (
        "ner.jsonl",
        [{"tokens": ["John", " "], "ner_tags": [1, 0]}],
        "ner",
        ["ner.jsonl:1", "token 2 of 'tokens' is empty", "remove it and its tag"],
    ),
    (
        "ner.jsonl",
        [{"tokens": "John Smith", "ner_tags": [1, 2]}],
        "ner",
        ["'tokens' is a string", "as a list of strings"],
    ),
    ("ner.csv", 'tokens,ner_tags\n"  ",O\n', "ner", ["ner.csv:2", "'tokens' is empty"]),
    # ---- files that are not what their suffix says ----------------------------------------------------------------
    (
        "qa.jsonl",
        b'{"question": "q", "context": "q", "answers": {"text": ["q"]}}\n{"question": "caf\xe9"}\n',
        "qa",
        ["qa.jsonl:2", "re-save the file as UTF-8"],
    ),
    ("qa.json", '[\n  {"question": "q"}\n]\n', "qa", ["qa.json:1", "not a JSON line", "one JSON object per line"]),
    ("qa.json", '[{"question": "q"}]\n', "qa", ["qa.json:1", "not a JSON object but a list", '"question": ...']),
    ("squad.json", '{"version": "1.1", "data": []}\n', "qa", ["squad.json:1", "SQuAD's nested format", "flatten"]),
    ("qa.csv", 'question,context,answer\n"Who,Ann,Ann\n', "qa", ["qa.csv:2", "it has 1 field(s), the header 3"]),
    ("nli.csv", "premise,hypothesis,label\np,h,0,extra\n", "nli", ["nli.csv:2", "4 fields, the header 3", "quoted"]),
    ("bad.parquet", b"PAR1 but not really", "nli", ["is not a readable parquet file", "write it again"]),
    ("qa.txt", "Who?\n", "qa", ["must be .jsonl, .csv or .tsv, .json (JSON lines) or .parquet", "'.txt'"]),
    ("qa.xlsx", b"PK\x03\x04", "qa", ["must be .jsonl", ".parquet", "rename or convert it"]),
    ("qa", "Who?\n", "qa", ["must be .jsonl", "its suffix is 'none'"]),
]


@pytest.mark.parametrize(("name", "content", "schema", "parts"), BAD_FILES)
def test_bad_task_files(tmp_path, name, content, schema, parts):
    refused(make(tmp_path / name, content), schema, *parts)


# ---- parquet: wrong column types and empty splits, row numbers 1-based -------------------------------------


def test_parquet_columns_of_the_wrong_type(tmp_path):
    path = tmp_path / "nli.parquet"
    pq.write_table(pa.table({"premise": [1, 7], "hypothesis": ["h", "h"], "label": [0, 1]}), path)
    refused(path, "nli", "nli.parquet row 1", "'premise' is an integer, not a string", "write it as a string")
    table = pa.table({"premise": ["p"], "hypothesis": ["h"], "label": pa.array([0.5], pa.float64())})
    pq.write_table(table, path)
    refused(path, "nli", "nli.parquet row 1", "'label' is a number")
    path = write(tmp_path / "ner.parquet", [{"tokens": "John", "ner_tags": [1]}])
    refused(path, "ner", "ner.parquet row 1", "'tokens' is a string", "list of strings")
    path = write(tmp_path / "qa.parquet", [{**QA, "answers": "Bob"}])
    refused(path, "qa", "qa.parquet row 1", "'answers' is a string", "as SQuAD does")


def test_parquet_nulls_and_empty_splits(tmp_path):
    path = write(tmp_path / "s.parquet", [{"input": "a", "target": "b"}, {"input": "c", "target": None}])
    refused(path, "seq2seq", "s.parquet row 2", "no value for 'target'")
    empty = pa.table({"input": pa.array([], pa.string()), "target": pa.array([], pa.string())})
    pq.write_table(empty, tmp_path / "empty.parquet")
    refused(tmp_path / "empty.parquet", "seq2seq", "holds no examples", "'input', 'target'")


def test_a_truncated_parquet_file(tmp_path):
    path = write(tmp_path / "cut.parquet", [{"input": "a" * 200, "target": "b"}] * 50)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + data[-8:])  # the footer's length and magic, the footer gone
    refused(path, "seq2seq", "cut.parquet", "parquet", "write it again")


def test_a_long_answer_is_shortened(tmp_path):
    answer = "a very long answer " * 20
    path = write(tmp_path / "qa.jsonl", [{**QA, "answers": {"text": [answer]}}])
    message = refused(path, "qa", "qa.jsonl:1", "does not occur in the context")
    assert answer not in message and "..." in message and len(message) < 300


def test_a_missing_file(tmp_path):
    refused(tmp_path / "nope.parquet", "qa", "does not exist")


# ---- arguments ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "options", "parts"),
    [
        ("squad", {}, ["'squad' is not one of classification, nli, qa, ner, seq2seq"]),
        (
            "qa",
            {"fields": {"passage": "context"}},
            ["fields ['passage'] are not columns of the 'qa' schema", "question, context, answers"],
        ),
        ("nli", {"fields": {"text": "premise"}}, ["its columns are premise, hypothesis, label"]),
        ("nli", {"fields": {"premise": ""}}, ["fields maps 'premise' to ''", "column name"]),
        ("nli", {"fields": ["premise"]}, ["fields must map"]),
        ("qa", {"fields": {"question": "context"}}, ["'question' and 'context' both from column 'context'"]),
        ("nli", {"tag_names": ["O", "B-PER"]}, ["tag_names apply to the 'ner' schema only"]),
        ("ner", {"tag_names": "O B-PER"}, ["tag_names must be a list of IOB2 tags"]),
        ("ner", {"tag_names": []}, ["tag_names must be a list"]),
        ("ner", {"tag_names": ["O", "PER"]}, ["tag_names hold 'PER', not an IOB2 tag"]),
        ("ner", {"tag_names": ["O", "B-PER", "O"]}, ["tag_names name ['O'] more than once"]),
    ],
)
def test_bad_arguments(tmp_path, schema, options, parts):
    path = write(tmp_path / "any.jsonl", [{"text": "t", "label": "l"}])
    with pytest.raises(TaskDataError) as excinfo:
        load_task_examples(path, schema, **options)
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


def test_a_csv_answer_for_json_rows_and_back(tmp_path):
    """QA reads SQuAD's answers struct from JSON lines and parquet, one answer from CSV / TSV: the other's column
    is named missing."""
    path = write(tmp_path / "qa.jsonl", [{**QA, "answer": "Bob"}])
    refused(path, "qa", "qa.jsonl:1", "no value for 'answers'", "question, context, answer")
    path = make(tmp_path / "qa.csv", 'question,context,answers\nWho?,Ann,"{""text"": [""Ann""]}"\n')
    refused(path, "qa", "qa.csv:2", "no column 'answer'", "columns: question, context, answers")
