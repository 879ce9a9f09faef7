"""What every representation records of itself, whatever made it (``add``, a native load, a foreign import):
its default bank name, its provenance, and the check that its recorded base model fits the model it joins."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from xlt.fingerprint import Fingerprint
from xlt.reps.base import Role
from xlt.version import __version__


def default_name(role: Role, language: str | None, task: str | None, kind: str) -> str:
    """``sk/prompt`` for a language rep, ``nli/bottleneck`` for a task rep."""
    return f"{language if role is Role.LANGUAGE else task}/{kind}"


def provenance(**details: Any) -> dict[str, Any]:
    """The xlt version and creation time, then each detail given (None ones left out)."""
    return {
        "xlt_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **{key: value for key, value in details.items() if value is not None},
    }


def check_fits(recorded: Fingerprint | None, fingerprint: Fingerprint, name: str, allow_other_base: bool) -> None:
    """Refuse a rep whose recorded base model is not ``fingerprint``; ``allow_other_base`` vouches for the name
    (the shape must still match)."""
    if recorded is None:
        return
    if allow_other_base:
        recorded = Fingerprint(fingerprint.name, *list(recorded.shape.values()))
    recorded.check_compatible(fingerprint, name)
