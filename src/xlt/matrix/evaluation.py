"""A matrix's evaluation: every target of one task representation in shared routed batches (each row under its
own target's plan), scored per cell with the task's metrics."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from xlt.errors import XLTError
from xlt.formats.atomic import atomic_write_text, make_dir
from xlt.matrix.composition import compose_target, composition_weights
from xlt.matrix.config import MatrixConfig
from xlt.matrix.configurations import Configuration
from xlt.matrix.executors.base import Outcome
from xlt.matrix.inputs import task_key
from xlt.matrix.jobs import rep_name
from xlt.model import XLTModel
from xlt.paths import contained, writing_under
from xlt.plan import Plan
from xlt.records import jsonable
from xlt.tasks.base import Task
from xlt.tasks.data import Example
from xlt.tasks.metrics import unseen_labels
from xlt.training.precision import autocast
from xlt.training.task import TaskFormat, rep_record
from xlt.training.utilisation import Utilisation, counting, utilisation


@dataclass(frozen=True)
class TaskGroup:
    """The cells that share one task representation: one (task, source, configuration, seed), many targets."""

    task: str
    source: str
    configuration: Configuration
    seed: int


def outputs_path(out: Path, group: TaskGroup, target: str) -> Path:
    """Where a cell's raw outputs are kept: ``outputs/{task}/{source}/{configuration}-seed{seed}/{target}.jsonl``."""
    name = f"{group.configuration.slug}-seed{group.seed}"
    return contained(out, "outputs", group.task, group.source, name, f"{target}.jsonl")


@dataclass
class EvaluationSetting:
    """What every evaluation job of one matrix run shares: the config, where cells' outputs go, which
    representations could not be built (and why), the inputs' digests, the grid's languages with a corpus and
    the run directory of each (language, kind) representation the groups may read."""

    config: MatrixConfig
    out: Path
    failed: dict[str, str]
    digests: dict[str, str]
    grid_languages: list[str]
    language_dirs: dict[tuple[str, str], Path]


@dataclass
class EvaluationJob:
    """One task representation's group of cells to evaluate, as a job any executor can run: ``needs`` are the rep
    directories its plans use (a worker loads them; the matrix's own model holds them already)."""

    name: str
    group: TaskGroup
    targets: list[str]
    task: Task
    task_dir: Path
    needs: list[Path]
    setting: EvaluationSetting
    stage: str = "evaluation"

    def execute(self, model: XLTModel, log: Callable[[str], None]) -> Outcome:
        start = time.perf_counter()
        log(f"evaluating {self.name} on {len(self.targets)} target(s)")
        for directory in self.needs:
            if rep_name(directory) not in model.reps:
                model.load_rep(directory)
        with writing_under(self.setting.out):  # a cell's outputs go under the matrix's output directory only
            rows = Evaluator(self, model, log)._evaluate(self.group, self.targets)
        return Outcome(self.name, None, None, time.perf_counter() - start, rows=rows)


class Evaluation:
    """How a group of cells is evaluated (``Evaluator`` provides the attributes declared here)."""

    config: MatrixConfig
    tasks: dict[str, Task]
    failed: dict[str, str]
    digests: dict[str, str]
    _hashes: dict[str, str]
    log: Any
    out: Path
    _flops_per_token: float | None = None

    @property
    def model(self) -> XLTModel:
        raise NotImplementedError

    def _task_dir(self, group: TaskGroup) -> Path:
        raise NotImplementedError

    def _grid_languages(self) -> list[str]:
        raise NotImplementedError

    def _language_dir(self, language: str, kind: str) -> Path:
        raise NotImplementedError

    def _evaluate(self, group: TaskGroup, targets: list[str]) -> list[dict[str, Any]]:
        model, conf, task = self.model, group.configuration, self.tasks[group.task]
        trains = conf.trains_task(model.host)
        task_rep = conf.task_rep(group.task, group.source, group.seed) if trains else None
        base = {"task": group.task, "source": group.source, "configuration": conf.name, "seed": group.seed}

        def error(target: str, why: str) -> dict[str, Any]:
            return {**base, "target": target, "status": "error", "error": why}

        if task_rep is not None and (task_rep not in model.reps or task_rep in self.failed):
            why = self.failed.get(task_rep, f"task representation {task_rep} was not built")
            return [error(t, why) for t in targets]
        rows: list[tuple[str, Example]] = []
        errors, counts = [], {}
        composed = self._compose(conf, targets) if conf.compose else {}
        members = self._members(conf, targets, task_rep) if conf.ensemble else {}
        for target in targets:
            language_rep = conf.test_language_rep(target, group.source)
            if isinstance(composed.get(target), str) or isinstance(members.get(target), str):
                errors.append(error(target, str(composed.get(target) or members.get(target))))
                continue
            if conf.ensemble:
                pass  # its members were checked by _members
            elif language_rep is not None and (language_rep not in model.reps or language_rep in self.failed):
                errors.append(error(target, self.failed.get(language_rep, f"{language_rep} was not built")))
                continue
            try:
                examples = task.examples(target, "test")
            except XLTError as exc:
                errors.append(error(target, f"no test data: {exc}"))
                continue
            counts[target] = len(examples)
            rows.extend((target, e) for e in examples)
        if not rows:
            return errors
        try:
            labels = self._labels(task, group.source, task_rep)
        except XLTError as exc:
            return errors + [error(t, f"no labels: {exc}") for t in counts]
        generation = getattr(self.config, "generation", None)
        fmt = TaskFormat(
            model,
            task,
            labels,
            self.config.task_training.max_length,
            source=group.source,
            max_new_tokens=getattr(generation, "max_new_tokens", None),
            num_beams=getattr(generation, "num_beams", 1),
        )
        start = time.perf_counter()
        self._flops_per_token = None
        mixed: dict[str, dict[str, float]] = {}
        # Evaluation computes in the precision its task representations trained in (bf16 where it pays).
        with autocast(self.config.task_training.train.precision, model.device):
            if conf.ensemble:
                predictions, texts, mixed = self._predict_ensemble(fmt, task_rep, rows, members)  # type: ignore[arg-type]
            else:
                predictions, texts = self._predict(fmt, conf, task_rep, rows)
        seconds = time.perf_counter() - start
        used = self._utilisation(fmt.tokens_read, seconds)
        if used is not None:
            self.log(f"evaluated {group.task}/{group.source} {conf.name} on {len(rows)} examples: {used.line()}")
        out = list(errors)
        reps = {"task": self._identity(task_rep)}
        train_s = self._seconds(self._task_dir(group)) if task_rep else 0.0
        for target, count in counts.items():
            mine = [(p, text, e) for p, text, (t, e) in zip(predictions, texts, rows, strict=True) if t == target]
            references = [task.reference(e) for _, _, e in mine]
            language_rep = conf.test_language_rep(target, group.source)
            unseen = unseen_labels(labels if task.closed_labels else [], references if task.closed_labels else [])
            if unseen.count:
                self.log(unseen.message(f"cell {group.task}/{group.source}->{target} {conf.name}"))
            self._keep_outputs(group, target, task, mine)
            out.append(
                {
                    **base,
                    "target": target,
                    "status": "ok",
                    "metrics": task.scores_in([p for p, _, _ in mine], references, target),
                    "examples": count,
                    "unseen_labels": unseen.to_dict(),
                    "time_s": {"task_train": round(train_s, 3), "eval": round(seconds * count / len(rows), 3)},
                    "utilisation": used.to_dict() if used is not None else None,
                    "reps": {**reps, "language": self._language_identity(language_rep, composed, mixed, target)},
                    "model": model.fingerprint.name,
                    "inputs": self._cell_inputs(group, target),
                }
            )
        return out

    def _utilisation(self, tokens: int, seconds: float) -> Utilisation | None:
        """The evaluation's FLOPs per input token (counted on its middle batch), its rate and their share of the
        device's measured peak in the precision it ran in; None where nothing was counted (ensembles)."""
        if self._flops_per_token is None or seconds <= 0:
            return None
        precision = self.config.task_training.train.precision
        return utilisation(self._flops_per_token, tokens / seconds, self.model.device, precision)

    def _keep_outputs(
        self, group: TaskGroup, target: str, task: Task, outputs: list[tuple[Any, str | None, Example]]
    ) -> None:
        """A cell's raw outputs, one JSON line per example (its input, reference, generated text, prediction and
        score), for ``xlt report --worst`` and for inspection; written whole or not at all."""
        lines = []
        for prediction, text, example in outputs:
            reference = task.reference(example)
            lines.append(
                json.dumps(
                    {
                        "id": example.id,
                        "input": task.doc_to_text(example),
                        "reference": jsonable(reference),
                        "generation": text,
                        "prediction": jsonable(prediction),
                        "score": round(task.example_score(prediction, reference, target), 6),
                    },
                    ensure_ascii=False,
                )
            )
        path = outputs_path(self.out, group, target)
        make_dir(path.parent)
        atomic_write_text(path, "".join(line + "\n" for line in lines))

    def _cell_inputs(self, group: TaskGroup, target: str) -> dict[str, str]:
        """The digests of the files a cell was computed from."""
        keys = [task_key(group.task, "train", group.source), task_key(group.task, "dev", group.source)]
        keys.append(task_key(group.task, "test", target))
        if group.configuration.language is not None:
            keys += [f"corpus:{group.source}", f"corpus:{target}"]
        if group.configuration.align:
            keys.append(f"parallel:{target}")
        return {k: self.digests[k] for k in keys if k in self.digests}

    def _labels(self, task: Task, source: str, task_rep: str | None) -> list[str]:
        if task_rep is not None:
            head = self.model.rep(task_rep).head
            if head is not None and head.config.labels:
                return list(head.config.labels)
        return task.labels(source)

    @torch.inference_mode()
    def _predict(
        self, fmt: TaskFormat, conf: Configuration, task_rep: str | None, rows: list[tuple[str, Example]]
    ) -> tuple[list[Any], list[str | None]]:
        """Rows of every target in shared batches, each row under its own target's plan; shortest input first,
        so a batch pads little. The predictions and the generated texts (None for heads), in row order."""
        self.model.eval()
        order = sorted(range(len(rows)), key=lambda i: len(fmt.task.doc_to_text(rows[i][1])))
        predictions: list[Any] = [None] * len(rows)
        texts: list[str | None] = [None] * len(rows)
        size = self.config.eval_batch_size
        # The middle batch's FLOPs per input token stand for the rest (counting slows a batch a little; the rows
        # run shortest first, so the first batch would be the least typical).
        middle = (len(order) - 1) // size // 2 * size
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            plans = [conf.test_plan(rows[i][0], task_rep, fmt.source) for i in chunk]
            before = fmt.tokens_read
            with counting() if start == middle else contextlib.nullcontext() as counted:
                found, generated = fmt.outputs([rows[i][1] for i in chunk], plans=plans)
            if counted is not None and fmt.tokens_read > before:
                self._flops_per_token = counted() / (fmt.tokens_read - before)
            for i, p, text in zip(chunk, found, generated, strict=True):
                predictions[i], texts[i] = p, text
        return predictions, texts

    def _identity(self, name: str | None, composed: Any = None) -> dict[str, Any] | None:
        if name is None:
            return None
        if name not in self._hashes or composed is not None:
            self._hashes[name] = rep_record(self.model.rep(name))["weights"]
        identity: dict[str, Any] = {"name": name, "sha256": self._hashes[name]}
        if isinstance(composed, dict):
            identity["composed_from"] = composed  # rep name -> weight
        return identity

    def _language_identity(
        self, name: str | None, composed: dict[str, Any], mixed: dict[str, dict[str, float]], target: str
    ) -> dict[str, Any] | None:
        if target not in mixed:
            return self._identity(name, composed.get(target))
        members = {rep: self._identity(rep)["sha256"] for rep in mixed[target]}  # type: ignore[index]
        # the members and the mean of the per-example weights the ensemble chose
        return {"name": name, "ensemble_of": members, "mean_weights": mixed[target]}

    def _members(self, conf: Configuration, targets: list[str], task_rep: str | None) -> dict[str, list[str] | str]:
        """Each target's ensemble members (the representations ``compose`` would average), or why it has none."""
        head = self.model.rep(task_rep).head if task_rep is not None and task_rep in self.model.reps else None
        if head is None or head.config.type == "span":
            why = "an output ensemble needs a task head with classes or tags (not a span head, not text to text)"
            return dict.fromkeys(targets, why)
        out: dict[str, list[str] | str] = {}
        for target, found in self._related(conf, targets).items():
            out[target] = found if isinstance(found, str) else [str(conf.language_rep(lang)) for lang in found]
        return out

    def _predict_ensemble(
        self, fmt: TaskFormat, task_rep: str | None, rows: list[tuple[str, Example]], members: dict[str, list[str]]
    ) -> tuple[list[Any], list[str | None], dict[str, dict[str, float]]]:
        """Rows of each target under each of its members, mixed (``TaskFormat.mixed``); the predictions, no texts,
        and per target the mean weight each member took."""
        self.model.eval()
        predictions: list[Any] = [None] * len(rows)
        totals: dict[str, torch.Tensor] = {}
        size = self.config.eval_batch_size
        with torch.inference_mode():
            for target, reps in members.items():
                if isinstance(reps, str):
                    continue
                mine = [i for i, (t, _) in enumerate(rows) if t == target]
                mine.sort(key=lambda i: len(fmt.task.doc_to_text(rows[i][1])))
                plans = [Plan.of(language=rep, task=task_rep) for rep in reps]
                weights = torch.zeros(len(reps))
                for start in range(0, len(mine), size):
                    chunk = mine[start : start + size]
                    found, chosen = fmt.mixed([rows[i][1] for i in chunk], plans)
                    weights += chosen.sum(0)
                    for i, p in zip(chunk, found, strict=True):
                        predictions[i] = p
                totals[target] = weights / max(float(weights.sum()), 1e-12)
        mixed = {t: {rep: round(float(w), 4) for rep, w in zip(members[t], totals[t], strict=True)} for t in totals}
        return predictions, [None] * len(rows), mixed

    def _compose(self, conf: Configuration, targets: list[str]) -> dict[str, dict[str, float] | str]:
        """Each target's composed language representation put in the bank: its weights, or why it could not be.
        It is averaged from the grid's languages with a corpus (whatever this run happened to load), and a
        cell whose intended representation could not be built is an error, never a quieter average."""
        languages = self._grid_languages()
        out: dict[str, dict[str, float] | str] = {}
        for target, found in self._related(conf, targets).items():
            if isinstance(found, str):
                out[target] = found
                continue
            try:
                out[target] = compose_target(self.model, conf, target, languages)
            except XLTError as exc:
                out[target] = str(exc)
            else:
                self.log(f"{conf.test_language_rep(target)}: composed from {out[target]}")
        return out

    def _related(self, conf: Configuration, targets: list[str]) -> dict[str, list[str] | str]:
        """Per target, the grid languages whose representations stand in for its own (``composition_weights``),
        loaded into the bank; or why they cannot (one of them could not be built, or there is none)."""
        languages = self._grid_languages()
        names = {lang: str(conf.language_rep(lang)) for lang in languages}
        broken = {lang: self.failed[name] for lang, name in names.items() if name in self.failed}
        for lang, name in names.items():
            if lang not in broken and name not in self.model.reps:
                rep_dir = self._language_dir(lang, str(conf.language)) / "rep"
                if rep_dir.is_dir():
                    self.model.load_rep(rep_dir)
                else:
                    broken[lang] = f"{name} was not built"
        out: dict[str, list[str] | str] = {}
        for target in targets:
            missing = {lang: why for lang, why in broken.items() if lang != target}
            if missing:
                lang, why = next(iter(missing.items()))
                out[target] = f"{conf.name} needs {names[lang]}: {why}"
                continue
            chosen = list(composition_weights(target, languages))
            out[target] = chosen or (
                f"no other language's {conf.language} representation to stand in for {target}'s (add languages with "
                "corpora to the grid)"
            )
        return out

    @staticmethod
    def _seconds(run_dir: Path) -> float:
        import json

        result = run_dir / "result.json"
        return float(json.loads(result.read_text()).get("seconds", 0.0)) if result.is_file() else 0.0


class Evaluator(Evaluation):
    """The evaluation of one ``EvaluationJob`` on ``model``."""

    def __init__(self, job: EvaluationJob, model: XLTModel, log: Callable[[str], None]) -> None:
        setting = job.setting
        self.config, self.out, self.failed, self.digests = setting.config, setting.out, setting.failed, setting.digests
        self.tasks = {job.group.task: job.task}
        self._hashes = {}
        self.log = log
        self._job, self._model = job, model

    @property
    def model(self) -> XLTModel:
        return self._model

    def _task_dir(self, group: TaskGroup) -> Path:
        return self._job.task_dir

    def _grid_languages(self) -> list[str]:
        return list(self._job.setting.grid_languages)

    def _language_dir(self, language: str, kind: str) -> Path:
        found = self._job.setting.language_dirs.get((language, kind))
        return found if found is not None else self.out / "reps" / "language" / f"{language}-{kind}"
