"""A task whose examples live in files per language and split (``data/{language}/train.jsonl``), read in one
of xlt's schemas, or are fetched from a hub dataset of the registry into files of that schema first."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from xlt.errors import XLTError
from xlt.tasks.base import Split, Task, check_template
from xlt.tasks.data import Example, TaskDataError
from xlt.tasks.files import check_pattern, fill_language

SPLITS: tuple[Split, ...] = ("train", "dev", "test")


class FileTask(Task):
    """Examples from ``train``, ``dev`` and ``test`` path patterns (``{language}`` stands for the language
    code; a path without it serves every language), in the schema ``schema`` with columns renamed by
    ``fields``; or, with ``hub: true``, from the registry's public dataset for each (task, language), fetched
    once into ``cache_dir`` (default ``$XLT_CACHE/tasks`` or ``~/.cache/xlt/tasks``, shared by every run, as
    Hugging Face's own caches are) as files of the same schema; ``mirror``: a local
    directory laid out like the hub's repositories, read instead of the hub (an offline machine)."""

    schema: ClassVar[str] = "classification"
    registry_task: ClassVar[str | None] = None  # the registry's name for this type's task (qa, ner, nli)

    def __init__(
        self,
        name: str,
        train: str | Path | None = None,
        dev: str | Path | None = None,
        test: str | Path | None = None,
        *,
        hub: bool = False,
        cache_dir: str | Path | None = None,
        mirror: str | Path | None = None,
        template: str | None = None,
        init_text: str | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        self.name, self.init_text = name, init_text
        self.mirror = Path(mirror) if mirror is not None else None
        self.template = _checked(name, self.template if template is None else template, self.placeholders)
        self.hub = bool(hub)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.hub and self.cache_dir is None:
            from xlt.tasks.hub import default_cache_dir

            self.cache_dir = default_cache_dir()
        self.fields_map = dict(fields or {})
        given = {"train": train, "dev": dev, "test": test}
        if self.hub:
            if self.registry_task is None:
                raise TaskDataError(
                    f"task '{name}': {type(self).__name__} has no datasets in the registry (give files)"
                )
            if any(v is not None for v in given.values()):
                raise TaskDataError(f"task '{name}': give either hub: true or train/dev/test files, not both")
            self.files: dict[str, str] = {}
        elif mirror is not None:
            raise TaskDataError(f"task '{name}': mirror: is read with hub: true only (add it, or drop mirror:)")
        else:
            missing = [split for split, v in given.items() if v is None]
            if missing:
                raise TaskDataError(
                    f"task '{name}' needs {', '.join(missing)} file(s) (path patterns with {{language}}), or hub: true"
                )
            self.files = {split: str(v) for split, v in given.items()}
            for split, pattern in self.files.items():
                try:
                    check_pattern(pattern, TaskDataError)
                except TaskDataError as exc:
                    raise TaskDataError(f"task '{name}' {split}: {exc}") from None
        self._cache: dict[tuple[str, str], list[Example]] = {}
        self._unfetched: dict[str, str] = {}  # language -> why its hub data could not be fetched this run

    # ---- where the data is --------------------------------------------------------------------------
    def path(self, language: str, split: Split) -> Path:
        if not self.hub:
            return fill_language(self.files[split], language, TaskDataError)
        if self.cache_dir is None:
            raise TaskDataError(f"task '{self.name}' reads hub datasets but has no cache_dir (give one)")
        fill_language("{language}", language, TaskDataError)  # a code that cannot be a file name is refused
        return self.cache_dir / str(self.registry_task) / language / f"{split}.jsonl"

    def prepare(self, languages: Sequence[str], log: Callable[[str], None] = print) -> None:
        """Fetch the registry's datasets of ``languages`` whose cache does not hold exactly the registry's current
        source (hub tasks only; the manifest decides, so a changed registry entry is fetched again rather than its
        old files reused); a language the registry has no source for is reported by its cells."""
        if not self.hub:
            return
        from xlt.tasks.hub import cached, materialize, streams
        from xlt.tasks.sources import resolve

        assert self.cache_dir is not None and self.registry_task is not None
        for language in languages:
            try:
                source = resolve(self.registry_task, language)
            except XLTError as exc:
                log(f"task '{self.name}' {language}: {exc}")
                continue
            if cached(source, self.cache_dir):
                self._unfetched.pop(language, None)
                continue
            log(f"task '{self.name}' {language}: fetching {source.path}{'/' + source.name if source.name else ''}")
            try:
                materialize(source, self.cache_dir, data_dir=self.mirror, streaming=streams(source))
                self._unfetched.pop(language, None)
            except XLTError as exc:
                # Files of an earlier fetch may still be there: they are not what the registry says now, so the
                # language's examples are refused (a source's stop the run, a target's fail its cells).
                self._unfetched[language] = str(exc)
                log(f"task '{self.name}' {language}: {exc}")

    def downloads(self, languages: Sequence[str]) -> tuple[list[str], list[str]]:
        """What ``prepare`` would fetch for ``languages``, and the languages the registry has no source for (with
        the reason); nothing for a task of local files."""
        if not self.hub or self.cache_dir is None:
            return [], []
        from xlt.tasks.hub import downloads

        fetch: list[str] = []
        missing: list[str] = []
        for language in languages:
            try:
                fetch += [item for item in downloads(str(self.registry_task), [language], cache_dir=self.cache_dir)]
            except XLTError as exc:
                missing.append(f"{language}: {exc}")
        return list(dict.fromkeys(fetch)), missing

    # ---- examples -----------------------------------------------------------------------------------
    def examples(self, language: str, split: Split) -> list[Example]:
        from xlt.tasks.schemas import load_task_examples

        if language in self._unfetched:
            raise TaskDataError(
                f"task '{self.name}' has no current {split} data for '{language}': {self._unfetched[language]}"
            )
        path = self.path(language, split)
        key = (str(path), split)
        stamp = path.stat().st_mtime_ns if path.is_file() else None
        if key not in self._cache or getattr(self, "_stamps", {}).get(key) != stamp:
            self._cache[key] = load_task_examples(
                path, self.schema, fields=self.fields_map or None, **self.read_options()
            )
            self.__dict__.setdefault("_stamps", {})[key] = stamp
        return self._cache[key]

    def read_options(self) -> dict[str, Any]:
        """Extra options of the schema's reader (NER's tag names)."""
        return {}

    def record(self, source: str) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "train_file": self.path(source, "train"),
            "dev_file": self.path(source, "dev"),
            "template": self.template,
            "fields": dict(self.fields_map),
            **self.options_record(),
        }

    def options_record(self) -> dict[str, Any]:
        """The task's own options that change what a representation learns (for the run record)."""
        return {}

    def __getstate__(self) -> dict[str, Any]:  # a job sent to a worker process need not carry the examples
        state = dict(self.__dict__)
        state["_cache"], state["_stamps"] = {}, {}
        state.pop("_generation_bounds", None)  # keyed by this process's objects
        return state


def _checked(name: str, template: str, placeholders: Sequence[str]) -> str:
    try:
        return check_template(template, TaskDataError, placeholders)
    except TaskDataError as exc:
        raise TaskDataError(f"task '{name}': {exc}") from None
