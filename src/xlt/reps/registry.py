"""The registry of representation kinds: a new kind is one module plus one ``register_kind`` call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xlt.errors import XLTError
from xlt.reps.base import RepBody, RepConfig

if TYPE_CHECKING:
    from xlt.reps.context import BuildContext

Builder = Callable[[RepConfig, "BuildContext"], RepBody]


@dataclass(frozen=True)
class Kind:
    name: str
    config_cls: type[RepConfig]
    build: Builder
    aliases: tuple[str, ...] = ()


_KINDS: dict[str, Kind] = {}
_ALIASES: dict[str, str] = {}


def register_kind(name: str, config_cls: type[RepConfig], build: Builder, aliases: tuple[str, ...] = ()) -> None:
    if name in _KINDS:
        raise XLTError(f"kind '{name}' is already registered")
    _KINDS[name] = Kind(name, config_cls, build, aliases)
    for alias in (name, *aliases):
        _ALIASES[alias] = name


def get_kind(name: str) -> Kind:
    canonical = _ALIASES.get(name) if isinstance(name, str) else None
    if canonical is None:
        raise XLTError(f"unknown representation kind {name!r} (known: {', '.join(sorted(_ALIASES))})")
    return _KINDS[canonical]


def kinds() -> list[str]:
    return sorted(_KINDS)


def kind_of_config(config: RepConfig) -> Kind:
    for kind in _KINDS.values():
        if type(config) is kind.config_cls:
            return kind
    raise XLTError(f"{type(config).__name__} is not a registered representation config")
