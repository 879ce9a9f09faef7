"""The matrix config: a YAML file read into typed dataclasses; a wrong key or value is refused with its dotted
name and the values it allows, before anything runs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from xlt.errors import XLTError
from xlt.languages import PAPER_LANGUAGES, get_language
from xlt.matrix.configurations import PAPER_NAMES
from xlt.paths import check_name, short
from xlt.records import jsonable
from xlt.reps.registry import PRESETS, RoleName, get_kind, registered
from xlt.training.alignment import AlignmentConfig
from xlt.training.buckets import length_buckets
from xlt.training.corpora import CorpusConfig
from xlt.training.lm_head_fit import check_cached_options
from xlt.training.lm_objective import ObjectiveConfig
from xlt.training.loop import TrainConfig
from xlt.training.presets import preset
from xlt.training.run import COSMETIC


class ConfigError(XLTError):
    """A matrix config key or value that is not allowed."""


@dataclass
class RepTraining:
    """Optimisation settings and each kind's options under the kind's key (e.g. ``prompt: {num_virtual_tokens:
    20}``): one key per registered kind that serves the section's role and takes options."""

    ROLE: typing.ClassVar[RoleName] = "task"
    train: TrainConfig = field(default_factory=TrainConfig)
    kind_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # options key -> the kind's options

    @classmethod
    def option_keys(cls) -> list[str]:
        return [kind.options_key for kind in registered(cls.ROLE) if kind.options_key]

    @classmethod
    def gather(cls, data: dict[str, Any], prefix: str) -> dict[str, Any]:
        """A section as written (each kind's options beside ``train``) as this dataclass's fields."""
        keys = cls.option_keys()
        options = {k: _check(data.get(k, {}), dict[str, Any], f"{prefix}.{k}") for k in keys}
        return {**{k: v for k, v in data.items() if k not in keys}, "kind_options": options}

    @classmethod
    def keys(cls) -> list[str]:
        """The keys a config may give this section."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "kind_options"]
        return [names[0], *cls.option_keys(), *names[1:]]

    def options(self, kind: str) -> dict[str, Any]:
        """The options the config gives ``kind`` (none for a kind that takes none)."""
        key = get_kind(kind).options_key
        return dict(self.kind_options.get(key, {})) if key else {}

    def written(self, data: dict[str, Any]) -> dict[str, Any]:
        """This section's JSON ``data`` as a config writes it: ``train``, then each kind's options (every key,
        empty ones too, in registration order), then the section's other keys."""
        rest = {k: v for k, v in data.items() if k not in ("train", "kind_options")}
        options = {key: data["kind_options"].get(key, {}) for key in self.option_keys()}
        return {"train": data["train"], **options, **rest}


@dataclass
class LanguageTraining(RepTraining):
    """How language representations are trained (once per language and kind, shared by every task)."""

    ROLE: typing.ClassVar[RoleName] = "language"

    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    validation_segments: int = 64
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)  # of the configurations with ``align``


@dataclass
class TaskTraining(RepTraining):
    """How task representations are trained (once per task, source, configuration and seed).

    ``length_buckets``: training batches drawn from rows of similar length in up to this many buckets (0 or
    None: random batches, as matrices started before buckets existed resume with)."""

    max_length: int = 128
    length_buckets: int | None = 8

    def __post_init__(self) -> None:
        try:
            self.length_buckets = length_buckets(self.length_buckets, "task_training.length_buckets")
        except XLTError as exc:
            raise ConfigError(str(exc)) from None


@dataclass
class LMHeadTraining:
    """The masked-LM head of an encoder that ships none (e5): trained once on all corpora, or given.

    ``cached_segments`` training segments go once through the frozen base and the head is fitted on the states at
    their masked positions for ``cached_epochs`` epochs, or fewer if early stopping ends it
    (``xlt.training.lm_head_fit``); 0 trains through the base step by step (``train.steps``) instead."""

    path: str | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    restrict_vocab: bool = True
    validation_segments: int = 64
    cached_segments: int = 1536
    cached_epochs: int = 8

    def __post_init__(self) -> None:
        check_cached_options(self.cached_segments, self.cached_epochs)


@dataclass
class Generation:
    """How a text-to-text task generates its answers at evaluation (encoders with heads generate nothing)."""

    num_beams: int = 1
    max_new_tokens: int | None = None  # None: the task's own answer length

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ConfigError(
                f"generation.num_beams: {short(self.num_beams)} is not allowed (allowed: an integer >= 1)"
            )
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(
                f"generation.max_new_tokens: {short(self.max_new_tokens)} is not allowed (allowed: an integer >= 1 "
                "or null)"
            )


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
        parallel: parallel text of the configurations with ``align``: "builtin" (the shipped English-X pairs of
            CLDR names and Django translations, ``xlt/data/parallel``) or language -> a JSON-lines file of
            ``{"<source code>": ..., "text": ..., "split": train|dev}`` pairs.
        languages: languages to add to the registry: code -> {name:, script:, group: source|focus|other}.
        language_training / task_training / lm_head: how each piece is trained.
        preset: defaults the training sections start from ("fast" or "paper").
        eval_batch_size: rows per evaluation batch (rows of all targets share batches).
        workers: jobs run side by side (one per GPU, or CPU threads split between them); with ``executor`` ray or
            slurm, the most jobs at once (1: as many as the cluster's resources allow).
        executor: where jobs run: "local" (this process), "processes" (worker processes on this machine), "ray" (a
            Ray cluster) or "slurm" (Slurm job arrays through submitit); None: processes when workers > 1, else
            local. Never part of the recipe: a run started on one executor is resumed on any other.
        executor_options: the executor's options (ray: address, cpus_per_job, gpus_per_job, memory_gb, ...; slurm:
            partition, time_min, max_jobs, cpus_per_job, gpus_per_job, mem_gb, ...; see the README).
        threads: torch CPU threads per worker (None: torch's choice).
        progress: progress bars.
        notes: lines the report shows above its tables (what the reader should know about this run).
        on_change: what a rerun does when a task or corpus file, or a task's spec, changed since results were
            computed from it: "refuse" (name them and stop) or "recompute" (retrain and re-evaluate what depends on
            them).
        rep_store: a directory of language representations (and LM heads) shared by matrices, each kept under a
            key of what determines it (None: the output directory's own ``reps/``, one per language and kind).
        generation: beams and answer length of text-to-text evaluation.
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
    parallel: dict[str, str] | Literal["builtin"] = "builtin"
    languages: dict[str, Any] = field(default_factory=dict)
    preset: Literal["fast", "paper"] = "fast"
    language_training: LanguageTraining = field(default_factory=LanguageTraining)
    task_training: TaskTraining = field(default_factory=TaskTraining)
    lm_head: LMHeadTraining = field(default_factory=LMHeadTraining)
    eval_batch_size: int = 64
    workers: int = 1
    executor: str | None = None
    executor_options: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    progress: bool = True
    notes: list[str] = field(default_factory=list)
    on_change: Literal["refuse", "recompute"] = "refuse"
    rep_store: str | None = None
    generation: Generation = field(default_factory=Generation)

    # Keys that select cells or change only how the work is scheduled: they may differ between runs that share
    # one output directory (a wider grid reuses every finished cell); every other key changes results.
    # ``corpora`` may gain languages too: each language's corpus is checked on its own (``Matrix``), by its spec
    # and the content of its files; and ``tasks`` may gain tasks: each task's spec is checked on its own, its
    # files by their content.
    GRID: typing.ClassVar[tuple[str, ...]] = (
        "sources",
        "targets",
        "configurations",
        "seeds",
        "corpora",
        "parallel",
        "tasks",
    )
    OPERATIONAL: typing.ClassVar[tuple[str, ...]] = (
        "output_dir",
        "eval_batch_size",
        "workers",
        "executor",
        "executor_options",
        "threads",
        "progress",
        "notes",
        "on_change",
        "rep_store",  # where representations are kept, not what they are: each is keyed by what determines it
    )
    REQUIRED: typing.ClassVar[tuple[str, ...]] = ("model", "tasks", "targets")

    def __post_init__(self) -> None:
        for name in ("sources", "configurations", "seeds"):
            if not getattr(self, name):
                raise ConfigError(f"{name}: the list is empty; give at least one")
        if isinstance(self.targets, str) and self.targets != "all":
            raise ConfigError(f"targets: {short(self.targets)} is not a list of language codes or 'all'")
        if isinstance(self.targets, list) and not self.targets:
            raise ConfigError("targets: the list is empty; give at least one language code (or 'all')")
        if self.eval_batch_size < 1 or self.workers < 1:
            raise ConfigError("eval_batch_size and workers must be >= 1")
        if not self.tasks:
            raise ConfigError("tasks: no task given (e.g. tasks: {emoji: builtin})")
        if self.executor is not None or self.executor_options:
            from xlt.matrix.executors.registry import executor_options

            name = self.executor or ("processes" if self.workers > 1 else "local")
            try:
                executor_options(name, self.executor_options)
            except XLTError as exc:
                raise ConfigError(str(exc)) from None
        for name in ("sources", "configurations", "seeds", "targets"):
            values = getattr(self, name)
            if isinstance(values, list) and len(set(values)) != len(values):
                twice = sorted({str(v) for v in values if values.count(v) > 1})
                raise ConfigError(f"{name}: {', '.join(twice)} listed twice; list each once")
        for task in self.tasks:
            _name(task, "tasks: name")
        for name in self.custom_configurations:
            _name(name.replace("+", "-"), "custom_configurations: name")
        for code in self.languages:
            _name(code, "languages: code")
        if isinstance(self.corpora, dict):
            for code in self.corpora:
                _name(code, "corpora: language code")
        if isinstance(self.parallel, str) and self.parallel != "builtin":
            raise ConfigError(f"parallel: {short(self.parallel)} is not 'builtin' or a mapping of language -> file")
        if isinstance(self.parallel, dict):
            for code, file in self.parallel.items():
                _name(code, "parallel: language code")
                if not isinstance(file, str) or not file:
                    raise ConfigError(f"parallel.{code}: {short(file)} is not a file path")
        for name in ("sources", "targets"):
            values = getattr(self, name)
            for code in values if isinstance(values, list) else []:
                _name(code, f"{name}: language code")

    base_dir: typing.ClassVar[Path] = Path()  # set per instance by load_config: where relative paths start

    def path(self, value: str | Path) -> Path:
        """A path from the config, read from the config file's directory when relative."""
        value = Path(value).expanduser()
        return value if value.is_absolute() else Path(self.base_dir) / value

    def corpus_languages(self) -> list[str]:
        if self.corpora == "builtin":
            return list(PAPER_LANGUAGES)
        return list(self.corpora)  # type: ignore[arg-type]

    def target_languages(self) -> list[str]:
        if self.targets == "all":
            return self.corpus_languages()
        return list(self.targets)

    def recipe(self) -> dict[str, Any]:
        """Everything that changes every cell's value (the grid's axes and scheduling options excluded; each task's
        spec is a cell's own, recorded per task by the store)."""
        data = to_dict(self)
        for key in (*self.GRID, *self.OPERATIONAL):
            data.pop(key)
        for section in ("language_training", "task_training", "lm_head"):
            for cosmetic in COSMETIC:
                data[section]["train"].pop(cosmetic, None)
        data["task_training"]["train"].pop("seed")  # each task run takes its seed from the grid's seeds
        if data["generation"] == jsonable(Generation()):
            del data["generation"]  # at its defaults: the recipe hashes of stores older than the key stay the same
        if data["language_training"]["alignment"] == jsonable(AlignmentConfig()):
            del data["language_training"]["alignment"]  # likewise
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


def _name(value: Any, what: str) -> str:
    try:
        return check_name(value, what)
    except XLTError as exc:
        raise ConfigError(str(exc)) from None


def to_dict(value: Any) -> Any:
    """A config as plain JSON-able data (dataclasses, paths and tuples converted); a training section's kind
    options beside its other keys, as the config writes them."""
    data = jsonable(value)
    if isinstance(value, MatrixConfig):
        for section in ("language_training", "task_training"):
            data[section] = getattr(value, section).written(data[section])
    elif isinstance(value, RepTraining):
        data = value.written(data)
    return data


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
        raise ConfigError(f"{key}: {short(value)} is not allowed (allowed: {_allowed(tp)})")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: {short(value)} is not allowed (allowed: {_allowed(tp)})")
        return value
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{key}: expected null")
        return None
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {short(value)}")
        (item,) = typing.get_args(tp)
        return [_check(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {short(value)}")
        return {str(k): _check(v, typing.get_args(tp)[1], f"{key}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and (not isinstance(value, tp) or (tp is int and isinstance(value, bool))):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {short(value)}")
    return value


def from_mapping(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and values of the wrong type."""
    where = prefix or "the config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} options, got {short(data)}")
    hints = typing.get_type_hints(cls)
    names = cls.keys() if issubclass(cls, RepTraining) else [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(str(k) for k in set(data) - set(names))
    if unknown:
        dot = f"{prefix}." if prefix else ""
        raise ConfigError(f"{dot}{unknown[0][:60]}: unknown key (allowed in {where}: {', '.join(names)})")
    if issubclass(cls, RepTraining):
        data = cls.gather(data, prefix)
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
    if name not in PRESETS:  # the config's own wording for a value outside a key's choices
        allowed = ", ".join(repr(p) for p in sorted(PRESETS))
        raise ConfigError(f"preset: {short(name)} is not allowed (allowed: {allowed})")
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


MAX_CONFIG_BYTES = 1 << 20


MAX_CONFIG_NODES = 100_000


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` holds once every alias is expanded (memoised, so counting stays cheap)."""
    if sizes.get(id(node)) == -1:
        mark = node.start_mark
        raise ConfigError(
            f"{mark.name}, line {mark.line + 1}: an alias refers to itself; remove it or write the value out"
        )
    if id(node) not in sizes:
        sizes[id(node)] = -1  # being counted: meeting it again below is a cycle
        if isinstance(node, yaml.MappingNode):
            size = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            size = 1 + sum(_expanded_size(v, sizes) for v in node.value)
        else:
            size = 1
        sizes[id(node)] = min(size, MAX_CONFIG_NODES + 1)
    return sizes[id(node)]


def read_yaml(path: Path) -> Any:
    """A YAML file's data: bounded in size, aliases refused, errors one line naming the file."""
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; give the config's YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; check the path")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES >> 20} MiB; a matrix config is a short YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); re-save it as UTF-8") from None
    # Aliases (*name) are fine, but nested ones can expand a kilobyte into gigabytes ("billion laughs"): the
    # document is measured as expanded before it is built.
    loader = yaml.SafeLoader(text)
    loader.name = str(path)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_CONFIG_NODES:
            raise ConfigError(
                f"{path} expands to more than {MAX_CONFIG_NODES:,} values through its aliases (*name); "
                "a config is small: write it without nested aliases"
            )
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        opened = f" ({context} that starts at line {start.line + 1})" if context and start is not None else ""
        raise ConfigError(f"{path}{where} is not valid YAML: {short(problem)[1:-1]}{opened}; fix it there") from None
    finally:
        loader.dispose()


def load_config(source: str | Path | dict[str, Any]) -> MatrixConfig:
    """A ``MatrixConfig`` from a YAML file or a mapping; languages are checked against the registry.

    Relative paths in a file's tasks, corpora and ``lm_head.path`` are read from the file's directory (from
    the current directory for a mapping); every training file must exist before anything runs."""
    if isinstance(source, dict):
        data, where, base = source, "the config", Path.cwd()
    else:
        path = Path(source)
        data, where, base = read_yaml(path), str(path), path.resolve().parent
    if data is None or data == {}:
        raise ConfigError(
            f"{where} is empty; a matrix config needs at least {', '.join(MatrixConfig.REQUIRED)} "
            "(see the README's transfer matrix section)"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping of keys (model:, tasks:, targets:, ...), not {short(data)}")
    missing = [key for key in MatrixConfig.REQUIRED if key not in data]
    if missing:
        raise ConfigError(
            f"{where} has no {', '.join(f'{k}:' for k in missing)}; a matrix config must say which model, tasks and "
            "target languages to run (nothing that costs hours is implied)"
        )
    data = _merge(_preset_defaults(str(data.get("preset", "fast"))), data)
    config: MatrixConfig = from_mapping(MatrixConfig, data)
    config.base_dir = base
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
    for section in ("language_training", "task_training"):
        training: RepTraining = getattr(config, section)
        for kind in registered(training.ROLE):
            if kind.options_key is None or not training.kind_options.get(kind.options_key):
                continue  # no options given: a kind not used here must not fail every config
            try:
                kind.config_cls.from_dict(training.options(kind.name))
            except XLTError as exc:
                raise ConfigError(f"{section}.{kind.options_key}: {exc}") from None
            except TypeError as exc:
                raise ConfigError(f"{section}.{kind.options_key}: a value has the wrong type ({exc})") from None


def _register(code: str, spec: Any) -> None:
    from xlt.languages import Group, Language, register_language

    _name(code, "languages: code")
    if not isinstance(spec, dict) or "name" not in spec or set(spec) - {"name", "script", "group"}:
        raise ConfigError(f"languages.{code} must be a mapping with name: and optionally script:, group:")
    groups = [g.value for g in Group]
    if spec.get("group", "other") not in groups:
        allowed = ", ".join(groups)
        raise ConfigError(f"languages.{code}.group: {short(spec['group'])} is not allowed (allowed: {allowed})")
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
