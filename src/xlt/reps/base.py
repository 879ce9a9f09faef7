"""What every representation shares: a kind, a role, the model it was built for, and an optional head."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, ClassVar, Literal, Union

from torch import nn

from xlt.errors import XLTError
from xlt.fingerprint import Fingerprint
from xlt.paths import short

Entry = Literal["input", "blocks", "linears", "none"]
_NAME = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")


# nn.ModuleDict refuses keys that shadow its own attributes ("training", "keys"...): refuse them as names first.
_RESERVED = frozenset(name for name in dir(nn.ModuleDict()) if not name.startswith("__"))


class Role(StrEnum):
    LANGUAGE = "language"
    TASK = "task"

    @classmethod
    def parse(cls, value: object) -> Role:
        """A role from its value, or one clear error (``Role("x")`` raises a bare ValueError)."""
        try:
            return cls(value)
        except ValueError:
            raise XLTError(f"role must be 'language' or 'task', got {value!r}") from None


def check_name(name: object) -> str:
    """A rep name is a bank key and a path component: letters, digits, '_', '-' and '/' separators only."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise XLTError(f"invalid rep name {name!r}: use letters, digits, '_', '-' and '/' (e.g. 'sk/prompt')")
    if name in _RESERVED:
        raise XLTError(f"rep name {name!r} is reserved (an attribute of the bank); choose another, e.g. '{name}/x'")
    return name


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " or ".join(repr(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        args = [arg for arg in typing.get_args(hint) if arg is not Ellipsis]
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if hint is float:
        return "a finite number"
    return getattr(hint, "__name__", str(hint))


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON-like value fits a type hint (ints, floats, bools, str, Literals, enums, optionals, lists)."""
    origin = typing.get_origin(hint)
    if hint is Any or isinstance(hint, typing.TypeVar):
        return True
    if hint is type(None) or hint is None:
        return value is None
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin in (list, tuple):
        args = [arg for arg in typing.get_args(hint) if arg is not Ellipsis]
        return isinstance(value, list | tuple) and all(_matches(v, args[0]) for v in value) if args else True
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:  # a bool is an int to Python, never to a config
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # an int is a fine float; nan and inf are not a setting
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return isinstance(value, hint) or value in {member.value for member in hint}
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a hint this check does not know: the class's own __post_init__ has the last word


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # a class defined where its annotations cannot be resolved: check what is resolved
        return {f.name: f.type for f in dataclasses.fields(cls) if not isinstance(f.type, str)}


def check_fields(obj: Any, owner: str | None = None) -> None:
    """Refuse a dataclass field whose value does not fit its type hint, naming the field (one line)."""
    hints = _hints(type(obj))
    owner = owner or getattr(type(obj), "kind", "") or type(obj).__name__
    for f in dataclasses.fields(obj):
        if f.name not in hints:
            continue
        value = getattr(obj, f.name)
        if not _matches(value, hints[f.name]):
            raise XLTError(
                f"{owner} option {f.name}={short(value)} has the wrong type: expected {_type_name(hints[f.name])}"
                f" (fix {f.name} in the config)"
            )


def check_range(
    owner: str,
    name: str,
    value: float,
    low: float,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = True,
) -> None:
    """Refuse a numeric option outside ``[low, high)`` (or the given open/closed ends), naming it."""
    below = value <= low if low_open else value < low
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        bound = f"{left}{low}, {high if high is not None else 'inf'}{right}"
        raise XLTError(f"{owner} option {name}={short(value)} is out of range {bound}; set {name} within it")


def from_options(cls: type, data: Any, what: str) -> Any:
    """Dataclass ``cls`` from a dict of its options; anything else, or an unknown option, is an XLTError."""
    if not isinstance(data, dict):
        raise XLTError(f"a {what} config must be a dict of options, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        raise XLTError(f"unknown {what} option(s) {unknown[:5]} (allowed: {sorted(known)})")
    return cls(**data)


@dataclass
class RepConfig:
    """Base class of a kind's hyper-parameters. Subclasses are dataclasses with a ``kind`` class variable."""

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        check_fields(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepConfig:
        return from_options(cls, data, cls.kind or cls.__name__)


def check_seed(owner: str, seed: int) -> None:
    # torch's generators take an unsigned 64-bit seed; a negative one would wrap around silently
    check_range(owner, "seed", seed, 0, 2**64)


@dataclass
class RepInfo:
    """Identity and provenance of a representation; saved beside its weights."""

    name: str
    kind: str
    role: Role
    language: str | None = None
    task: str | None = None
    fingerprint: Fingerprint | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.role = Role.parse(self.role)
        check_name(self.name)
        for key in ("language", "task"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), str):
                raise XLTError(f"rep '{self.name}': {key} must be a string code, got {getattr(self, key)!r}")
        if self.role is Role.LANGUAGE and not self.language:
            raise XLTError(f"rep '{self.name}' has role 'language' but no language code (pass language='sk')")
        if self.role is Role.TASK and not self.task:
            raise XLTError(f"rep '{self.name}' has role 'task' but no task name (pass task='nli')")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "role": self.role.value,
            "language": self.language,
            "task": self.task,
            "fingerprint": self.fingerprint.to_dict() if self.fingerprint else None,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepInfo:
        fp = data.get("fingerprint")
        if not isinstance(data.get("provenance") or {}, dict):
            raise XLTError(f"provenance must be a dict, got {type(data['provenance']).__name__}")
        return cls(
            name=data["name"],
            kind=data["kind"],
            role=Role.parse(data["role"]),
            language=data.get("language"),
            task=data.get("task"),
            fingerprint=Fingerprint.from_dict(fp) if fp else None,
            provenance=dict(data.get("provenance") or {}),
        )


class RepBody(nn.Module):
    """The trainable weights of one kind. ``entry`` says where the host lets them into the model."""

    entry: ClassVar[Entry]


class Representation(nn.Module):
    """A named, role-carrying representation: the kind's body plus, for encoder task reps, a head."""

    def __init__(self, info: RepInfo, config: RepConfig, body: RepBody, head: nn.Module | None = None) -> None:
        super().__init__()
        self.info = info
        self.config = config
        self.body = body
        self.head = head

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def role(self) -> Role:
        return self.info.role

    @property
    def entry(self) -> Entry:
        return self.body.entry

    def num_parameters(self, include_head: bool = True) -> int:
        params = self.parameters() if include_head else self.body.parameters()
        return sum(p.numel() for p in params)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, kind={self.kind!r}, role={self.role.value!r}"
