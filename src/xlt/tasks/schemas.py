"""Task data files of every task type, as ``Example`` lists: one schema per type, each a set of columns (renamed
with ``fields``) read from JSON lines, CSV / TSV or parquet (``xlt.tasks.rows``). The schemas follow the hub's
datasets: XNLI's (premise, hypothesis, label 0/1/2), SQuAD's (question, context, answers struct, id), WikiANN's
(tokens, ner_tags as indices into its tag names). Every problem is one ``TaskDataError`` naming the file, the line
or row, and the fix."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from xlt.errors import brief
from xlt.tasks.data import Example, TaskDataError, load_examples
from xlt.tasks.rows import either, is_table, kind, read_rows, where
from xlt.tasks.tagging_metrics import format_spans, spans_from_bio

SCHEMAS = ("classification", "nli", "qa", "ner", "seq2seq")

# Every column a schema reads (the keys ``fields`` may rename): the required ones and the optional ones. QA in
# CSV / TSV holds one answer as text (``answer``, ``answer_start``) instead of SQuAD's ``answers`` struct.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "classification": ("text", "label"),
    "nli": ("premise", "hypothesis", "label"),
    "qa": ("question", "context", "answers", "answer", "answer_start", "id"),
    "ner": ("tokens", "ner_tags"),
    "seq2seq": ("input", "target"),
}

NLI_LABELS = ("entailment", "neutral", "contradiction")  # XNLI's ClassLabel order: 0, 1, 2
WIKIANN_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")  # WikiANN's ner_tags order


def load_task_examples(
    path: str | Path,
    schema: str,
    *,
    fields: Mapping[str, str] | None = None,
    tag_names: Sequence[str] | None = None,
) -> list[Example]:
    """The examples of the task file ``path`` read as ``schema`` (one of ``SCHEMAS``); ``fields`` maps the
    schema's column names to the file's, ``tag_names`` are NER's tags by index (WikiANN's by default)."""
    if schema not in SCHEMAS:
        raise TaskDataError(f"task data schema {schema!r} is not one of {', '.join(SCHEMAS)}")
    columns = _columns(schema, fields)
    names = _tag_names(schema, tag_names)
    path = Path(path)
    _check_distinct(columns, _read(schema, path))
    if schema == "classification":
        return load_examples(path, columns["text"], columns["label"])
    required = tuple(columns[key] for key in _required(schema, path))
    convert = _CONVERTERS[schema]
    examples = [
        convert(_Row(path, number, record, columns, required), names) for number, record in read_rows(path, required)
    ]
    if not examples:
        listed = ", ".join(repr(c) for c in required)
        raise TaskDataError(f"task file {path} holds no examples (give it at least one row with {listed})")
    return examples


def _columns(schema: str, fields: Mapping[str, str] | None) -> dict[str, str]:
    keys = _COLUMNS[schema]
    if fields is None:
        fields = {}
    if not isinstance(fields, Mapping):
        raise TaskDataError(f"fields must map column names to the file's, e.g. {{'{keys[0]}': 'sentence'}}")
    unknown = sorted(str(k) for k in fields if k not in keys)
    if unknown:
        raise TaskDataError(
            f"fields {unknown} are not columns of the {schema!r} schema; its columns are {', '.join(keys)}"
        )
    for key, column in fields.items():
        if not isinstance(column, str) or not column.strip():
            raise TaskDataError(f"fields maps {key!r} to {brief(column)}; map it to a column name of the file")
    return {key: fields.get(key, key) for key in keys}


def _check_distinct(columns: Mapping[str, str], keys: Sequence[str]) -> None:
    """Two of the columns read (``keys``) taken from one would silently copy, e.g. the question into the context."""
    seen: dict[str, str] = {}
    for key in keys:
        column = columns[key]
        if column in seen:
            raise TaskDataError(
                f"fields read {seen[column]!r} and {key!r} both from column {column!r}; map each to its own column"
            )
        seen[column] = key


def _tag_names(schema: str, tag_names: Sequence[str] | None) -> tuple[str, ...]:
    if tag_names is None:
        return WIKIANN_TAGS
    if schema != "ner":
        raise TaskDataError(f"tag_names apply to the 'ner' schema only, not to {schema!r}; leave them out")
    if isinstance(tag_names, (str, bytes)) or not isinstance(tag_names, Sequence) or not tag_names:
        raise TaskDataError(f"tag_names must be a list of IOB2 tags, e.g. {list(WIKIANN_TAGS)}; got {brief(tag_names)}")
    for name in tag_names:
        if not isinstance(name, str) or not _is_tag(name):
            raise TaskDataError(f"tag_names hold {brief(name)}, not an IOB2 tag (write O, B-TYPE or I-TYPE)")
    repeated = sorted({name for name in tag_names if tag_names.count(name) > 1})
    if repeated:
        raise TaskDataError(f"tag_names name {repeated} more than once; list each tag once")
    return tuple(tag_names)


def _required(schema: str, path: Path) -> tuple[str, ...]:
    if schema == "qa":
        return ("question", "context", "answer") if is_table(path) else ("question", "context", "answers")
    return _COLUMNS[schema]


def _read(schema: str, path: Path) -> tuple[str, ...]:
    """Every column a file of ``path``'s type is read for, the optional ones too."""
    if schema == "qa":
        return (
            ("question", "context", "answer", "answer_start", "id")
            if is_table(path)
            else ("question", "context", "answers", "id")
        )
    return _COLUMNS[schema]


@dataclass(frozen=True)
class _Row:
    """One row being read, with what its messages say: where it is, the columns it needs."""

    path: Path
    number: int
    record: dict[str, object]
    columns: Mapping[str, str]  # schema key -> the file's column
    required: tuple[str, ...]  # the file's columns every row needs

    @property
    def place(self) -> str:
        return where(self.path, self.number)

    def fail(self, problem: str) -> TaskDataError:
        return TaskDataError(f"{self.place}: {problem}")

    def column(self, key: str) -> str:
        return self.columns[key]

    def value(self, key: str) -> object:
        """The value of a required column; a row without one is refused."""
        column = self.columns[key]
        value = self.record.get(column)
        if value is None:
            present = ", ".join(str(k) for k in self.record) or "none"
            fix = (
                f"rename the column or set fields={{'{key}': ...}}"
                if column == key
                else f"fields= reads {key!r} from it; fix the mapping"
            )
            raise TaskDataError(
                f"{self.place} lacks {either(self.required)}: no value for {column!r} (its fields: {present}; {fix})"
            )
        return value

    def optional(self, key: str) -> object:
        """The value of an optional column, None when absent, null or an empty cell."""
        value = self.record.get(self.columns[key])
        return None if value == "" else value

    def text(self, key: str) -> str:
        """A required column holding non-empty text."""
        value = self.value(key)
        column = self.columns[key]
        if not isinstance(value, str):
            raise self.fail(f"{column!r} is {kind(value)}, not a string (write it as a string)")
        if not value.strip():
            raise self.fail(f"{column!r} is empty (fill it in or remove the row)")
        return value


# ---- NLI ---------------------------------------------------------------------------------------------------------


def _nli(row: _Row, _names: tuple[str, ...]) -> Example:
    premise, hypothesis = row.text("premise"), row.text("hypothesis")
    return Example(premise, _nli_label(row), pair=hypothesis)


def _nli_label(row: _Row) -> str:
    value = row.value("label")
    column = row.column("label")
    allowed = "write entailment, neutral or contradiction, or 0, 1, 2 in XNLI's order"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise row.fail(f"{column!r} is {kind(value)}; {allowed}")
    label: str | int = value.strip().lower() if isinstance(value, str) else value
    if isinstance(label, str) and label.lstrip("-").isdigit():
        label = int(label)  # CSV cells and some exports write the class index as text
    if label in (-1, "-"):
        # XNLI-style test files and SNLI mark rows whose annotators disagreed: they have nothing to score against.
        raise row.fail(f"{column!r} is {value!r}, no gold label (drop rows without a gold label)")
    if isinstance(label, int):
        if 0 <= label < len(NLI_LABELS):
            return NLI_LABELS[label]
        raise row.fail(f"{column!r} is {value}, outside 0, 1, 2; {allowed}")
    if label in NLI_LABELS:
        return label
    if not label:
        raise row.fail(f"{column!r} is empty (give the row its label or remove it)")
    raise row.fail(f"{column!r} is {brief(value, 40)}, not an NLI label; {allowed}")


# ---- QA ----------------------------------------------------------------------------------------------------------


def _qa(row: _Row, _names: tuple[str, ...]) -> Example:
    question, context = row.text("question"), row.text("context")
    answers, starts = _table_answer(row) if is_table(row.path) else _answer_struct(row)
    for answer, start in zip(answers, starts, strict=True):
        _check_answer(row, context, answer, start)
    identity = row.optional("id")
    if identity is not None and (isinstance(identity, bool) or not isinstance(identity, (str, int))):
        raise row.fail(f"{row.column('id')!r} is {kind(identity)}; write the id as a string, or leave it out")
    return Example(
        context,
        answers[0],
        pair=question,
        answers=answers,
        starts=starts,
        id=str(identity) if identity is not None else f"{row.path.name}:{row.number}",
    )


_UNANSWERABLE = "unanswerable questions (SQuAD 2.0) are not supported; drop rows without an answer"


def _table_answer(row: _Row) -> tuple[tuple[str, ...], tuple[int, ...]]:
    column = row.column("answer")
    answer = row.record.get(column)
    if answer is None or not str(answer).strip():
        raise row.fail(f"{column!r} is empty: {_UNANSWERABLE}")
    start = row.optional("answer_start")
    if start is None:
        return (str(answer),), (-1,)
    text = str(start).strip()
    if not text.lstrip("-").isdigit():
        raise row.fail(
            f"{row.column('answer_start')!r} is {brief(start, 20)}, not a character offset "
            "(write a whole number, or leave the cell empty)"
        )
    return (str(answer),), (_start(row, int(text)),)


def _answer_struct(row: _Row) -> tuple[tuple[str, ...], tuple[int, ...]]:
    column = row.column("answers")
    value = row.value("answers")
    shape = 'write {"text": [...], "answer_start": [...]} as SQuAD does'
    if value == []:
        raise row.fail(f"{column!r} holds no answer: {_UNANSWERABLE}")
    if isinstance(value, list) and all(isinstance(a, dict) and "text" in a for a in value):
        # SQuAD's original files list each answer as {"text", "answer_start"}; the struct is its columns.
        starts = [-1 if a.get("answer_start") is None else a["answer_start"] for a in value]
        value = {"text": [a["text"] for a in value], "answer_start": starts}
    if not isinstance(value, dict):
        raise row.fail(f"{column!r} is {kind(value)}; {shape}")
    texts, starts = value.get("text"), value.get("answer_start")
    # One answer may be written bare, as a string and an integer, rather than as lists of one.
    texts = [texts] if isinstance(texts, str) else texts
    starts = [starts] if isinstance(starts, int) else starts
    if not isinstance(texts, list):
        raise row.fail(f"{column!r} has {'no text' if texts is None else 'text ' + kind(texts)}; {shape}")
    if not texts:
        raise row.fail(f"{column!r} holds no answer: {_UNANSWERABLE}")
    if any(not isinstance(text, str) for text in texts):
        wrong = next(text for text in texts if not isinstance(text, str))
        raise row.fail(f"{column!r} holds an answer that is {kind(wrong)}; write every answer as a string")
    if starts is None:
        return tuple(texts), (-1,) * len(texts)
    if not isinstance(starts, list) or any(isinstance(s, bool) or not isinstance(s, int) for s in starts):
        raise row.fail(f"{column!r} has answer_start {brief(starts, 40)}; write one integer offset per answer")
    if len(starts) != len(texts):
        raise row.fail(
            f"{column!r} has {len(texts)} answer(s) and {len(starts)} answer_start(s); give each answer its offset"
        )
    return tuple(texts), tuple(_start(row, s) for s in starts)


def _start(row: _Row, start: int) -> int:
    if start < -1:
        raise row.fail(f"answer_start {start} is negative; write the answer's character offset (-1: unknown)")
    return start


def _check_answer(row: _Row, context: str, answer: str, start: int) -> None:
    shown = brief(answer, 40)
    if not answer.strip():
        raise row.fail(f"an answer is empty: {_UNANSWERABLE}")
    if start < 0:
        if answer not in context:
            raise row.fail(
                f"answer {shown} does not occur in the context (fix the answer or the context, or drop the row)"
            )
        return
    if context[start : start + len(answer)] != answer:
        found = context.find(answer)
        fix = (
            f"the context has it at {found}; fix answer_start"
            if found >= 0
            else "the context does not hold it; fix the answer or the context, or drop the row"
        )
        raise row.fail(f"answer {shown} is not at answer_start {start} ({fix})")


# ---- NER ---------------------------------------------------------------------------------------------------------


def _ner(row: _Row, names: tuple[str, ...]) -> Example:
    tokens = _tokens(row)
    raw = _raw_tags(row)
    if len(raw) != len(tokens):
        raise row.fail(
            f"{len(tokens)} token(s) in {row.column('tokens')!r} but {len(raw)} tag(s) in "
            f"{row.column('ner_tags')!r} (give each token one tag)"
        )
    tags = tuple(_tag(row, position, tokens[position], tag, names) for position, tag in enumerate(raw))
    _check_iob2(row, tokens, tags)
    return Example(" ".join(tokens), format_spans(spans_from_bio(tokens, tags)), tokens=tuple(tokens), tags=tuple(tags))


def _tokens(row: _Row) -> list[str]:
    column = row.column("tokens")
    if is_table(row.path):
        return row.text("tokens").split()  # "fill it in" when empty, as any text cell
    tokens = row.value("tokens")
    if not isinstance(tokens, list):
        raise row.fail(f"{column!r} is {kind(tokens)}; write the words as a list of strings")
    if not tokens:
        raise row.fail(f"{column!r} is empty (a sentence needs at least one token; remove the row)")
    for position, token in enumerate(tokens, 1):
        if not isinstance(token, str):
            raise row.fail(f"token {position} of {column!r} is {kind(token)}; write every token as a string")
        if not token.strip():
            raise row.fail(f"token {position} of {column!r} is empty (remove it and its tag)")
    return tokens


def _raw_tags(row: _Row) -> list[object]:
    if is_table(row.path):
        return list(row.text("ner_tags").split())
    tags = row.value("ner_tags")
    if not isinstance(tags, list):
        raise row.fail(f"{row.column('ner_tags')!r} is {kind(tags)}; write one tag per token as a list")
    return tags


def _tag(row: _Row, position: int, token: str, tag: object, names: tuple[str, ...]) -> str:
    at = f"at token {position + 1} ({brief(token, 30)})"
    if isinstance(tag, str) and tag.isdigit():
        tag = int(tag)  # an index written as text (CSV / TSV cells)
    if isinstance(tag, bool) or not isinstance(tag, (str, int)):
        raise row.fail(f"tag {brief(tag, 30)} {at} is {kind(tag)}; write an IOB2 tag or its index in tag_names")
    if isinstance(tag, int):
        if not 0 <= tag < len(names):
            raise row.fail(
                f"tag {tag} {at} is outside tag_names (0 to {len(names) - 1}: {', '.join(names)}); "
                "pass the dataset's tag names as tag_names"
            )
        return names[tag]
    return tag


def _is_tag(tag: str) -> bool:
    if tag == "O":
        return True
    prefix, dash, entity = tag.partition("-")
    # A type with an edge '-' or whitespace would be read differently by the span scorer (seqeval strips '-').
    return prefix in ("B", "I") and bool(dash) and bool(entity) and entity.strip("-") == entity and tag.split() == [tag]


def _check_iob2(row: _Row, tokens: list[str], tags: tuple[str, ...]) -> None:
    previous = "O"
    for position, (token, tag) in enumerate(zip(tokens, tags, strict=True), 1):
        at = f"tag {tag!r} at token {position} ({brief(token, 30)})"
        if not _is_tag(tag):
            raise row.fail(f"{at} is not IOB2 (write O, B-TYPE or I-TYPE)")
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            raise row.fail(
                f"{at} follows {previous!r}: in IOB2 an entity starts with B-{tag[2:]} "
                "(fix the tag, or convert IOB1 tags to IOB2)"
            )
        previous = tag


# ---- sequence to sequence ----------------------------------------------------------------------------------------


def _seq2seq(row: _Row, _names: tuple[str, ...]) -> Example:
    return Example(row.text("input"), row.text("target"))


_CONVERTERS: dict[str, Callable[[_Row, tuple[str, ...]], Example]] = {
    "nli": _nli,
    "qa": _qa,
    "ner": _ner,
    "seq2seq": _seq2seq,
}
