"""What a server offers: the representations saved in its directories (found by their ``xlt_rep.json``, never
read from anywhere else), and the matrices among those directories, whose configurations turn a (task, language,
configuration) request into a plan by the same rule the matrix tested with (``Configuration.test_plan``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xlt.errors import XLTError
from xlt.formats.native import CONFIG_NAME, WEIGHTS_NAME, parse_rep_config
from xlt.languages import get_language
from xlt.matrix.composition import composition_weights
from xlt.matrix.configurations import Configuration, resolve_configurations
from xlt.matrix.store import META
from xlt.paths import inside
from xlt.plan import Plan
from xlt.tasks.base import Task
from xlt.tasks.registry import build_task

MATRIX_CONFIG = "config.yaml"
MAX_PATH = 1024  # characters of a path a client names
MAX_ENTRIES = 200_000  # directory entries scanned per offered directory: a server is not a file indexer


class ServeError(XLTError):
    """A request the server cannot honour: its HTTP status and one line naming the problem and the fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Offer:
    """A representation on disk that the server may load: its name in the bank and what its config says."""

    name: str
    directory: Path
    root: Path
    kind: str
    role: str
    language: str | None
    task: str | None
    head: dict[str, Any] | None
    base: str | None
    members: tuple[tuple[str, float], ...] = ()  # a composed representation: (rep name, weight), none on disk

    @property
    def composed(self) -> bool:
        return bool(self.members)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "role": self.role,
            "language": self.language,
            "task": self.task,
            "head": self.head,
            "base_model": self.base,
            "directory": None if self.members else f"{self.root.name}/{self.directory.relative_to(self.root)}",
            "composed_from": dict(self.members) if self.members else None,
        }


def clip(value: object, limit: int = 80) -> str:
    """A value a client sent, as one short line for an error message."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "..."


def read_offer(directory: Path, root: Path) -> Offer:
    """The offer of one rep directory; a ``ServeError`` (422) naming what is wrong with its files."""
    config = directory / CONFIG_NAME
    for path in (config, directory / WEIGHTS_NAME):
        if not path.is_file() or not inside(root, path):  # a link out of the offered directory reads nothing
            raise ServeError(
                422, f"{_where(directory, root)} holds no {path.name} inside the offered directory; re-save the rep"
            )
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        parse_rep_config(directory, data)  # kind, config, identity and head as loading will read them
        fingerprint = data.get("fingerprint") or {}
        head = data.get("head")
        offer = Offer(
            name=str(data["name"]),
            directory=directory,
            root=root,
            kind=str(data["kind"]),
            role=str(data["role"]),
            language=data.get("language"),
            task=data.get("task"),
            head={k: head.get(k) for k in ("type", "num_labels", "labels")} if isinstance(head, dict) else None,
            base=fingerprint.get("name") if isinstance(fingerprint, dict) else None,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        why = type(exc).__name__ if not isinstance(exc, XLTError) else "a field is invalid"
        raise ServeError(
            422, f"{_where(directory, root)}/{CONFIG_NAME} is not a readable rep config ({why}); re-save the rep"
        ) from None
    return offer


def _where(directory: Path, root: Path) -> str:
    try:
        return f"{root.name}/{directory.relative_to(root)}"
    except ValueError:
        return root.name


@dataclass
class MatrixOffer:
    """A matrix output directory: its tasks, configurations, sources and seeds as its config recorded them."""

    directory: Path
    model: str
    tasks: dict[str, Task]
    configurations: dict[str, Configuration]
    sources: list[str]
    seeds: list[int]
    max_length: int
    max_new_tokens: int | None
    num_beams: int = 1
    grid: list[str] = field(default_factory=list)  # the languages whose representations a compose averages

    def describe(self, languages: dict[str, list[str]]) -> list[dict[str, Any]]:
        return [
            {
                "task": task,
                "configuration": name,
                "sources": self.sources,
                "seeds": self.seeds,
                "languages": languages.get(name, []),
                "servable": not conf.ensemble,
            }
            for task in self.tasks
            for name, conf in self.configurations.items()
        ]


def read_matrix(directory: Path) -> MatrixOffer:
    """The servable part of a matrix output directory's recorded config (``config.yaml``, else ``matrix.json``)."""
    data: Any = None
    path = directory / MATRIX_CONFIG
    try:
        if path.is_file():
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            meta = json.loads((directory / META).read_text(encoding="utf-8"))
            data = {**meta.get("config", {}), "tasks": meta.get("tasks") or meta.get("config", {}).get("tasks")}
    except (OSError, ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise XLTError(
            f"{directory}: its matrix config cannot be read ({type(exc).__name__}); re-run the matrix"
        ) from None
    from xlt.matrix.config import register_languages

    try:
        register_languages(data.get("languages") or {})
        custom = data.get("custom_configurations") or {}
        names = data.get("configurations") or [*_result_configurations(directory)]
        configurations = {c.name: c for c in resolve_configurations(list(names), custom)}
        tasks = {name: build_task(name, spec) for name, spec in (data.get("tasks") or {"emoji": "builtin"}).items()}
    except XLTError as exc:
        raise XLTError(f"{directory}: its matrix config cannot be served ({exc})") from None
    training = data.get("task_training") or {}
    generation = data.get("generation") or {}
    grid = _grid_languages(directory, data)
    return MatrixOffer(
        directory=directory,
        model=str(data.get("model", "e5")),
        tasks=tasks,
        configurations=configurations,
        sources=[str(s) for s in data.get("sources") or ["en"]],
        seeds=[int(s) for s in data.get("seeds") or [42]],
        max_length=int(training.get("max_length", 128)),
        max_new_tokens=generation.get("max_new_tokens"),
        num_beams=int(generation.get("num_beams") or 1),
        grid=grid,
    )


def _grid_languages(directory: Path, data: dict[str, Any]) -> list[str]:
    """The matrix's languages with a corpus, as its evaluation composed from (recorded in ``matrix.json``;
    for a store that predates the record, its sources and targets)."""
    try:
        recorded = json.loads((directory / META).read_text(encoding="utf-8")).get("grid_languages")
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        recorded = None
    if isinstance(recorded, list):
        return [str(lang) for lang in recorded]
    targets = data.get("targets")
    return list(dict.fromkeys([*(data.get("sources") or ["en"]), *(targets if isinstance(targets, list) else [])]))


def _result_configurations(directory: Path) -> list[str]:
    from xlt.matrix.store import read_rows

    return list(dict.fromkeys(str(r["configuration"]) for r in read_rows(directory)))


@dataclass(frozen=True)
class Resolved:
    """What serves one input: its plan, the task that encodes and decodes it (None: the plan's head decides)
    and the source language the task representation was trained in."""

    plan: Plan
    task: Task | None
    source: str | None
    matrix: MatrixOffer | None
    configuration: str | None


class Catalog:
    """The representations and matrices in the offered directories."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = [Path(os.path.realpath(r)) for r in roots]
        self.offers: dict[str, Offer] = {}
        self.matrices: list[MatrixOffer] = []
        self.skipped: list[str] = []  # rep directories that could not be read at start
        for root in self.roots:
            if not root.is_dir():
                raise XLTError(f"reps: {root} is not a directory; give directories of saved representations")
            if (root / META).is_file():
                self.matrices.append(read_matrix(root))
            for directory in _rep_dirs(root):
                try:
                    self._add(read_offer(directory, root))
                except ServeError as exc:
                    self.skipped.append(str(exc))
        if not self.offers:
            raise XLTError(
                f"reps: no representation saved by xlt ({CONFIG_NAME}) in {', '.join(str(r) for r in self.roots)}; "
                "give a matrix output directory or directories of saved representations"
            )

    def _add(self, offer: Offer) -> None:
        known = self.offers.get(offer.name)
        if known is not None and known.directory != offer.directory:
            raise XLTError(
                f"rep '{offer.name}' is saved in both {known.directory} and {offer.directory}; offer one of them"
            )
        self.offers[offer.name] = offer

    # ---- what a request names -----------------------------------------------------------------------
    def offer(self, name: str) -> Offer:
        if name not in self.offers:
            raise ServeError(
                404, f"unknown representation '{clip(name)}'; GET /v1/representations lists the offered ones"
            )
        return self.offers[name]

    def locate(self, path: str) -> Offer:
        """The rep directory ``path`` names (relative to an offered directory, or absolute inside one), added to
        the offers; refused when it resolves outside every offered directory."""
        if not path or "\x00" in path or len(path) > MAX_PATH:
            raise ServeError(422, f"path '{clip(path)}' is not a directory path (at most {MAX_PATH} characters)")
        candidates = [Path(path)] if Path(path).is_absolute() else [root / path for root in self.roots]
        try:
            for candidate in candidates:
                root = next((r for r in self.roots if inside(r, candidate)), None)
                if root is None:
                    continue
                real = Path(os.path.realpath(candidate))
                if (real / CONFIG_NAME).is_file():
                    offer = read_offer(real, root)
                    if offer.name in self.offers and self.offers[offer.name].directory != real:
                        raise ServeError(409, f"rep '{offer.name}' is already offered from another directory")
                    self.offers[offer.name] = offer
                    return offer
            outside = not any(any(inside(r, c) for r in self.roots) for c in candidates)
        except (OSError, ValueError):
            raise ServeError(422, f"path '{clip(path)}' cannot be read as a directory path") from None
        if outside:
            raise ServeError(403, f"path '{clip(path)}' is outside the offered directories; name a rep inside them")
        raise ServeError(404, f"no saved representation at '{clip(path)}' in the offered directories")

    def composed(self, matrix: MatrixOffer, conf: Configuration, language: str) -> Offer:
        """The language slot of a ``compose`` configuration: an offer whose members are the other languages'
        representations of its kind (``composition_weights``), put together when first used."""
        name = str(conf.test_language_rep(language))
        if name in self.offers:
            return self.offers[name]
        kind = str(conf.language)
        available = [lang for lang in matrix.grid if f"{lang}/{kind}" in self.offers]
        weights = composition_weights(language, available)
        if not weights:
            raise ServeError(422, f"no other language's {kind} representation to compose {language}'s from")
        members = tuple((f"{lang}/{kind}", w) for lang, w in weights.items())
        first = self.offers[members[0][0]]
        offer = Offer(
            name, matrix.directory, matrix.directory, kind, "language", language, None, None, first.base, members
        )
        self.offers[name] = offer
        return offer

    def resolve(
        self,
        *,
        language: str | None,
        task: str | None,
        configuration: str | None,
        source: str | None,
        seed: int | None,
        plan: Plan | None,
        supports_heads: bool,
    ) -> Resolved:
        """The plan and task of one input: an explicit plan (with the named task's format, if any), or the
        plan a named configuration of an offered matrix gives (task, language) by the matrix's rule."""
        if language is not None:
            try:
                get_language(language)
            except XLTError:
                raise ServeError(
                    422, f"unknown language '{clip(language)}' (GET /v1/representations lists the served languages)"
                ) from None
        matrix, task_obj = None, None
        if task is not None:
            matrix = self._matrix_of(task, configuration)
            task_obj = matrix.tasks[task]
        if plan is not None:
            if configuration is not None:
                raise ServeError(422, "give either a plan or a configuration for an input, not both")
            for name in plan.reps:
                self.offer(name)
            return Resolved(plan, task_obj, None, matrix, None)
        if task is None or configuration is None:
            raise ServeError(422, 'each input needs a task and a configuration (e.g. "SLP+TA") or an explicit plan')
        if language is None:
            raise ServeError(422, f"configuration '{configuration}' needs the input's target language")
        assert matrix is not None
        conf = matrix.configurations[configuration]
        if conf.ensemble:
            raise ServeError(
                422,
                f"configuration '{configuration}' mixes the outputs of several plans per input; the server "
                f"serves one plan per input (serve '{conf.trains_with.name}', or an explicit plan)",
            )
        source = source if source is not None else matrix.sources[0]
        if source not in matrix.sources:
            raise ServeError(422, f"source '{clip(source)}' is not one of the matrix's ({', '.join(matrix.sources)})")
        seed = seed if seed is not None else matrix.seeds[0]
        if seed not in matrix.seeds:
            raise ServeError(422, f"seed {clip(seed)} is not one of the matrix's ({', '.join(map(str, matrix.seeds))})")
        trains = not (conf.task == "probe" and not supports_heads)
        task_rep = conf.task_rep(task, source, seed) if trains else None
        if task_rep is not None and task_rep not in self.offers:
            raise ServeError(
                422,
                f"configuration '{configuration}' of task '{task}' has no trained task "
                f"representation ({task_rep}) in the offered directories",
            )
        language_rep = conf.test_language_rep(language, source)
        if conf.compose and language_rep is not None:
            self.composed(matrix, conf, language)
        elif language_rep is not None and language_rep not in self.offers:
            served = self.languages(conf, source)
            raise ServeError(
                422,
                f"language '{language}' has no {conf.language} representation ({language_rep}) for "
                f"configuration '{configuration}' in the offered directories (served: {', '.join(served) or 'none'})",
            )
        return Resolved(conf.test_plan(language, task_rep, source), task_obj, source, matrix, configuration)

    def _matrix_of(self, task: str, configuration: str | None) -> MatrixOffer:
        having = [m for m in self.matrices if task in m.tasks]
        if not having:
            served = sorted({t for m in self.matrices for t in m.tasks})
            raise ServeError(422, f"unknown task '{clip(task)}' (served: {', '.join(served) or 'none; give a plan'})")
        if configuration is None:
            return having[0]
        for matrix in having:
            if configuration in matrix.configurations:
                return matrix
        served = sorted({c for m in having for c in m.configurations})
        raise ServeError(
            422, f"unknown configuration '{clip(configuration)}' for task '{task}' (served: {', '.join(served)})"
        )

    def languages(self, conf: Configuration, source: str) -> list[str]:
        """The languages a configuration serves from the offered representations."""
        if conf.language is None or conf.compose:  # a composed slot is made for any language, from the others'
            return ["any"]
        out = []
        for offer in self.offers.values():
            if (
                offer.role == "language"
                and offer.language
                and conf.test_language_rep(offer.language, source) == offer.name
            ):
                out.append(offer.language)
        return sorted(set(out))


def _rep_dirs(root: Path) -> list[Path]:
    """Every directory under ``root`` holding an ``xlt_rep.json`` (links are not followed; a rep directory's
    own subdirectories are not searched)."""
    found: list[Path] = []
    seen = 0
    for current, dirs, files in os.walk(root, followlinks=False):
        seen += len(dirs) + len(files)
        if seen > MAX_ENTRIES:
            raise XLTError(f"reps: {root} holds more than {MAX_ENTRIES} entries; offer the directory of the reps")
        if CONFIG_NAME in files:
            found.append(Path(current))
            dirs[:] = []
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)
