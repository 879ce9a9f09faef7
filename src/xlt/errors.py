"""Errors raised by xlt. Each message says what is wrong and how to fix it, in one line."""


class XLTError(ValueError):
    """Base class: a request xlt cannot honour. Raised before any compute."""


class PlanError(XLTError):
    """A plan names a representation that does not exist or cannot run on this model."""


class FingerprintError(XLTError):
    """A representation was trained on another base model or shape."""


class UnsupportedError(XLTError):
    """The architecture cannot host this kind of representation (or this head)."""


class FormatError(XLTError):
    """A file on disk is not what its loader expects."""


def brief(value: object, limit: int = 80) -> str:
    """A value's repr for a one-line message: newlines flattened, long reprs cut."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
