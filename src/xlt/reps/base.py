"""What every representation shares: a kind, a role, the model it was built for, and an optional head."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Literal

from torch import nn

from xlt.errors import XLTError
from xlt.fingerprint import Fingerprint

Entry = Literal["input", "blocks", "linears", "none"]
_NAME = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")


class Role(StrEnum):
    LANGUAGE = "language"
    TASK = "task"


@dataclass
class RepConfig:
    """Base class of a kind's hyper-parameters. Subclasses are dataclasses with a ``kind`` class variable."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise XLTError(f"unknown {cls.kind or cls.__name__} option(s) {unknown} (allowed: {sorted(known)})")
        return cls(**data)


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
        self.role = Role(self.role)
        if not _NAME.match(self.name):
            raise XLTError(f"invalid rep name {self.name!r}: use letters, digits, '_', '-' and '/' (e.g. 'sk/prompt')")
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
        return cls(
            name=data["name"],
            kind=data["kind"],
            role=Role(data["role"]),
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
