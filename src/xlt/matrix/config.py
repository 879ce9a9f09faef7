"""The matrix config: a YAML file read into typed dataclasses; a wrong key or value is refused with its dotted
name and the values it allows, before anything runs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from xlt.errors import XLTError
from xlt.languages import PAPER_LANGUAGES, get_language
from xlt.matrix.configurations import PAPER_NAMES
from xlt.training.corpora import CorpusConfig
from xlt.training.lm import ObjectiveConfig
from xlt.training.loop import TrainConfig
from xlt.training.presets import preset
from xlt.training.run import jsonable


class ConfigError(XLTError):
    """A matrix config key or value that is not allowed."""


@dataclass
class RepTraining:
    """Optimisation settings and each kind's options (e.g. ``prompt: {num_virtual_tokens: 20}``)."""

    train: TrainConfig = field(default_factory=TrainConfig)
    prompt: dict[str, Any] = field(default_factory=dict)
    bottleneck: dict[str, Any] = field(default_factory=dict)
    lora: dict[str, Any] = field(default_factory=dict)


@dataclass
class LanguageTraining(RepTraining):
    """How language representations are trained (once per language and kind, shared by every task)."""

    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    validation_segments: int = 64


@dataclass
class TaskTraining(RepTraining):
    """How task representations are trained (once per task, source, configuration and seed)."""

    max_length: int = 128


@dataclass
class LMHeadTraining:
    """The masked-LM head of an encoder that ships none (e5): trained once on all corpora, or given."""

    path: str | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    restrict_vocab: bool = True
    validation_segments: int = 64


@dataclass
class MatrixConfig:
    """A grid of tasks x sources x targets x configurations x seeds, and how to build what it needs.

    Args:
        model: "e5" (the embedded multilingual-e5-small), a Hugging Face model id or a local directory.
        output_dir: where representations, the result store and the report go (a rerun resumes there).
        tasks: task name -> "builtin" or a task spec ({type: classification, train:, dev:, test:, ...}).
        sources: languages task representations are trained in.
        targets: languages evaluated ("all": every language with a corpus, or the paper's 16).
        configurations: the paper's names and/or names from custom_configurations.
        custom_configurations: name -> {language: prompt|bottleneck|lora|null, task: prompt|bottleneck|lora|probe}.
        seeds: task-representation seeds (mean ± std over them in reports).
        corpora: "builtin" (the shipped CLDR + Django text) or language -> corpus ({files: [...]} or
            {dataset: ..., subset: ...}).
        languages: languages to add to the registry: code -> {name:, script:, group: source|focus|other}.
        language_training / task_training / lm_head: how each piece is trained.
        preset: defaults the training sections start from ("fast" or "paper").
        eval_batch_size: rows per evaluation batch (rows of all targets share batches).
        workers: training jobs run side by side (one per GPU, or CPU threads split between them).
        threads: torch CPU threads per worker (None: torch's choice).
        progress: progress bars.
        notes: lines the report shows above its tables (what the reader should know about this run).
    """

    model: str = "e5"
    output_dir: str = "xlt-matrix"
    tasks: dict[str, Any] = field(default_factory=lambda: {"emoji": "builtin"})
    sources: list[str] = field(default_factory=lambda: ["en"])
    targets: list[str] | str = "all"
    configurations: list[str] = field(default_factory=lambda: list(PAPER_NAMES))
    custom_configurations: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [42])
    corpora: dict[str, Any] | Literal["builtin"] = "builtin"
    languages: dict[str, Any] = field(default_factory=dict)
    preset: Literal["fast", "paper"] = "fast"
    language_training: LanguageTraining = field(default_factory=LanguageTraining)
    task_training: TaskTraining = field(default_factory=TaskTraining)
    lm_head: LMHeadTraining = field(default_factory=LMHeadTraining)
    eval_batch_size: int = 64
    workers: int = 1
    threads: int | None = None
    progress: bool = True
    notes: list[str] = field(default_factory=list)

    # Keys that select cells or change only how the work is scheduled: they may differ between runs that share
    # one output directory (a wider grid reuses every finished cell); every other key changes results.
    GRID: typing.ClassVar[tuple[str, ...]] = ("sources", "targets", "configurations", "seeds")
    OPERATIONAL: typing.ClassVar[tuple[str, ...]] = (
        "output_dir",
        "eval_batch_size",
        "workers",
        "threads",
        "progress",
        "notes",
    )

    def __post_init__(self) -> None:
        for name in ("sources", "configurations", "seeds"):
            if not getattr(self, name):
                raise ConfigError(f"{name}: the list is empty; give at least one")
        if isinstance(self.targets, str) and self.targets != "all":
            raise ConfigError(f"targets: {self.targets!r} is not a list of language codes or 'all'")
        if self.eval_batch_size < 1 or self.workers < 1:
            raise ConfigError("eval_batch_size and workers must be >= 1")
        if not self.tasks:
            raise ConfigError("tasks: no task given (e.g. tasks: {emoji: builtin})")
        for name in ("sources", "configurations", "seeds", "targets"):
            values = getattr(self, name)
            if isinstance(values, list) and len(set(values)) != len(values):
                twice = sorted({str(v) for v in values if values.count(v) > 1})
                raise ConfigError(f"{name}: {', '.join(twice)} listed twice; list each once")
        for task in self.tasks:
            if not re.fullmatch(r"[A-Za-z0-9_\-]+", task):
                raise ConfigError(f"tasks: name {task!r} may hold only letters, digits, '_' and '-' (it names reps)")

    def corpus_languages(self) -> list[str]:
        if self.corpora == "builtin":
            return list(PAPER_LANGUAGES)
        return list(self.corpora)  # type: ignore[arg-type]

    def target_languages(self) -> list[str]:
        if self.targets == "all":
            return self.corpus_languages()
        return list(self.targets)

    def recipe(self) -> dict[str, Any]:
        """Everything that changes a cell's value (the grid's axes and scheduling options excluded)."""
        data = to_dict(self)
        for key in (*self.GRID, *self.OPERATIONAL):
            data.pop(key)
        for section in ("language_training", "task_training", "lm_head"):
            for cosmetic in ("progress", "tensorboard", "wandb", "log_every"):
                data[section]["train"].pop(cosmetic, None)
        data["task_training"]["train"].pop("seed")  # each task run takes its seed from the grid's seeds
        from xlt.tasks.registry import BUILTIN

        builtin_task = any(
            isinstance(spec, str) and (spec == "builtin" or spec in BUILTIN) for spec in self.tasks.values()
        )
        if self.corpora == "builtin" or builtin_task:
            from xlt.tasks.registry import DATA_DIR

            manifest = DATA_DIR / "manifest.json"
            data["builtin_data"] = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None
        return data

    def recipe_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.recipe(), sort_keys=True).encode()).hexdigest()[:16]


def to_dict(value: Any) -> Any:
    """A config as plain JSON-able data (dataclasses, paths and tuples converted)."""
    return jsonable(value)


def _allowed(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_allowed(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _check(value: Any, tp: Any, key: str) -> Any:
    """``value`` as type ``tp``; a ConfigError naming ``key`` and what it allows otherwise."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _check(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} is not allowed (allowed: {_allowed(tp)})")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: {value!r} is not allowed (allowed: {_allowed(tp)})")
        return value
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{key}: expected null")
        return None
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): _check(v, typing.get_args(tp)[1], f"{key}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and (not isinstance(value, tp) or (tp is int and isinstance(value, bool))):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def from_mapping(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and values of the wrong type."""
    where = prefix or "the config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} options, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        dot = f"{prefix}." if prefix else ""
        raise ConfigError(f"{dot}{unknown[0]}: unknown key (allowed in {where}: {', '.join(names)})")
    values = {k: _check(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except XLTError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _preset_defaults(name: str) -> dict[str, Any]:
    """The training sections' values under ``preset``, which the config's own values then override."""
    if name not in ("fast", "paper"):
        raise ConfigError(f"preset: {name!r} is not allowed (allowed: 'fast', 'paper')")
    language, task = preset(name, "language"), preset(name, "task")  # type: ignore[arg-type]
    return {
        "language_training": {
            "train": language["train"],
            "objective": language["objective"],
            "prompt": language["prompt"],
        },
        "task_training": {"train": task["train"], "prompt": task["prompt"]},
        "lm_head": {"train": {**language["train"], "defaults": "fast"}, "objective": language["objective"]},
    }


def load_config(source: str | Path | dict[str, Any]) -> MatrixConfig:
    """A ``MatrixConfig`` from a YAML file or a mapping; languages are checked against the registry."""
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping of keys (model:, tasks:, targets:, ...)")
    data = _merge(_preset_defaults(str(data.get("preset", "fast"))), data)
    config: MatrixConfig = from_mapping(MatrixConfig, data)
    register_languages(config.languages)
    _check_rep_options(config)
    if isinstance(config.corpora, dict):
        config.corpora = {k: _corpus(k, v) for k, v in config.corpora.items()}
    for key, codes in (("sources", config.sources), ("targets", config.target_languages())):
        for code in codes:
            try:
                get_language(code)
            except XLTError as exc:
                raise ConfigError(f"{key}: {exc}") from None
    return config


def register_languages(specs: dict[str, Any]) -> None:
    """Add a config's ``languages:`` to the registry (the same definition again is a no-op)."""
    for code, spec in specs.items():
        _register(code, spec)


def _check_rep_options(config: MatrixConfig) -> None:
    """Each kind's options are checked now, not after the LM head has been trained."""
    from xlt.reps import BottleneckConfig, LoRAConfig, PromptConfig

    kinds = {"prompt": PromptConfig, "bottleneck": BottleneckConfig, "lora": LoRAConfig}
    for section in ("language_training", "task_training"):
        for kind, cls in kinds.items():
            options = getattr(getattr(config, section), kind)
            try:
                cls.from_dict(dict(options))
            except XLTError as exc:
                raise ConfigError(f"{section}.{kind}: {exc}") from None
            except TypeError as exc:
                raise ConfigError(f"{section}.{kind}: a value has the wrong type ({exc})") from None


def _register(code: str, spec: Any) -> None:
    from xlt.languages import Group, Language, register_language

    if not isinstance(spec, dict) or "name" not in spec or set(spec) - {"name", "script", "group"}:
        raise ConfigError(f"languages.{code} must be a mapping with name: and optionally script:, group:")
    groups = [g.value for g in Group]
    if spec.get("group", "other") not in groups:
        raise ConfigError(f"languages.{code}.group: {spec['group']!r} is not allowed (allowed: {', '.join(groups)})")
    language = Language(code, str(spec["name"]), str(spec.get("script", "")), Group(spec.get("group", "other")))
    try:
        existing = get_language(code)
    except XLTError:
        existing = None
    if existing is not None and existing != language:
        raise ConfigError(f"languages.{code}: '{code}' is already registered as {existing.name}; use another code")
    if existing is None:
        register_language(language)


def _corpus(language: str, spec: Any) -> dict[str, Any]:
    """Check a corpus spec now (a wrong key is a config error), keep it as data for the recipe."""
    corpus = from_mapping(CorpusConfig, spec, f"corpora.{language}")
    return to_dict(corpus)
