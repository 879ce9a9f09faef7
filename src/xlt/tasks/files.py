"""Reading user text files line by line: every problem (unreadable, not UTF-8) is one error naming the file and
line, never a ``UnicodeDecodeError`` that names neither."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

from xlt.errors import XLTError

# A placeholder in a path pattern: anything between braces (only ``{language}`` is filled).
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def _not_utf8(path: Path, number: int, raw: bytes, exc: UnicodeDecodeError, error: type[XLTError]) -> XLTError:
    column = len(raw[: exc.start].decode("utf-8", errors="replace")) + 1
    return error(
        f"{path}:{number}: byte 0x{raw[exc.start]:02x} at column {column} is not UTF-8 (re-save the file as UTF-8)"
    )


def utf8_lines(path: Path, error: type[XLTError] = XLTError) -> Iterator[tuple[int, str]]:
    """The lines of ``path`` (numbered from 1, line ends kept) decoded as UTF-8, streamed; ``error`` for a file
    that cannot be read or a line that is not UTF-8."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc} (check the path and its permissions)") from None
    with handle:
        # Binary lines end at b"\n" only, as the line numbers an editor shows; "\r\n" stays in the line.
        for number, raw in enumerate(handle, 1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                # Editors on Windows (and Excel's "CSV UTF-8") start the file with a BOM, which would otherwise
                # become part of the first JSON line or of the first CSV column's name.
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, number, raw, exc, error) from None


def fill_language(pattern: str, language: str, error: type[XLTError] = XLTError) -> Path:
    """``pattern`` with the literal ``{language}`` replaced by the code: nothing else is interpreted, so a
    pattern cannot reach attributes (as ``str.format`` would with ``{language.__class__}``)."""
    check_pattern(pattern, error)
    if not language or any(c in language for c in "/\\\0") or language in (".", ".."):
        raise error(f"language code {language!r} cannot be part of a file name (use a code like 'sk')")
    return Path(pattern.replace("{language}", language))


def check_pattern(pattern: str, error: type[XLTError] = XLTError) -> None:
    """Refuse a path pattern whose only placeholder is not ``{language}`` (a typo such as ``{lang}`` would
    otherwise be looked for literally, and reported missing for every language)."""
    others = sorted({m for m in _PLACEHOLDER.findall(pattern) if m != "{language}"})
    if others:
        raise error(
            f"path {pattern!r} has the placeholder(s) {', '.join(others)}; only {{language}} is filled "
            "(fix the pattern, or rename the file if the braces are part of its name)"
        )
