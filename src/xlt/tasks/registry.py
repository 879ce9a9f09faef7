"""Tasks by name: the built-in ones shipped with xlt, and task types a config builds from its options."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xlt.errors import XLTError
from xlt.tasks.base import Task
from xlt.tasks.checkworthiness import CheckworthinessTask
from xlt.tasks.ner import NERTask
from xlt.tasks.nli import NLITask
from xlt.tasks.qa import QATask
from xlt.tasks.seq2seq import Seq2SeqTask
from xlt.tasks.text_classification import TextClassificationTask

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def emoji_task() -> TextClassificationTask:
    """Emoji-group classification from CLDR short names: English train/dev, parallel tests in 16 languages on
    emoji never seen in training (``xlt/data/README.md`` says how it was built)."""
    root = DATA_DIR / "emoji"
    return TextClassificationTask(
        "emoji",
        root / "train.jsonl",
        root / "dev.jsonl",
        root / "test" / "{language}.jsonl",
        template="query: {text}",  # e5's input convention; other models read it as plain text
        init_text="Classify the emoji named in {language} into its group:",
    )


def paper_task(kind: type[QATask | NERTask | NLITask], name: str) -> Callable[[], Task]:
    """The paper's task ``name`` on the public datasets of the registry, fetched once into ``$XLT_CACHE/tasks``
    (default ``~/.cache/xlt/tasks``) and shared by every run; a task spec with ``hub: true`` chooses another
    ``cache_dir:``, and ``mirror:`` (a local copy of the hub repositories) for an offline machine."""
    return lambda: kind(name, hub=True)


BUILTIN: dict[str, Callable[[], Task]] = {
    "emoji": emoji_task,
    "qa": paper_task(QATask, "qa"),
    "ner": paper_task(NERTask, "ner"),
    "nli": paper_task(NLITask, "nli"),
}
TASK_TYPES: dict[str, Callable[..., Task]] = {
    "classification": TextClassificationTask,
    "qa": QATask,
    "ner": NERTask,
    "nli": NLITask,
    "checkworthiness": CheckworthinessTask,
    "seq2seq": Seq2SeqTask,
}


def register_task_type(name: str, factory: Callable[..., Task]) -> None:
    """Make ``type: NAME`` in a matrix config build tasks with ``factory(name=..., **options)``."""
    if name in TASK_TYPES:
        raise XLTError(f"task type '{name}' is already registered")
    TASK_TYPES[name] = factory


def task_options(factory: Callable[..., Task]) -> list[str] | None:
    """The options a task type takes: its own parameters and, where it passes ``**options`` on to its base class,
    the base's, up the class hierarchy; None where it takes any (a ``**options`` no declared base consumes)."""
    bound: set[str] = set()
    while isinstance(factory, functools.partial):  # a type with some options fixed takes the rest
        bound |= set(factory.keywords)
        factory = factory.func
    names: set[str] = set()
    chain = [c for c in factory.__mro__ if "__init__" in c.__dict__] if isinstance(factory, type) else [factory]
    for owner in chain:
        if owner in (Task, object):
            return None  # **options reached no base that declares them: whatever the type accepts
        target = owner.__init__ if isinstance(owner, type) else owner  # type: ignore[misc]
        parameters = inspect.signature(target).parameters
        names |= {p.name for p in parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return sorted(names - bound - {"self", "name"})
    return None


def build_task(name: str, spec: str | dict[str, Any]) -> Task:
    """``"builtin"`` (or the built-in's own name) or ``{"type": "classification", "train": ..., ...}``."""
    if isinstance(spec, str):
        key = name if spec == "builtin" else spec
        if key not in BUILTIN:
            raise XLTError(f"tasks.{name}: no built-in task '{key}' (built-in: {', '.join(sorted(BUILTIN))})")
        return BUILTIN[key]()
    if not isinstance(spec, dict):
        raise XLTError(f"tasks.{name} must be 'builtin' or a mapping with type: and the task's files")
    options = dict(spec)
    kind = options.pop("type", "classification")
    if kind not in TASK_TYPES:
        raise XLTError(f"tasks.{name}.type: unknown task type '{kind}' (allowed: {', '.join(sorted(TASK_TYPES))})")
    factory = TASK_TYPES[kind]
    allowed = task_options(factory)
    unknown = sorted(set(options) - set(allowed)) if allowed is not None else []
    if unknown:
        raise XLTError(f"tasks.{name}: unknown option(s) {unknown} (allowed: {', '.join(['type', *allowed])})")
    try:
        return factory(name=name, **options)
    except TypeError as exc:
        raise XLTError(f"tasks.{name}: {exc} (a task of files needs train, dev and test)") from None
