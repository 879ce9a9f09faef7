"""What a matrix checks before anything runs: the model can be found, and every file that training reads exists;
and the digests of every input, which the store compares with those its results were computed from."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xlt.digest import digest, file_digest
from xlt.errors import XLTError
from xlt.matrix.config import ConfigError, MatrixConfig
from xlt.matrix.configurations import Configuration
from xlt.matrix.inputs import LM_HEAD, Input, corpus_input, file_input, task_key
from xlt.records import jsonable
from xlt.tasks.base import Task
from xlt.training.corpora import CorpusConfig

TASK_FILES = ("train", "dev", "test")
# Where a task's data is read from: paths (read from the config file's directory), not what the data is.
TASK_PATHS = (*TASK_FILES, "mirror", "cache_dir")


def task_spec(spec: Any) -> Any:
    """What a task's cells depend on in its spec, as JSON: everything but its files, whose content the inputs
    record (so that the same data under another path is the same task)."""
    if isinstance(spec, dict):
        spec = {k: v for k, v in spec.items() if k not in TASK_PATHS}
    return json.loads(json.dumps(jsonable(spec), sort_keys=True))


def model_path(config: MatrixConfig) -> Path | None:
    """Where the config's model lies when it names a local directory (relative to the config file), else None."""
    name = config.model
    if name == "e5":
        return None
    path = config.path(name)
    path_like = Path(name).expanduser().is_absolute() or name.startswith((".", "~")) or name.count("/") > 1
    return path if path.exists() or path_like else None


def check_model(config: MatrixConfig) -> None:
    """A model named by a path must be a model directory; a hub id is checked when it is loaded."""
    name, path = config.model, model_path(config)
    if path is not None and not (path / "config.json").is_file():
        what = "does not exist" if not path.exists() else "holds no config.json"
        raise ConfigError(
            f"model: {name} {what}; give a model directory saved with save_pretrained, a Hugging Face id, or e5"
        )


def resolved_spec(config: MatrixConfig, spec: Any) -> Any:
    """A task spec with its paths read from the config file's directory."""
    if not isinstance(spec, dict):
        return spec
    return {k: str(config.path(v)) if k in TASK_PATHS and isinstance(v, str) else v for k, v in spec.items()}


def prepare_tasks(config: MatrixConfig, tasks: dict[str, Task], log: Callable[[str], None]) -> None:
    """Fetch what the tasks read from the hub (into their cache) for the grid's languages, once."""
    languages = list(dict.fromkeys([*config.sources, *config.target_languages()]))
    for task in tasks.values():
        prepare = getattr(task, "prepare", None)
        if prepare is not None:
            prepare(languages, log)


def check_task_data(config: MatrixConfig, tasks: dict[str, Task], log: Callable[[str], None]) -> None:
    """Read every task's training data and test sets before anything trains: a malformed training or dev file
    stops the run with one line naming the file, the row and the fix; a malformed test set is named now and
    fails its own cells."""
    for task in tasks.values():
        for source in config.sources:
            task.training_data(source)
        for target in config.target_languages():
            if Path(_task_path(task, target, "test")).is_file():
                try:
                    task.examples(target, "test")
                except Exception as exc:  # a user's task type may raise anything: its cells report it
                    why = str(exc) if isinstance(exc, XLTError) else f"{type(exc).__name__}: {exc}"
                    log(f"warning: {why} (the cells of target '{target}' will fail)")
        cache = getattr(task, "_cache", None)
        if isinstance(cache, dict):
            cache.clear()  # read again when needed: a large training set need not stay in memory


def _hub_reason(task: Task, language: str) -> str:
    """Why a hub task has no data for ``language``: the registry's reason, or a fetch that did not finish."""
    from xlt.tasks.sources import resolve

    try:
        source = resolve(str(getattr(task, "registry_task", task.name)), language)
    except XLTError as exc:
        return str(exc)
    return f"{source.path} was not fetched (see the log above; check the network or the task's mirror:, then run again)"


def parallel_file(config: MatrixConfig, language: str) -> Path | None:
    """A language's parallel text with the source: the built-in English-X pairs (``parallel: builtin``, or
    ``builtin`` as a language's value in a mapping), or the config's file."""
    from xlt.tasks.registry import DATA_DIR

    given = "builtin" if config.parallel == "builtin" else config.parallel.get(language)  # type: ignore[union-attr]
    if given == "builtin":
        path = DATA_DIR / "parallel" / f"{language}.jsonl"
        return path if path.is_file() else None
    return config.path(given) if given is not None else None


def check_inputs(
    config: MatrixConfig,
    tasks: dict[str, Task],
    corpus: Callable[[str], CorpusConfig | None],
    configurations: list[Configuration],
) -> list[Input]:
    """Every training file must exist (a missing test file is reported on its cells); the inputs' digests."""
    inputs: list[Input] = []
    for name, task in tasks.items():
        for source in config.sources:
            for split in ("train", "dev"):
                path = _task_path(task, source, split)
                found = file_input(task_key(name, split, source), path)
                if found is None and getattr(task, "hub", False):
                    raise ConfigError(
                        f"tasks.{name}: no {split} data for source '{source}': {_hub_reason(task, source)}"
                    )
                if found is None:
                    raise ConfigError(
                        f"tasks.{name}: the {split} file {path} for source '{source}' does not exist; fix "
                        f"tasks.{name}.{split} (relative paths are read from the config file's directory)"
                    )
                inputs.append(found)
        for target in config.target_languages():
            found = file_input(task_key(name, "test", target), _task_path(task, target, "test"))
            if found is not None:
                inputs.append(found)
    if not any(c.language for c in configurations):
        return inputs  # no language representation, no LM head: the corpora are not read
    if config.lm_head.path is not None:
        head = config.path(config.lm_head.path)
        if not head.is_dir():
            raise ConfigError(f"lm_head.path: {head} is not a directory; give the head directory of a trained LM head")
        inputs.append(Input(LM_HEAD, str(head), digest(head)))
    languages = dict.fromkeys([*config.sources, *config.target_languages(), *config.corpus_languages()])
    for language in languages:
        spec = corpus(language)
        if spec is None:
            continue
        files = [Path(f) for f in spec.files]
        for path in files:
            if not path.is_file():
                raise ConfigError(
                    f"corpora.{language}: the file {path} does not exist; fix corpora.{language}.files (relative "
                    "paths are read from the config file's directory)"
                )
        inputs.append(corpus_input(language, _spec(spec), files))
    if any(c.align for c in configurations):
        inputs += _parallel_inputs(config)
    return inputs


def _parallel_inputs(config: MatrixConfig) -> list[Input]:
    """The parallel text of every target aligned with some other source; each file read now for every source it
    serves, so that a bad line or a missing source field stops the run before anything is written."""
    from xlt.training.alignment import read_pairs

    out = []
    for language in dict.fromkeys(config.target_languages()):
        sources = [s for s in config.sources if s != language]
        path = parallel_file(config, language)
        if not sources or path is None:
            continue  # a target without parallel text reports it on its cells
        if not path.is_file():
            raise ConfigError(
                f"parallel.{language}: the file {path} does not exist; fix parallel.{language} (relative paths "
                "are read from the config file's directory)"
            )
        for source in sources:
            try:
                read_pairs(path, source)
            except XLTError as exc:
                builtin = " (the built-in pairs are English-X: for another source give your own files)"
                raise ConfigError(f"parallel.{language}: {exc}{builtin if source != 'en' else ''}") from None
        out.append(Input(f"parallel:{language}", str(path), file_digest(path)))
    return out


def _task_path(task: Task, language: str, split: str) -> Path:
    try:
        return task.path(language, split)  # type: ignore[arg-type]
    except XLTError as exc:
        raise ConfigError(f"tasks.{task.name}: {exc}") from None


def _spec(spec: CorpusConfig) -> dict[str, object]:
    from dataclasses import asdict

    return {k: v for k, v in asdict(spec).items() if k != "files"}
