"""Text corpora for language modelling: Hugging Face datasets by name (streamed if asked) and local files,
with a seeded train/validation split and packing into token segments (no padding to a fixed length)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from xlt.errors import XLTError
from xlt.tasks.files import utf8_lines

Split = Literal["train", "validation"]


class CorpusError(XLTError):
    """A corpus that is missing, empty or in the wrong format."""


@dataclass
class CorpusConfig:
    """Where a language's text comes from.

    Either ``dataset`` (a Hugging Face dataset name, e.g. ``wikimedia/wikipedia`` with ``subset``
    ``20231101.sk``), or ``files`` (local ``.txt``: one document per non-empty line; ``.jsonl``: one JSON
    object per line with ``text_field``). The validation split is a seeded hash of each document's text, so
    it is the same in every run and with streaming, and never overlaps training.
    """

    dataset: str | None = None
    subset: str | None = None
    split: str = "train"
    files: list[str] = field(default_factory=list)
    text_field: str = "text"
    streaming: bool = False
    validation_fraction: float = 0.01
    max_validation_documents: int = 1000
    seed: int = 42

    def __post_init__(self) -> None:
        if isinstance(self.files, (str, Path)):  # a lone path would be read as a list of one-letter names
            raise CorpusError(f"files must be a list of paths, got the single string {str(self.files)!r}; write [...]")
        if bool(self.dataset) == bool(self.files):
            raise CorpusError("a corpus needs exactly one of dataset= (a Hugging Face name) or files= (local paths)")
        if not 0 < self.validation_fraction < 1:
            raise CorpusError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")


def describe(config: CorpusConfig) -> str:
    """The corpus as a user named it, for messages: the dataset (and subset) or the files."""
    if config.dataset:
        return f"dataset {config.dataset}" + (f" ({config.subset})" if config.subset else "")
    return "corpus " + ", ".join(str(f) for f in config.files)


def in_validation(text: str, fraction: float, seed: int) -> bool:
    digest = hashlib.blake2b(f"{seed}\0{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


def _local_documents(paths: list[str], text_field: str) -> Iterator[str]:
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise CorpusError(f"corpus file {path} does not exist (give a path to a .txt or .jsonl file)")
        if path.suffix not in (".txt", ".jsonl"):
            raise CorpusError(f"corpus file {path} is neither .txt nor .jsonl (convert it, one document per line)")
        for number, line in utf8_lines(path, CorpusError):
            line = line.strip()
            if not line:
                continue
            if path.suffix == ".txt":
                yield line
            elif text := _jsonl_text(path, number, line, text_field):  # an empty text is no document
                yield text


def _jsonl_text(path: Path, number: int, line: str, text_field: str) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}:{number} is not a JSON line ({exc.msg}); one JSON object per line") from None
    if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
        raise CorpusError(f"{path}:{number} has no string field '{text_field}' (set text_field=)")
    text: str = record[text_field]
    return text if text.strip() else ""


def _hub_documents(config: CorpusConfig) -> Iterator[str]:
    try:
        from datasets import load_dataset
    except ImportError as exc:
        raise CorpusError("loading a Hugging Face dataset needs the 'datasets' package (pip install datasets)") from exc
    try:
        data: Any = load_dataset(config.dataset, config.subset, split=config.split, streaming=config.streaming)
    except (OSError, ValueError) as exc:  # not found, offline, unknown subset or split: datasets' own reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorpusError(
            f"cannot load dataset {config.dataset!r} (subset {config.subset!r}, split {config.split!r}): {reason} "
            "(check the name, subset and split, or give local files=)"
        ) from exc
    for number, record in enumerate(data):
        text = record.get(config.text_field)
        if not isinstance(text, str):
            raise CorpusError(
                f"{config.dataset} record {number} has no string field '{config.text_field}' (set text_field=)"
            )
        if text.strip():
            yield text


def documents(config: CorpusConfig, split: Split) -> Iterator[str]:
    """The documents of one split, in corpus order."""
    source = _local_documents(config.files, config.text_field) if config.files else _hub_documents(config)
    held_out = 0
    held_texts: set[bytes] = set()  # digests of the validation documents (at most max_validation_documents)
    empty = True
    for text in source:
        empty = False
        # Validation holds the first max_validation_documents whose hash falls under the fraction; later
        # ones go to training, so a capped validation set never removes text from training.
        if in_validation(text, config.validation_fraction, config.seed):
            digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
            if held_out < config.max_validation_documents:
                held_out += 1
                held_texts.add(digest)
                if split == "validation":
                    yield text
                    if held_out >= config.max_validation_documents:
                        return
                continue
            if digest in held_texts:  # a later copy of a validation document never goes to training
                continue
        if split == "train":
            yield text
    if empty:
        where = config.dataset or ", ".join(config.files)
        raise CorpusError(f"corpus {where} holds no text (check the path, subset and text_field)")


def tokenized(texts: Iterable[str], tokenizer: Any, chunk: int = 256) -> Iterator[list[int]]:
    """Each text's token ids (no special tokens), in order; tokenised ``chunk`` texts per call, because a fast
    tokenizer's per-call overhead dominates on short documents (the ids are the same as one call per text)."""
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) >= chunk:
            yield from tokenizer(batch, add_special_tokens=False)["input_ids"]
            batch = []
    if batch:
        yield from tokenizer(batch, add_special_tokens=False)["input_ids"]


def pack(token_streams: Iterable[list[int]], length: int, separator: int | None) -> Iterator[list[int]]:
    """Concatenate tokenised documents (``separator`` between them) and cut segments of ``length`` tokens;
    the short remainder is dropped, so every segment is full."""
    if length < 2:
        raise CorpusError(f"segment length must be >= 2, got {length}")
    buffer: list[int] = []
    for tokens in token_streams:
        buffer.extend(tokens)
        if separator is not None:
            buffer.append(separator)
        while len(buffer) >= length:
            yield buffer[:length]
            buffer = buffer[length:]


def check_corpus(config: CorpusConfig) -> None:
    """Fail early, with the corpus's own error, if it is missing, malformed at its start, or empty."""
    next(documents(config, "train"), None)
