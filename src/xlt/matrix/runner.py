"""``xlt matrix``: build every representation a grid needs, evaluate every cell, keep the results.

Order: the encoder's LM head (if it ships none), language representations (once per language and kind),
task representations (once per task, source, configuration and seed), then evaluation, where every target of
one task representation shares routed batches (each row carries its own target's plan). Each step is
skipped where its output already exists, so a killed run started again loses and repeats nothing.

Language representations and the LM head depend on the base model, their recipe and their corpora, never on a
task or a matrix: with ``rep_store`` they are kept in a directory shared by matrices, each under a key of what
determines it, so a second matrix on the same base trains none that exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xlt.errors import XLTError
from xlt.formats.atomic import atomic_write_text, make_dir, remove_tree
from xlt.languages import get_language
from xlt.loading import load_model
from xlt.matrix.checks import (
    check_inputs,
    check_model,
    check_task_data,
    model_path,
    parallel_file,
    prepare_tasks,
    resolved_spec,
    task_spec,
)
from xlt.matrix.config import MatrixConfig, to_dict
from xlt.matrix.configurations import BUILTIN_NAMES, Configuration, resolve_configurations
from xlt.matrix.evaluation import EvaluationJob, EvaluationSetting, TaskGroup
from xlt.matrix.executors import Board, Executor, Outcome, Work, WorkerSpec, execute, make_executor
from xlt.matrix.inputs import LM_HEAD, Changes, Input, compare
from xlt.matrix.jobs import Job
from xlt.matrix.language_modelling import LanguageModelling
from xlt.matrix.publish import publish, write_config
from xlt.matrix.store import Key, ResultStore, check_rep_store, check_store_dir, key_of, open_rep_store, read_rows
from xlt.model import XLTModel
from xlt.paths import contained, inside, writing_under
from xlt.records import differing_keys, flat, jsonable, named
from xlt.reps.registry import get_kind
from xlt.tasks.base import Task
from xlt.tasks.registry import DATA_DIR, build_task
from xlt.training.alignment import AlignmentRun
from xlt.training.compilation import check_compile
from xlt.training.corpora import CorpusConfig
from xlt.training.language import LanguageRun, LMHeadRun
from xlt.training.run import COSMETIC, RUN_FILE
from xlt.training.task import TaskRun

Log = Callable[[str], None]

HEAD = "lm_head"  # the LM head's entry among the rep directories a matrix records


@dataclass(frozen=True)
class Cell:
    task: str
    source: str
    target: str
    configuration: str
    seed: int

    @property
    def key(self) -> Key:
        return (self.task, self.source, self.target, self.configuration, self.seed)


def grid(config: MatrixConfig, configurations: list[Configuration]) -> list[Cell]:
    return [
        Cell(task, source, target, conf.name, seed)
        for task in config.tasks
        for source in config.sources
        for conf in configurations
        for seed in config.seeds
        for target in config.target_languages()
    ]


class Matrix(LanguageModelling):
    """One matrix run over ``config`` in ``config.output_dir``."""

    def __init__(self, config: MatrixConfig, log: Log = print, model: XLTModel | None = None) -> None:
        self.config, self.log = config, log
        self.out = config.path(config.output_dir)
        self.configurations = resolve_configurations(config.configurations, config.custom_configurations)
        self.by_name = {c.name: c for c in self.configurations}
        self.tasks: dict[str, Task] = {
            name: build_task(name, resolved_spec(config, spec)) for name, spec in config.tasks.items()
        }
        self.store: ResultStore | None = None
        self.digests: dict[str, str] = {}  # input key -> digest of what this run reads
        self._model = model
        self.failed: dict[str, str] = {}  # rep name -> why it could not be built
        self.train_seconds: dict[str, float] = {}
        self.rep_dirs: dict[str, Path] = {}  # rep name -> the directory it was built in (or reused from)
        self.executor: Executor | None = None
        self.board = Board.of(self.out)
        self._head_dir: Path | None = None
        self.rep_store = config.path(config.rep_store) if config.rep_store is not None else None
        self._language_dirs: dict[tuple[str, str], Path] = {}  # in a rep store: (language, kind) -> its keyed run
        self._head: str | None = None  # what language representations were trained against (part of their key)

    @property
    def model(self) -> XLTModel:
        if self._model is None:
            self.log(f"loading {self.config.model}")
            self._model = load_model(self.config.model, self.config.threads, path=model_path(self.config))
        return self._model

    # paths -------------------------------------------------------------------------------------------
    def _language_dir(self, language: str, kind: str) -> Path:
        if self.rep_store is None:
            return contained(self.out, "reps", "language", f"{language}-{kind}")
        return self._language_dirs[(language, kind)]

    def _in_rep_store(self) -> AbstractContextManager[Any]:
        """Writes into the rep store (outside the output directory) are allowed within it, and only there."""
        if self.rep_store is None:
            return nullcontext()
        return writing_under(self.rep_store, independent=True)

    def _task_dir(self, group: TaskGroup) -> Path:
        name = f"{group.task}-{group.source}-{group.configuration.trains_with.slug}-seed{group.seed}"
        if group.configuration.cycle:  # keyed by the languages it cycles through: another set is another run
            cycled = ",".join(self._cycled_languages(group.source))
            name += "-" + hashlib.sha256(cycled.encode()).hexdigest()[:8]
        return contained(self.out, "reps", "task", name)

    def _aligned_dir(self, language: str, kind: str, source: str) -> Path:
        if self.rep_store is None:
            return contained(self.out, "reps", "language", f"{language}-{kind}-aligned-{source}")
        key = self._aligned_key(language, kind, source)
        return contained(self.rep_store, "language", f"{language}-{kind}-aligned-{source}-{key}")

    def _corpus(self, language: str) -> CorpusConfig | None:
        if self.config.corpora == "builtin":
            path = DATA_DIR / "corpora" / f"{language}.txt"
            return CorpusConfig(files=[str(path)]) if path.is_file() else None
        spec = self.config.corpora.get(language)  # type: ignore[union-attr]
        if spec is None:
            return None
        return CorpusConfig(**{**spec, "files": [str(self.config.path(f)) for f in spec.get("files") or []]})

    # the run -----------------------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        cells = grid(self.config, self.configurations)
        prepare_tasks(self.config, self.tasks, self.log)
        current = check_inputs(self.config, self.tasks, self._corpus, self.configurations)
        check_task_data(self.config, self.tasks, self.log)
        self.digests = {i.key: i.digest for i in current}
        check_model(self.config)
        check_store_dir(self.out)
        if self.rep_store is not None:
            check_rep_store(self.rep_store, self.out)
        executor = self._executor()
        executor.check()  # a missing optional dependency is refused before anything is written
        if (self.config.executor or "local") in ("local", "processes"):  # this machine trains: check it now
            check_compile(self._compiles())
        if not read_rows(self.out):  # a first run: a model that cannot be loaded must not pin the store to it
            _ = self.model
        recipe, ignore = self.config.recipe(), (*self.config.GRID, *self.config.OPERATIONAL)
        with writing_under(self.out), ResultStore.open(self.out, self.config.recipe_hash(), recipe, ignore) as store:
            self.store = store
            if self.rep_store is not None:
                with self._in_rep_store():
                    open_rep_store(self.rep_store, self.out)
                store.meta.extra["rep_store"] = str(self.rep_store)
            self._take_tasks(store)
            self._take_inputs(store, current)
            self._take_grid_languages(store)
            write_config(self.out, to_dict(self.config))
            todo = [c for c in cells if not store.done(c.key)]
            self.log(f"matrix: {len(cells)} cells, {len(cells) - len(todo)} already done, {len(todo)} to run")
            if todo:
                for task in self.tasks.values():
                    task.check_family(self.model.host.family)  # before anything trains
                self.executor = executor
                self.board.open_run(executor.name, executor.workers)
                self.log(f"executor: {executor.describe()}")
                try:
                    self._build_language_reps(todo)
                    self._measure_language_modelling()
                    groups = self._groups(todo)
                    self._build_task_reps(groups)
                    self._evaluate_groups(store, groups)
                except BaseException as exc:  # interrupted, or a failure of the run itself: the board says so
                    self.board.close_run(f"{type(exc).__name__}: {exc}".strip().splitlines()[0])
                    raise
                else:
                    self.board.close_run()
                finally:
                    executor.close()
            rows = [store.get(c.key) for c in cells]
            self.store = None
        errors = [r for r in rows if r is not None and r.get("status") != "ok"]
        for row in errors:
            self.log(f"cell {row['task']}/{row['source']}->{row['target']} {row['configuration']}: {row['error']}")
        return [r for r in rows if r is not None]

    def _compiles(self) -> bool:
        c = self.config
        return bool(c.language_training.train.compile or c.task_training.train.compile or c.lm_head.train.compile)

    def _executor(self) -> Executor:
        """The config's executor (``processes`` for ``workers`` > 1 when none is named, as before executors)."""
        c = self.config
        name = c.executor or ("processes" if c.workers > 1 else "local")
        spec = WorkerSpec(c.model, model_path(c), c.threads, dict(c.languages))
        # ray and slurm: workers 1 leaves the number of jobs at once to the cluster; processes: workers is its size
        workers = 1 if name == "local" else c.workers if c.workers > 1 or name == "processes" else None
        executor = make_executor(name, c.executor_options, workers, spec, self.board, self.log)
        executor.logs = contained(self.out, "logs", name)
        return executor

    def _take_tasks(self, store: ResultStore) -> None:
        """Compare each task's spec with the one its cells were computed under. Tasks are a grid axis: a new task
        only adds cells; a changed one is refused, or its representations and cells are computed again."""
        recorded = store.meta.extra.get("tasks")
        if recorded is None:  # a store from before tasks were an axis: its recipe held them all
            previous = store.previous if store.previous is not None else store.meta.config
            recorded = {name: task_spec(spec) for name, spec in (previous.get("tasks") or {}).items()}
            store.meta.extra["tasks"] = recorded
            store.save_meta()  # kept even if this run stops below: the store no longer holds them in its recipe
        current = {name: task_spec(spec) for name, spec in self.config.tasks.items()}
        changed = [name for name, spec in current.items() if name in recorded and recorded[name] != spec]
        if changed:
            differ = ", ".join(
                f"tasks.{name} ({named(differing_keys(flat(recorded[name]), flat(current[name]))) or 'its spec'})"
                for name in changed
            )
            if self.config.on_change == "refuse":
                raise XLTError(
                    f"changed since the results in {self.out} were computed: {differ}; restore it, or run again with "
                    "--on_change recompute to recompute that task's representations and cells"
                )
            self.log(f"changed: {differ}: recomputing that task's representations and cells")
            self._forget_tasks(store, set(changed))
        store.meta.extra["tasks"] = {**recorded, **current}
        store.save_meta()

    def _forget_tasks(self, store: ResultStore, names: set[str]) -> None:
        """Delete the task representations and cells of tasks whose spec changed (all of them xlt's own)."""
        stale = [run_dir for run_dir, run in _runs(self.out / "reps" / "task") if run.get("task") in names]
        cells = [key_of(row) for row in store.rows() if row["task"] in names]
        for run_dir in stale:
            if inside(self.out, run_dir):
                remove_tree(run_dir)
        store.drop(cells)
        self.log(f"forgot {len(stale)} representation(s) and {len(cells)} cell(s) of the changed task(s)")

    def _take_inputs(self, store: ResultStore, current: list[Input]) -> None:
        """Compare today's task files and corpora with those the store's results were computed from."""
        changes = compare(store.meta.inputs, current)
        if changes:
            if self.config.on_change == "refuse":
                raise XLTError(
                    f"inputs changed since the results in {self.out} were computed from them: {changes.describe()}; "
                    "restore them, or run again with --on_change recompute to recompute what depends on them"
                )
            self.log(f"inputs changed ({changes.describe()}): recomputing what depends on them")
            self._forget(store, changes)
        store.meta.inputs.update(self.digests)
        store.save_meta()

    def _forget(self, store: ResultStore, changes: Changes) -> None:
        """Delete the representations and cells that depend on changed inputs (all of them xlt's own)."""
        corpora = changes.corpora()
        every_language = bool(corpora & set(store.meta.extra.get("head_languages", []))) or changes.lm_head()
        trained = {*changes.task_files("train"), *changes.task_files("dev")}
        stale: list[Path] = []
        if every_language:
            # a shared store's head is kept (another matrix may use it): the changed corpora give a new key
            if self.rep_store is None:
                stale.append(self.out / "reps" / "lm-head")
            store.meta.extra.pop("head_languages", None)
            store.meta.extra.get("rep_dirs", {}).pop(HEAD, None)
        parallel = changes.parallel()
        for run_dir, run in _runs(self.out / "reps" / "language"):
            aligned = run.get("alignment") or {}
            # an aligned one also read its pairs, and its teacher was trained on the source's corpus
            pairs_or_teacher = aligned and (run.get("language") in parallel or aligned.get("source") in corpora)
            if every_language or run.get("language") in corpora or pairs_or_teacher:
                stale.append(run_dir)
        for run_dir, run in _runs(self.out / "reps" / "task"):
            source, with_language = run.get("source_language"), run.get("language_rep") is not None
            cycled = bool(run.get("cycle_language_reps")) and bool(corpora)  # it read every language's rep
            with_changed = with_language and (every_language or source in corpora)
            if (run.get("task"), source) in trained or with_changed or cycled:
                stale.append(run_dir)
        tested = changes.task_files("test")
        known = resolve_configurations(
            sorted({r["configuration"] for r in store.rows()} & set(self._all_configurations())),
            self.config.custom_configurations,
        )
        kinds = {c.name: c.language for c in known}
        cycled = {c.name for c in known if c.cycle or c.without_own}  # they read every language's corpus
        aligned = {c.name for c in known if c.align}
        cells = [
            key_of(row)
            for row in store.rows()
            if (row["task"], row["source"]) in trained
            or (row["task"], row["target"]) in tested
            or (kinds.get(row["configuration"]) and (every_language or {row["source"], row["target"]} & corpora))
            or (row["configuration"] in cycled and bool(corpora))
            or (row["configuration"] in aligned and row["target"] in parallel)
        ]
        for run_dir in stale:
            if run_dir.is_dir() and inside(self.out, run_dir):
                remove_tree(run_dir)
        store.drop(cells)
        self.log(f"forgot {len(stale)} representation(s) and {len(cells)} cell(s) computed from the old inputs")

    def _all_configurations(self) -> list[str]:
        return [*BUILTIN_NAMES, *self.config.custom_configurations]

    def _groups(self, todo: list[Cell]) -> dict[TaskGroup, list[str]]:
        groups: dict[TaskGroup, list[str]] = {}
        for cell in todo:
            group = TaskGroup(cell.task, cell.source, self.by_name[cell.configuration], cell.seed)
            groups.setdefault(group, []).append(cell.target)
        return groups

    def _build_language_reps(self, todo: list[Cell]) -> None:
        wanted: dict[tuple[str, str], None] = {}
        for cell in todo:
            conf = self.by_name[cell.configuration]
            if conf.language is not None:
                # A cycled task representation is trained with every language's representation of its kind; a
                # composed or ensembled target's comes from the others'.
                every = conf.cycle or conf.without_own
                languages = self._grid_languages() if every else [cell.source, cell.target]
                for language in languages:
                    wanted[(language, conf.language)] = None
        if not wanted:
            return
        head_dir = None
        if self.model.host.needs_lm_head:
            try:
                head_dir = self._lm_head()
            except Exception as exc:  # every language rep needs the head: reported on all their cells
                why = f"the LM head could not be trained: {type(exc).__name__}: {exc}"
                self.log(why)
                self.failed.update({f"{language}/{kind}": why for language, kind in wanted})
                aligned = self._aligned_wanted(todo)
                self.failed.update({conf.aligned_rep(t, source): why for (t, _, source), conf in aligned.items()})
                return
        c = self.config.language_training
        jobs = []
        for language, kind in wanted:
            corpus = self._corpus(language)
            if corpus is None:
                self.failed[f"{language}/{kind}"] = (
                    f"no corpus for language '{language}' (add corpora.{language} to the config)"
                )
                continue
            if self.rep_store is not None:
                key = self._language_key(language, kind)
                self._language_dirs[(language, kind)] = contained(
                    self.rep_store, "language", f"{language}-{kind}-{key}"
                )
            run = LanguageRun(
                language=language,
                kind=kind,  # type: ignore[arg-type]
                corpus=corpus,
                output_dir=self._language_dir(language, kind),
                rep=dict(c.options(kind)),
                objective=c.objective,
                train=self._train(c.train),
                validation_segments=c.validation_segments,
                lm_head=head_dir,
            )
            jobs.append(Job(f"{language}/{kind}", run))
        self.log(f"language representations: {len(jobs)} ({', '.join(j.name for j in jobs)})")
        with self._in_rep_store():
            self._run(jobs)
        if self.rep_store is not None:
            self._used({job.name: Path(job.run.output_dir) for job in jobs if job.name not in self.failed})
        self._build_aligned_reps(todo, head_dir)

    def _aligned_wanted(self, todo: list[Cell]) -> dict[tuple[str, str, str], Configuration]:
        """(target, kind, source) of every aligned representation the cells to run need."""
        wanted: dict[tuple[str, str, str], Configuration] = {}
        for cell in todo:
            conf = self.by_name[cell.configuration]
            if conf.align and cell.target != cell.source:
                wanted.setdefault((cell.target, str(conf.language), cell.source), conf)
        return wanted

    def _build_aligned_reps(self, todo: list[Cell], head_dir: Path | None) -> None:
        """The targets' language representations aligned with the source's, for configurations with ``align``:
        trained after the plain ones, whose source representation is each one's teacher."""
        wanted = self._aligned_wanted(todo)
        c = self.config.language_training
        jobs = []
        for (language, kind, source), conf in wanted.items():
            name, teacher = conf.aligned_rep(language, source), f"{source}/{kind}"
            corpus, pairs = self._corpus(language), parallel_file(self.config, language)
            if corpus is None:
                self.failed[name] = f"no corpus for language '{language}' (add corpora.{language} to the config)"
                continue
            if pairs is None:
                self.failed[name] = (
                    f"no parallel text for language '{language}' (add parallel.{language}: FILE to the config; "
                    "in a mapping, builtin keeps a language's built-in pairs)"
                )
                continue
            if teacher in self.failed:
                self.failed[name] = f"the source's {teacher} could not be built: {self.failed[teacher]}"
                continue
            run = LanguageRun(
                language=language,
                kind=kind,
                corpus=corpus,
                output_dir=self._aligned_dir(language, kind, source),
                rep=dict(c.options(kind)),
                objective=c.objective,
                train=self._train(c.train),
                validation_segments=c.validation_segments,
                lm_head=head_dir,
                alignment=AlignmentRun(pairs, source, teacher, c.alignment),
                name=name,
            )
            jobs.append(Job(name, run, [self._language_dir(source, kind) / "rep"], stage="aligned"))
        if not jobs:
            return
        self.log(f"aligned language representations: {len(jobs)} ({', '.join(j.name for j in jobs)})")
        with self._in_rep_store():
            self._run(jobs)
        if self.rep_store is not None:
            self._used({job.name: Path(job.run.output_dir) for job in jobs if job.name not in self.failed})

    def _grid_languages(self) -> list[str]:
        """The languages with a corpus among the grid's sources and targets (in that order): those a cycled task
        representation meets and a composed one is averaged from."""
        languages = dict.fromkeys([*self.config.sources, *self.config.target_languages()])
        return [lang for lang in languages if self._corpus(lang) is not None]

    def _cycled_languages(self, source: str) -> list[str]:
        """The source, then the grid's other languages with a corpus."""
        return list(dict.fromkeys([source, *self._grid_languages()]))

    def _take_grid_languages(self, store: ResultStore) -> None:
        """Cycled and composed cells depend on the grid's set of languages with a corpus: when it changes, the
        stored ones are recomputed (their task representations are keyed by the set, so none is refused)."""
        current = self._grid_languages()
        before = store.meta.extra.get("grid_languages")
        if before is not None and before != current:
            builtin = resolve_configurations(list(BUILTIN_NAMES), {})
            dependent = {c.name for c in builtin if c.cycle or c.without_own}
            dependent |= {name for name, c in self.by_name.items() if c.cycle or c.without_own}
            stale = [key_of(row) for row in store.rows() if row["configuration"] in dependent]
            if stale:
                store.drop(stale)
                self.log(
                    f"the grid's languages changed: {len(stale)} cycled, composed or ensemble cell(s) to recompute"
                )
        if before != current:
            store.meta.extra["grid_languages"] = current
            store.save_meta()

    def _language_key(self, language: str, kind: str) -> str:
        """What determines a language representation, hashed: never the task or the matrix."""
        c = self.config.language_training
        return _key(
            {
                "base": self.model.fingerprint.to_dict(),
                "language": language,
                "language_name": get_language(language).name,  # a prompt's initial text names the language
                "kind": kind,
                "rep": c.options(kind),
                "objective": jsonable(c.objective),
                "train": _recipe_of(c.train),
                "validation_segments": c.validation_segments,
                "corpus": self.digests.get(f"corpus:{language}"),
                "lm_head": self._head,
            }
        )

    def _aligned_key(self, language: str, kind: str, source: str) -> str:
        """What determines an aligned representation: the plain one's determinants, the teacher's, the pairs."""
        c = self.config.language_training
        pairs = parallel_file(self.config, language)
        return _key(
            {
                "language": self._language_key(language, kind),
                "teacher": self._language_key(source, kind),
                "source": source,
                "alignment": jsonable(c.alignment),
                "parallel": self.digests.get(f"parallel:{language}") or (str(pairs) if pairs else None),
            }
        )

    def _used(self, dirs: dict[str, Path]) -> None:
        """Record in the store's meta the rep store's directories this matrix's cells were computed with."""
        assert self.store is not None and self.rep_store is not None
        used = self.store.meta.extra.setdefault("rep_dirs", {})
        for name, run_dir in dirs.items():
            used[name] = run_dir.relative_to(self.rep_store).as_posix()
        self.store.save_meta()

    def _lm_head(self) -> Path:
        c = self.config.lm_head
        if self._head_dir is not None:  # trained (or found) once per run
            return self._head_dir
        if c.path is not None:
            self._head = f"path:{self.digests.get(LM_HEAD)}"  # a given head counts by its content
            return self.config.path(c.path)
        # The head is trained once, on the corpora of its first run; a language added later is trained with it.
        assert self.store is not None
        extra = self.store.meta.extra
        run_dir = self.out / "reps" / "lm-head"
        if self.rep_store is not None:
            run_dir = self._stored_head()
            self._head = run_dir.relative_to(self.rep_store).as_posix()
            if _finished(run_dir):
                self.log(f"LM head: reusing {run_dir}")
                return run_dir / "head"
        languages = extra.get("head_languages")
        if languages is None:
            languages = [lang for lang in self.config.corpus_languages() if self._corpus(lang) is not None]
            extra["head_languages"] = languages
            self.store.save_meta()
        corpora = [corpus for lang in languages if (corpus := self._corpus(lang)) is not None]
        run = LMHeadRun(
            corpora=corpora,
            output_dir=run_dir,
            restrict_vocab=c.restrict_vocab,
            objective=c.objective,
            train=self._train(c.train),
            validation_segments=c.validation_segments,
            cached_segments=c.cached_segments,
            cached_epochs=c.cached_epochs,
        )
        self.log(
            f"LM head: the encoder ships none; training one on {len(corpora)} corpora ({', '.join(languages)}), "
            "base frozen"
        )
        with self._in_rep_store():
            self._run([Job(HEAD, run, stage="lm-head")])
        if HEAD in self.failed:
            raise XLTError(self.failed.pop(HEAD))
        self._head_dir = self.rep_dirs[HEAD]
        return self._head_dir

    def _stored_head(self) -> Path:
        """The head's run directory in the rep store: the one this matrix used before, else a finished head of the
        same base and recipe whose corpora are today's (another matrix's, whatever its languages), else a new
        one keyed by this matrix's corpora. Its key is recorded beside it, for the next matrix to find."""
        assert self.store is not None and self.rep_store is not None
        extra = self.store.meta.extra
        used = extra.get("rep_dirs", {}).get(HEAD)
        if used is not None and _finished(self.rep_store / used):
            return contained(self.rep_store, *used.split("/"))
        recipe = self._head_recipe()
        found = self._adoptable_head(recipe) if "head_languages" not in extra else None
        if found is not None:
            run_dir, extra["head_languages"] = found
        else:
            languages = extra.get("head_languages")
            if languages is None:
                languages = [lang for lang in self.config.corpus_languages() if self._corpus(lang) is not None]
                extra["head_languages"] = languages
            corpora = {lang: self.digests.get(f"corpus:{lang}") for lang in languages}
            record = {"determined_by": recipe, "corpora": corpora}
            run_dir = contained(self.rep_store, "lm-head", _key(record))
            with self._in_rep_store():
                make_dir(run_dir.parent)
                atomic_write_text(run_dir.with_suffix(".json"), json.dumps(record, indent=2, sort_keys=True))
        self._used({HEAD: run_dir})
        return run_dir

    def _head_recipe(self) -> dict[str, Any]:
        c = jsonable(self.config.lm_head)
        c.pop("path")
        c["train"] = _recipe_of(self.config.lm_head.train)
        return {"base": self.model.fingerprint.to_dict(), "lm_head": c}

    def _adoptable_head(self, recipe: dict[str, Any]) -> tuple[Path, list[str]] | None:
        """A finished head in the rep store that this matrix may use: same base and recipe, and trained on the
        corpora this matrix has for its languages (a language this matrix has no corpus for cannot disagree).
        The one sharing most languages with this matrix wins, then the first by key, so the choice is stable."""
        assert self.rep_store is not None
        mine = set(self.config.corpus_languages())
        best: tuple[int, str, Path, list[str]] | None = None
        for path in sorted((self.rep_store / "lm-head").glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                corpora: dict[str, str | None] = dict(record["corpora"])
            except (ValueError, UnicodeDecodeError, KeyError, TypeError, OSError):
                continue  # not a record of xlt's: not adopted
            run_dir = path.with_suffix("")
            agrees = all(self.digests.get(f"corpus:{lang}", digest) == digest for lang, digest in corpora.items())
            if record.get("determined_by") != recipe or not agrees or not _finished(run_dir):
                continue
            rank = (-len(mine & set(corpora)), path.name, run_dir, list(corpora))
            best = rank if best is None or rank[:2] < best[:2] else best
        return None if best is None else (best[2], best[3])

    def _build_task_reps(self, groups: dict[TaskGroup, list[str]]) -> None:
        jobs = []
        for group in groups:
            conf = group.configuration.trains_with  # a composed configuration tests another's task rep
            if not conf.trains_task(self.model.host):
                continue
            name = conf.task_rep(group.task, group.source, group.seed)
            if any(job.name == name for job in jobs):
                continue
            language_rep = conf.language_rep(group.source)
            if language_rep is not None and language_rep in self.failed:
                self.failed[name] = f"the source's {language_rep} could not be built: {self.failed[language_rep]}"
                continue
            task = self.tasks[group.task]
            c = self.config.task_training
            options = dict(c.options(conf.task))
            if conf.task == "prompt" and task.init_text and "init_text" not in options:
                options["init_text"] = task.init_text  # recorded with the run's options, as it always was
            if "seed" in {f.name for f in dataclasses.fields(get_kind(conf.task).config_cls)}:
                options.setdefault("seed", group.seed)  # the grid's seed also draws the rep's initial weights
            cycled = self._cycled_languages(group.source) if conf.cycle else []
            broken = [lang for lang in cycled if conf.language_rep(lang) in self.failed]
            if broken:
                self.failed[name] = f"cycle needs {conf.language_rep(broken[0])}, which could not be built"
                continue
            group = TaskGroup(group.task, group.source, conf, group.seed)
            run = TaskRun(
                task=group.task,
                kind=conf.task,  # type: ignore[arg-type]
                train_file=None,
                dev_file=None,
                output_dir=self._task_dir(group),
                source_language=group.source,
                language_rep=language_rep,
                max_length=c.max_length,
                rep=options,
                train=dataclasses.replace(self._train(c.train), seed=group.seed),
                name=name,
                cycle_language_reps=[str(conf.language_rep(lang)) for lang in cycled],
                length_buckets=c.length_buckets,
            )
            languages = cycled or ([group.source] if conf.language else [])
            needs = [self._language_dir(lang, str(conf.language)) / "rep" for lang in languages]
            jobs.append(Job(name, run, needs, task, stage="task"))
        self.log(f"task representations: {len(jobs)}")
        self._run(jobs)

    def _train(self, train: Any) -> Any:
        return dataclasses.replace(train, progress=self.config.progress and train.progress)

    def _run(self, jobs: list[Job]) -> None:
        """Train a stage's jobs on the executor; what they built is put in the matrix's model."""
        for outcome in self._dispatch(jobs):
            if outcome.error is not None:
                self.failed[outcome.name] = outcome.error
                self.log(f"{outcome.name}: not built: {outcome.error}")
                continue
            assert outcome.rep_dir is not None
            self.rep_dirs[outcome.name] = outcome.rep_dir
            # A remote job's representation stays on disk: the jobs that need it load it from there, and the
            # language-modelling measurement from its directory; the matrix's own model holds none of them.

    def _dispatch(self, jobs: list[Work]) -> list[Outcome]:
        """Run jobs of one stage on the executor, keeping the job board; their outcomes as they arrive."""
        if not jobs:
            return []
        assert self.executor is not None
        stage = jobs[0].stage
        self.board.queue(stage, [job.name for job in jobs])
        outcomes = []
        if self.executor.remote:  # a run finished before is checked and reused here: no job, no model load there
            done = {job.name for job in jobs if isinstance(job, Job) and _finished(Path(job.run.output_dir))}
            if done:
                self.log(f"{stage}: {len(done)} job(s) finished before: checked here, not dispatched")
            for job in [j for j in jobs if j.name in done]:
                outcome = self._here(job)
                self.board.finished(stage, outcome)
                outcomes.append(outcome)
            jobs = [j for j in jobs if j.name not in done]
        for outcome in self.executor.run(jobs, self.model):
            self.board.finished(stage, outcome)
            outcomes.append(outcome)
            if outcome.rows is not None and self.store is not None:
                by = {"executor": self.executor.name, "workers": self.executor.workers, "worker": outcome.worker}
                self.store.put([{**row, "run_by": by} for row in outcome.rows])  # kept as each group finishes
                if not self.executor.remote:
                    self._unload(jobs, outcome)
        return outcomes

    def _here(self, job: Work) -> Outcome:
        """Run ``job`` on the matrix's own model, leaving its bank as it was (remote executors keep it empty)."""
        before = set(self.model.reps)
        try:
            return execute(job, self.model, self.log, self.board)
        finally:
            for name in [n for n in self.model.reps if n not in before]:
                self.model.remove(name)

    def _evaluate_groups(self, store: ResultStore, groups: dict[TaskGroup, list[str]]) -> None:
        """Every group of cells as an evaluation job; each group's rows are stored as soon as it is evaluated."""
        setting = EvaluationSetting(
            self.config, self.out, self.failed, self.digests, self._grid_languages(), self._known_language_dirs()
        )
        jobs: list[Work] = []
        for group, targets in groups.items():
            conf = group.configuration
            trains = conf.trains_task(self.model.host)
            names = [conf.task_rep(group.task, group.source, group.seed)] if trains else []
            if not (conf.compose or conf.ensemble):
                names += [n for t in targets if (n := conf.test_language_rep(t, group.source)) is not None]
            needs = [self.rep_dirs[n] for n in dict.fromkeys(names) if n in self.rep_dirs]
            name = f"{group.task}/{group.source}/{conf.name}/seed{group.seed}"
            task_dir = self._task_dir(group)
            jobs.append(EvaluationJob(name, group, targets, self.tasks[group.task], task_dir, needs, setting))
        self.log(f"evaluation: {len(jobs)} group(s) of cells")
        by_name = {job.name: job for job in jobs}
        for outcome in self._dispatch(jobs):
            if outcome.error is not None:  # the job itself failed (its worker died, it could not be sent): its cells
                job = by_name[outcome.name]
                assert isinstance(job, EvaluationJob)
                conf = job.group.configuration
                base = {"task": job.group.task, "source": job.group.source, "configuration": conf.name}
                rows = [
                    {**base, "seed": job.group.seed, "target": t, "status": "error", "error": outcome.error}
                    for t in job.targets
                ]
                store.put(rows)

    def _known_language_dirs(self) -> dict[tuple[str, str], Path]:
        """The run directory of every (language, kind) representation this run may read."""
        kinds = {str(c.language) for c in self.configurations if c.language is not None}
        out = {}
        for kind in kinds:
            for language in dict.fromkeys([*self.config.sources, *self._grid_languages()]):
                try:
                    out[(language, kind)] = self._language_dir(language, kind)
                except KeyError:  # in a rep store, a language this run built none for
                    continue
        return out

    def _unload(self, jobs: list[Work], outcome: Outcome) -> None:
        """A task representation is done once its targets are evaluated (by every group that tests it): the bank
        need not hold them all. Jobs run in order here, so the groups after this one are those left."""
        names = [job.name for job in jobs]
        later = [j.group for j in jobs[names.index(outcome.name) + 1 :] if isinstance(j, EvaluationJob)]
        done = next(j.group for j in jobs if j.name == outcome.name and isinstance(j, EvaluationJob))
        name = done.configuration.task_rep(done.task, done.source, done.seed)
        if any(g.configuration.task_rep(g.task, g.source, g.seed) == name for g in later):
            return
        if name in self.model.reps:
            self.model.remove(name)


def _key(determined: dict[str, Any]) -> str:
    """A 12-hex key of what determines a representation (sorted JSON, so key order never matters)."""
    return hashlib.sha256(json.dumps(determined, sort_keys=True).encode()).hexdigest()[:12]


def _recipe_of(train: Any) -> dict[str, Any]:
    """Training settings less the display options, which change nothing trained."""
    return {k: v for k, v in jsonable(train).items() if k not in COSMETIC}


def _finished(run_dir: Path) -> bool:
    """A run whose result is recorded: its weights were saved before (a killed run is resumed, never trusted)."""
    return (run_dir / "result.json").is_file()


def _runs(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The training runs under ``directory`` with their recorded run configs."""
    out = []
    for run_dir in sorted(directory.iterdir()) if directory.is_dir() else []:
        record = run_dir / RUN_FILE
        if record.is_file():
            try:
                out.append((run_dir, json.loads(record.read_text(encoding="utf-8"))["config"]["run"]))
            except (ValueError, KeyError, TypeError):
                out.append((run_dir, {}))
    return out


def run_matrix(
    config: MatrixConfig, log: Log = print, model: XLTModel | None = None, report: bool = True
) -> list[dict[str, Any]]:
    """Run (or resume) the grid and render its report; returns its rows (errors included, ``status: error``)."""
    matrix = Matrix(config, log, model)
    rows = matrix.run()
    ok = [r for r in rows if r.get("status") == "ok"]
    if report and ok:
        with writing_under(matrix.out):
            page = publish(matrix.out, ok, [r for r in rows if r.get("status") != "ok"]).page
        log(f"report: {page}")
    return rows


__all__ = ["Cell", "Matrix", "grid", "run_matrix", "to_dict"]
