"""The registry of representation kinds: a new kind is one module plus one ``register_kind`` call.

A kind's registration carries everything the layers above need to know about it: the roles it serves (which
training entry points and matrix configurations may use it), its optimiser defaults per preset, the key of
its options in a matrix config, and how loading rebuilds it before its weights are read. Training, the
matrix and the loaders read these from here; none of them lists kinds of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from xlt.errors import XLTError
from xlt.reps.base import RepBody, RepConfig

if TYPE_CHECKING:
    from xlt.reps.context import BuildContext

Builder = Callable[[RepConfig, "BuildContext"], RepBody]
RoleName = Literal["language", "task"]
Preset = Literal["fast", "paper"]
PRESETS: tuple[Preset, ...] = ("paper", "fast")


@dataclass(frozen=True)
class OptimizerDefaults:
    """What a kind is trained with unless the run says otherwise."""

    optimizer: Literal["adamw", "adafactor"]
    lr: float
    weight_decay: float


@dataclass(frozen=True)
class Kind:
    """A registered kind.

    Args:
        name: its canonical name (also its default rep-name suffix, e.g. ``en/prompt``).
        config_cls: its options dataclass.
        build: ``build(config, context) -> RepBody``.
        aliases: other names accepted for it.
        roles: the roles it serves ("language": trained with a language-modelling objective; "task": trained
            on a task in a source language).
        optimizer: its optimiser defaults per preset ("fast", "paper"); empty when a run must choose them.
        options_key: the key of its options under a matrix config's ``language_training``/``task_training``
            (None: it takes no options there).
        for_loading: the config to build an empty body with before saved weights overwrite it (e.g. a prompt
            skips its text initialisation); None builds with the saved config.
    """

    name: str
    config_cls: type[RepConfig]
    build: Builder
    aliases: tuple[str, ...] = ()
    roles: tuple[RoleName, ...] = ("language", "task")
    optimizer: Mapping[str, OptimizerDefaults] = field(default_factory=dict, hash=False, compare=False)
    options_key: str | None = None
    for_loading: Callable[[RepConfig], RepConfig] | None = None

    def serves(self, role: RoleName) -> bool:
        return role in self.roles

    def optimizer_defaults(self, preset: str) -> OptimizerDefaults:
        """The defaults of ``preset``; an error naming the fix when the kind registered none."""
        check_preset(preset)
        if preset not in self.optimizer:
            raise XLTError(
                f"kind '{self.name}' registers no optimizer defaults for preset '{preset}'; set train.optimizer and "
                "train.lr, or register the kind with optimizer={...}"
            )
        return self.optimizer[preset]


_KINDS: dict[str, Kind] = {}
_ALIASES: dict[str, str] = {}


def check_preset(name: str) -> str:
    """The one check of a preset name: training presets (``xlt/presets/NAME.yaml``) and kinds' optimiser
    defaults share the names."""
    if name not in PRESETS:
        raise XLTError(f"unknown preset {name!r} (use {' or '.join(repr(p) for p in PRESETS)})")
    return name


def register_kind(
    name: str,
    config_cls: type[RepConfig],
    build: Builder,
    aliases: tuple[str, ...] = (),
    *,
    roles: tuple[RoleName, ...] = ("language", "task"),
    optimizer: Mapping[str, OptimizerDefaults] | None = None,
    options_key: str | None = "",
    for_loading: Callable[[RepConfig], RepConfig] | None = None,
) -> Kind:
    """Register a kind (see ``Kind``); ``options_key`` defaults to the kind's name."""
    if not isinstance(name, str) or not name:
        raise XLTError(f"a kind's name must be a non-empty string, got {name!r}")
    if name in _KINDS:
        raise XLTError(f"kind '{name}' is already registered")
    taken = [alias for alias in aliases if alias in _ALIASES]
    if taken:
        raise XLTError(f"kind '{name}': alias(es) {taken} already name a kind")
    unknown = [role for role in roles if role not in ("language", "task")]
    if unknown or not roles:
        raise XLTError(f"kind '{name}': roles must be a non-empty subset of ('language', 'task'), got {roles!r}")
    _check_optimizer(name, optimizer)
    key = name if options_key == "" else options_key
    _check_options_key(name, key)
    kind = Kind(name, config_cls, build, tuple(aliases), tuple(roles), dict(optimizer or {}), key, for_loading)
    _KINDS[name] = kind
    for alias in (name, *aliases):
        _ALIASES[alias] = name
    return kind


# Keys of a matrix config's training sections that are not kinds' options.
SECTION_KEYS = ("train", "objective", "validation_segments", "max_length")


def _check_optimizer(name: str, optimizer: object) -> None:
    if optimizer is None:
        return
    if not isinstance(optimizer, Mapping):
        raise XLTError(f"kind '{name}': optimizer must map a preset name to OptimizerDefaults, got {optimizer!r}")
    for preset, defaults in optimizer.items():
        check_preset(preset)
        if not isinstance(defaults, OptimizerDefaults):
            raise XLTError(f"kind '{name}': optimizer['{preset}'] must be an OptimizerDefaults, got {defaults!r}")


def _check_options_key(name: str, key: str | None) -> None:
    taken = {k.options_key: k.name for k in _KINDS.values() if k.options_key}
    if key in SECTION_KEYS or key in taken:
        owner = f"kind '{taken[key]}'" if key in taken else "the training section"
        raise XLTError(f"kind '{name}': options_key '{key}' is taken by {owner}; choose another")


def registered(role: RoleName | None = None) -> list[Kind]:
    """The kinds serving ``role`` (all, if None) in the order they were registered."""
    return [kind for kind in _KINDS.values() if role is None or kind.serves(role)]


def unregister_kind(name: str) -> None:
    """Remove a kind and its aliases (a plugin's or a test's; the built-in kinds stay for the process)."""
    kind = get_kind(name)
    del _KINDS[kind.name]
    for alias in (kind.name, *kind.aliases):
        _ALIASES.pop(alias, None)


def get_kind(name: str) -> Kind:
    canonical = _ALIASES.get(name) if isinstance(name, str) else None
    if canonical is None:
        raise XLTError(f"unknown representation kind {name!r} (known: {', '.join(sorted(_ALIASES))})")
    return _KINDS[canonical]


def kinds(role: RoleName | None = None) -> list[str]:
    """The registered kinds' names, sorted; those serving ``role`` only, if given."""
    return sorted(name for name, kind in _KINDS.items() if role is None or kind.serves(role))


def role_kind(name: str, role: RoleName) -> Kind:
    """The kind a training entry point of ``role`` is asked for, by its canonical name."""
    allowed = kinds(role)
    if not isinstance(name, str) or name not in allowed:
        raise XLTError(f"kind must be one of {allowed}, got {name!r}")
    return _KINDS[name]


def kind_of_config(config: RepConfig) -> Kind:
    for kind in _KINDS.values():
        if type(config) is kind.config_cls:
            return kind
    raise XLTError(f"{type(config).__name__} is not a registered representation config")
