"""Rows of a task data file, streamed as ``(number, fields)``: JSON lines (``.jsonl``, and ``.json``, which the
hub's json datasets and ``Dataset.to_json`` write as JSON lines too), CSV / TSV with a header, and parquet.
Numbers are the file's line (text files) or its 1-based row (parquet); ``where`` writes them as messages do.
Every problem is one ``TaskDataError`` naming the file, the line or row, and the fix."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from xlt.errors import XLTError
from xlt.tasks.files import utf8_lines

if TYPE_CHECKING:
    import pyarrow.parquet as pq


class TaskDataError(XLTError):
    """Task data that is missing, empty, malformed or labelled outside the task's labels."""


Row = tuple[int, dict[str, object]]  # (line or row number, the row's fields)

SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
_BATCH_ROWS = 1024  # parquet rows decoded at a time: the file is streamed, never read whole


def read_rows(path: str | Path, required: Sequence[str] = (), rename: str = "set fields=") -> Iterator[Row]:
    """The rows of ``path``, streamed. ``required`` are the columns every row needs: a CSV / TSV header or a
    parquet schema without one of them is refused before any row (JSON lines name their fields per row, so the
    caller checks those); ``rename`` is how the caller's user maps other column names (the fix in messages)."""
    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"task file {path} does not exist")
    if path.suffix in (".jsonl", ".json"):
        return _json_lines(path, required)
    if path.suffix in (".csv", ".tsv"):
        return _delimited(path, required, rename)
    if path.suffix == ".parquet":
        return _parquet(path, required, rename)
    raise TaskDataError(
        f"task file {path} must be .jsonl, .csv or .tsv, .json (JSON lines) or .parquet "
        f"(its suffix is {path.suffix or 'none'!r}; rename or convert it)"
    )


def is_table(path: str | Path) -> bool:
    """Whether ``path``'s cells are plain text (CSV / TSV): lists and structs are written differently there."""
    return Path(path).suffix in (".csv", ".tsv")


def where(path: str | Path, number: int) -> str:
    """A row's place as messages name it: ``FILE:LINE`` for text files, ``FILE row N`` for parquet."""
    return f"{path} row {number}" if Path(path).suffix == ".parquet" else f"{path}:{number}"


def either(columns: Sequence[str]) -> str:
    """``'a', 'b' or 'c'``: the columns a row lacks one of."""
    quoted = [repr(c) for c in columns]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


_KINDS = {bool: "a boolean", int: "an integer", float: "a number", list: "a list", dict: "an object", str: "a string"}


def kind(value: object) -> str:
    """What a value is, in a message's words."""
    return _KINDS.get(type(value), type(value).__name__)


def _json_lines(path: Path, required: Sequence[str]) -> Iterator[Row]:
    example = ", ".join(f'"{c}": ...' for c in (required or ("text", "label")))
    for number, line in utf8_lines(path, TaskDataError):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskDataError(
                f"{path}:{number} is not a JSON line ({exc.msg}); write one JSON object per line"
            ) from None
        if not isinstance(record, dict):
            raise TaskDataError(
                f"{path}:{number} is not a JSON object but {kind(record)}; write one object per line, "
                f"e.g. {{{example}}}"
            )
        if set(record) == {"version", "data"}:
            # SQuAD's original files nest every question in one object; the hub's copies are one per line.
            raise TaskDataError(
                f"{path}:{number} is SQuAD's nested format (version, data); flatten it to one object per "
                "question, e.g. with datasets' load_dataset('json', field='data') or the hub's squad copy"
            )
        yield number, record


def _delimited(path: Path, required: Sequence[str], rename: str) -> Iterator[Row]:
    delimiter = "\t" if path.suffix == ".tsv" else ","
    reader = csv.reader((line for _, line in utf8_lines(path, TaskDataError)), delimiter=delimiter)
    header: list[str] | None = None
    header_line = start = 1
    checked = False
    try:
        for row in reader:
            # A record may span lines (a quoted newline): it starts after the previous one ended.
            number, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header, header_line = row, number
                continue
            if not checked:
                _check_header(path, header, header_line, number, required, rename)
                checked = True
            _check_width(path, number, row, header, required, delimiter)
            yield number, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise TaskDataError(
            f"{path}:{reader.line_num} is not valid {path.suffix[1:].upper()} ({exc}); check its quoting"
        ) from None
    if header is not None and not checked:
        _check_header(path, header, header_line, header_line, required, rename)


def _check_header(
    path: Path, header: list[str], header_line: int, number: int, required: Sequence[str], rename: str
) -> None:
    missing = [name for name in required if name not in header]
    if missing:
        raise TaskDataError(
            f"{path}:{number} lacks {either(required)}: the header (line {header_line}) has no "
            f"column {', '.join(repr(m) for m in missing)} (columns: {', '.join(header)}; rename the columns or "
            f"{rename})"
        )


def _check_width(
    path: Path, number: int, row: list[str], header: list[str], required: Sequence[str], delimiter: str
) -> None:
    if len(row) < len(header):
        raise TaskDataError(
            f"{path}:{number} lacks {either(required)}: it has {len(row)} field(s), the header "
            f"{len(header)} (complete the row or remove it)"
        )
    if len(row) > len(header):
        raise TaskDataError(
            f"{path}:{number} has {len(row)} fields, the header {len(header)}: a text holding {delimiter!r} "
            'must be quoted ("...")'
        )


def _parquet(path: Path, required: Sequence[str], rename: str) -> Iterator[Row]:
    # pyarrow comes with datasets; imported here so that reading JSON lines or CSV never pays for it.
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise TaskDataError(f"{path} is not a readable parquet file ({_summary(exc)}); {_REWRITE}") from None
    columns = list(file.schema_arrow.names)
    missing = [name for name in required if name not in columns]
    if missing:
        raise TaskDataError(
            f"{path} lacks {either(required)}: it has no column {', '.join(repr(m) for m in missing)} "
            f"(columns: {', '.join(columns) or 'none'}; rename the columns or {rename})"
        )
    return _parquet_rows(path, file)


def _parquet_rows(path: Path, file: pq.ParquetFile) -> Iterator[Row]:
    import pyarrow as pa

    number = 0
    batches = file.iter_batches(batch_size=_BATCH_ROWS)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise TaskDataError(
                f"{path} row {number + 1}: the parquet data cannot be read ({_summary(exc)}); {_REWRITE}"
            ) from None
        for record in batch.to_pylist():
            number += 1
            yield number, record


_REWRITE = "write it again, e.g. with datasets' Dataset.to_parquet or pandas' DataFrame.to_parquet"


def _summary(exc: BaseException) -> str:
    """An arrow error in one line: its first line, cut (they can run to a page)."""
    text = " ".join(str(exc).split(". ")[0].split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
