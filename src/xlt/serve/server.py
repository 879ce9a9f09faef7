"""The serving state behind the HTTP layer: the model, the catalog of offered representations, the cache and the
batcher; and how one request's inputs become batched items and answers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from xlt.errors import PlanError, XLTError
from xlt.loading import load_model
from xlt.model import XLTModel
from xlt.plan import Plan
from xlt.serve.bank import RepBank
from xlt.serve.batcher import Batcher
from xlt.serve.catalog import Catalog, Resolved, ServeError, clip
from xlt.serve.compute import Format, Item, example_of, forward_overhead, generic_task
from xlt.serve.metrics import Metrics
from xlt.serve.schemas import PredictInput, PredictRequest
from xlt.serve.settings import ServeConfig

DEFAULT_MAX_LENGTH = 256
MAX_PLAN = 16  # representations in one explicit plan
ROUTING = ("language", "task", "configuration", "plan", "source", "seed")


class Server:
    """Everything ``xlt serve`` holds. The model and the catalog load when it is created, so that a bad model
    or directory stops the command before it listens; the batcher starts with the event loop (``start``)."""

    def __init__(self, config: ServeConfig, model: XLTModel | None = None, log: Any = print) -> None:
        self.config, self.log = config, log
        self.catalog = Catalog(config.directories())
        for why in self.catalog.skipped:
            log(f"xlt serve: skipped a representation: {why}")
        self.model = model if model is not None else self._load_model()
        self.model.eval()
        self.metrics = Metrics()
        max_bytes = config.max_memory_mb * 2**20 if config.max_memory_mb is not None else None
        self.bank = RepBank(self.model, self.catalog, self.metrics, max_reps=config.max_reps, max_bytes=max_bytes)
        self.batcher: Batcher | None = None
        self._formats: dict[tuple[Any, ...], Format] = {}
        self._facts: dict[tuple[Any, ...], tuple[tuple[str, ...], int]] = {}
        for matrix in self.catalog.matrices:
            if matrix.num_beams > 1:
                log(
                    f"xlt serve: {matrix.directory.name} evaluated with num_beams {matrix.num_beams}; the server "
                    "generates greedily (each input's own max_new_tokens then holds in a shared batch)"
                )
        self.started = time.time()

    @property
    def model_name(self) -> str:
        return self.model.fingerprint.name

    def _load_model(self) -> XLTModel:
        name = self.config.model
        path: Path | None = None
        if name is None:
            if not self.catalog.matrices:
                raise XLTError("model: none given, and no offered directory is a matrix that records one; set model:")
            matrix = self.catalog.matrices[0]
            name = matrix.model
            for candidate in (Path(name).expanduser(), matrix.directory / name, matrix.directory.parent / name):
                if name != "e5" and candidate.is_dir():
                    path = candidate
                    break
        elif name != "e5" and (self.config.base_dir / name).is_dir():
            path = self.config.base_dir / name
        self.log(f"xlt serve: loading {name}")
        return load_model(name, self.config.threads, self.config.device, path=path, dtype=self.config.dtype)

    # ---- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        c = self.config
        batcher = Batcher(
            self.bank, self.metrics, policy=c.batching, max_batch_size=c.max_batch_size, max_wait_ms=c.max_wait_ms
        )
        if c.batching != "none" and self.model.host.supports_heads:
            batcher.overhead = await self.bank.on_model(forward_overhead, self.model)
        self.batcher = batcher
        batcher.start()

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()
        self.bank.close()

    # ---- a request ---------------------------------------------------------------------------------
    async def predict(self, request: PredictRequest) -> list[dict[str, Any]]:
        if self.batcher is None:
            raise ServeError(503, "the server is starting; retry in a moment")
        self._check_sizes(request)
        now = time.perf_counter()
        loop = asyncio.get_running_loop()
        planned: list[tuple[PredictInput, Resolved, Format, int]] = []
        for index, given in enumerate(request.inputs):
            try:
                planned.append(await self._plan(request, given))
            except (ServeError, PlanError) as exc:
                raise _at(index, exc) from None
        names = list(dict.fromkeys(name for _, resolved, _, _ in planned for name in resolved.plan.reps))
        if len(names) > self.config.max_reps:
            raise ServeError(
                422,
                f"the request's plans name {len(names)} representations; the server keeps at most "
                f"{self.config.max_reps} (max_reps): split the request",
            )
        pinned = await self.bank.acquire(names)
        try:
            items = [
                Item(example_of(g.text, g.pair, g.tokens), r.plan, fmt, limit, now, loop.create_future())
                for g, r, fmt, limit in planned
            ]
            self.batcher.submit(items)
            answers = await asyncio.gather(*(item.future for item in items), return_exceptions=True)
        finally:
            self.bank.release(pinned)
        outputs = []
        for index, ((_, resolved, _, _), answer) in enumerate(zip(planned, answers, strict=True)):
            if isinstance(answer, BaseException):
                raise _at(index, answer) from None
            routing = _routing(request, request.inputs[index])
            outputs.append(
                {
                    "plan": str(resolved.plan),
                    "language": routing.get("language"),
                    "task": routing.get("task") or (resolved.task.name if resolved.task is not None else None),
                    "configuration": resolved.configuration,
                    **answer,
                }
            )
        self.metrics.inputs.inc(len(outputs))
        return outputs

    def _check_sizes(self, request: PredictRequest) -> None:
        c = self.config
        if len(request.inputs) > c.max_inputs:
            raise ServeError(
                422,
                f"the request has {len(request.inputs)} inputs; the server takes at most {c.max_inputs} per "
                "request (max_inputs): split it",
            )
        for index, given in enumerate(request.inputs):
            for what, text in (("text", given.text), ("pair", given.pair or "")):
                if len(text) > c.max_input_chars:
                    raise ServeError(
                        422,
                        f"inputs[{index}].{what} has {len(text)} characters; the server takes at most "
                        f"{c.max_input_chars} (max_input_chars)",
                    )
            if not given.text.strip():
                raise ServeError(422, f"inputs[{index}].text is empty; give the text to predict for")
            if given.tokens is not None and (not given.tokens or len(" ".join(given.tokens)) > c.max_input_chars):
                raise ServeError(422, f"inputs[{index}].tokens must be 1 to {c.max_input_chars} characters of words")
            if given.max_new_tokens is not None and given.max_new_tokens > c.max_new_tokens:
                raise ServeError(
                    422,
                    f"inputs[{index}].max_new_tokens is {given.max_new_tokens}; the server generates at most "
                    f"{c.max_new_tokens} (max_new_tokens)",
                )

    async def _plan(self, request: PredictRequest, given: PredictInput) -> tuple[PredictInput, Resolved, Format, int]:
        routing = _routing(request, given)
        plan = routing.get("plan")
        if isinstance(plan, list | str) and len(plan if isinstance(plan, list) else plan.split("+")) > MAX_PLAN:
            raise ServeError(422, f"a plan names at most {MAX_PLAN} representations")
        resolved = self.catalog.resolve(
            language=routing.get("language"),
            task=routing.get("task"),
            configuration=routing.get("configuration"),
            source=routing.get("source"),
            seed=routing.get("seed"),
            plan=Plan.coerce(plan) if plan is not None else None,
            supports_heads=self.model.host.supports_heads,
        )
        if self.model.host.supports_heads:
            return given, resolved, self.format(resolved), self.config.max_new_tokens
        task = resolved.task or generic_task("generation")
        key = self._facts_key(task, resolved)
        if key not in self._facts:  # the task's files and tokenizer are read on the model's thread, once
            self._facts[key] = await self.bank.on_model(self._text_facts, task, resolved)
        labels, bound = self._facts[key]
        return given, resolved, self.format(resolved, labels), given.max_new_tokens or bound

    def _max_length(self, resolved: Resolved) -> int:
        matrix = resolved.matrix
        return self.config.max_length or (matrix.max_length if matrix else DEFAULT_MAX_LENGTH)

    def _facts_key(self, task: Any, resolved: Resolved) -> tuple[Any, ...]:
        matrix = resolved.matrix.directory if resolved.matrix else None
        return (id(task), resolved.source, self._max_length(resolved), matrix)

    def _text_facts(self, task: Any, resolved: Resolved) -> tuple[tuple[str, ...], int]:
        """A text-to-text task's closed label set (empty: answers are free text) and its answers' length in
        tokens: the matrix's ``generation.max_new_tokens``, else the task's longest target (as the matrix
        evaluates), within the server's ``max_new_tokens``."""
        from xlt.training.task import TaskFormat

        labels: tuple[str, ...] = ()
        if task.closed_labels and resolved.source is not None:
            try:
                labels = tuple(task.labels(resolved.source))
            except (XLTError, OSError):
                labels = ()  # read from training data that is not here: answers stay free text
        bound = self.config.max_new_tokens
        recorded = resolved.matrix.max_new_tokens if resolved.matrix else None
        if isinstance(recorded, int) and recorded > 0:
            bound = min(recorded, bound)
        elif resolved.source is not None:
            try:
                fmt = TaskFormat(self.model, task, list(labels), self._max_length(resolved), source=resolved.source)
                bound = min(fmt.max_new_tokens, bound)
            except (XLTError, OSError):
                pass
        return labels, bound

    def format(self, resolved: Resolved, labels: tuple[str, ...] = ()) -> Format:
        """How inputs under ``resolved`` are encoded and decoded (one object per distinct format, so that
        inputs of one format batch together); ``labels``: a text-to-text task's closed label set."""
        heads = [o.head for o in (self.catalog.offer(n) for n in resolved.plan.reps) if o.head]
        if len(heads) > 1:
            raise ServeError(422, f"plan {resolved.plan} has {len(heads)} task heads; a plan has at most one")
        max_length = self._max_length(resolved)
        if self.model.host.supports_heads:
            if not heads:
                raise ServeError(
                    422,
                    f"plan {resolved.plan} has no task head; an encoder answers through a task representation's "
                    "head (add one to the plan, or name a configuration)",
                )
            head = heads[0]
            kind, count = str(head["type"]), int(head.get("num_labels") or 2)
            labels = tuple(head.get("labels") or [str(i) for i in range(count)]) if kind != "span" else ()
            task = resolved.task or generic_task(kind)
            expected = {"span": ("span",), "token": ("tagging",)}.get(kind, ("classification", "pair_classification"))
            if task.output_type not in expected:
                raise ServeError(
                    422, f"task '{task.name}' ({task.output_type}) cannot read the {kind} head of plan {resolved.plan}"
                )
            signature: tuple[str, int] | None = (kind, count)
        else:
            task = resolved.task or generic_task("generation")
            signature = None
        key = (id(task), labels, max_length, signature, resolved.source)
        if key not in self._formats:
            self._formats[key] = Format(task, labels, max_length, signature, resolved.source)
        return self._formats[key]

    # ---- representations ---------------------------------------------------------------------------
    def representations(self) -> dict[str, Any]:
        resident = {r["name"] for r in self.bank.describe()}
        languages: dict[str, list[str]] = {}
        configurations = []
        for matrix in self.catalog.matrices:
            for name, conf in matrix.configurations.items():
                languages[name] = self.catalog.languages(conf, matrix.sources[0])
            configurations += matrix.describe(languages)
        return {
            "model": self.model_name,
            "offered": [{**o.describe(), "resident": o.name in resident} for o in self.catalog.offers.values()],
            "resident": self.bank.describe(),
            "configurations": configurations,
            "skipped": self.catalog.skipped,
            "limits": {
                "max_reps": self.config.max_reps,
                "max_memory_mb": self.config.max_memory_mb,
                "max_batch_size": self.config.max_batch_size,
                "max_wait_ms": self.config.max_wait_ms,
                "max_inputs": self.config.max_inputs,
                "max_input_chars": self.config.max_input_chars,
                "max_new_tokens": self.config.max_new_tokens,
                "batching": self.config.batching,
            },
        }

    async def load(self, names: list[str], paths: list[str]) -> list[str]:
        located = [self.catalog.locate(p).name for p in paths]
        return await self.bank.load([*names, *located])

    async def unload(self, names: list[str]) -> list[str]:
        return [name for name in dict.fromkeys(names) if await self.bank.unload(name)]


def _routing(request: PredictRequest, given: PredictInput) -> dict[str, Any]:
    """An input's routing fields, the request's where the input sets none."""
    return {k: getattr(given, k) if getattr(given, k) is not None else getattr(request, k) for k in ROUTING}


def _at(index: int, exc: BaseException) -> ServeError:
    status = exc.status if isinstance(exc, ServeError) else 422 if isinstance(exc, XLTError) else 500
    return ServeError(status, f"inputs[{index}]: {clip(exc, 600)}")
