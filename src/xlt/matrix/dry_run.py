"""``xlt matrix CONFIG --dry-run``: what a matrix would train, evaluate and download, and what it would cost,
without loading a model or reading a dataset.

The compute estimate is stated with its source: training throughput measured with xlt on one NVIDIA H200
(``benchmarks/README.md``: span corruption on an mT5-small-shaped model with a 50-token prompt, fp32, 91,653
input tokens per second), scaled to the config's model by the ratio of the matrix multiplications per input
token of the two shapes. It is an estimate for planning, not a measurement of the config's model.

Evaluation (each cell's test set, and the dev set every ``eval_every`` steps of task training) is counted from the
row counts of the files that exist (fetched hub data, local files), and at ``ASSUMED_EXAMPLES`` rows a set where
the file does not exist yet; the note says how many cells and task runs that assumption covers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlt.errors import XLTError
from xlt.matrix.checks import model_path, resolved_spec
from xlt.matrix.config import MatrixConfig
from xlt.matrix.configurations import Configuration, resolve_configurations
from xlt.tasks.base import Split, Task
from xlt.tasks.registry import build_task

# The measurement the estimate scales from: device, model shape, input tokens per second (fp32, xlt's side).
MEASURED_DEVICE = "one NVIDIA H200"
MEASURED_TOKENS_PER_S = 91_653.0
MT5_SMALL = {"d_model": 512, "d_ff": 1024, "num_layers": 8, "num_decoder_layers": 8, "inner": 384, "vocab": 250_112}
# Shapes of well-known models, for a dry run that cannot read the model's config.json (not downloaded yet).
MT5_BASE = {"d_model": 768, "d_ff": 2048, "num_layers": 12, "num_decoder_layers": 12, "inner": 768, "vocab": 250_112}
MT5_LARGE = {"d_model": 1024, "d_ff": 2816, "num_layers": 24, "num_decoder_layers": 24, "inner": 1024, "vocab": 250_112}
KNOWN_SHAPES: dict[str, dict[str, Any]] = {
    "bigscience/mt0-small": MT5_SMALL,
    "google/mt5-small": MT5_SMALL,
    "bigscience/mt0-base": MT5_BASE,
    "google/mt5-base": MT5_BASE,
    "bigscience/mt0-large": MT5_LARGE,
    "google/mt5-large": MT5_LARGE,
}
TARGET_TOKENS = 58  # span corruption's targets per 256 input tokens (noise 0.15, mean span 3)
ASSUMED_EXAMPLES = 1000  # rows of a test or dev set whose file is not there yet (not fetched, not written)
# Evaluation is forward passes only: about a third of a training step's work per token.
FORWARD_SHARE = 1 / 3


@dataclass
class DryRun:
    """What a matrix would do: its runs, its cells, what it would fetch, what it needs, and the estimate."""

    model: str
    family: str | None
    lm_head: bool
    language_runs: list[tuple[str, str]] = field(default_factory=list)  # (language, kind)
    aligned_runs: list[tuple[str, str, str]] = field(default_factory=list)  # (language, kind, source): -align
    task_runs: list[tuple[str, str, str, int]] = field(default_factory=list)  # (task, source, configuration, seed)
    cells: int = 0
    downloads: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)  # local files that do not exist yet
    gpu_hours: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"model: {self.model} ({self.family or 'family unknown until its config is fetched'})"]
        if self.lm_head:
            lines.append("runs: 1 LM head (the encoder ships none)")
        kinds = sorted({k for _, k in self.language_runs})
        lines.append(
            f"runs: {len(self.language_runs)} language representations "
            f"({len({lang for lang, _ in self.language_runs})} languages x {', '.join(kinds) or 'no kind'})"
        )
        if self.aligned_runs:
            lines.append(
                f"runs: {len(self.aligned_runs)} aligned language representations (each target's, aligned with the "
                "source's on parallel text)"
            )
        tasks = sorted({t for t, *_ in self.task_runs})
        lines.append(f"runs: {len(self.task_runs)} task representations ({', '.join(tasks) or 'none'})")
        lines.append(f"cells: {self.cells}")
        lines += [f"download: {item}" for item in self.downloads] or ["download: nothing"]
        lines += [f"needs: {item}" for item in self.needs]
        if self.gpu_hours:
            total = sum(self.gpu_hours.values())
            parts = ", ".join(f"{k} {v:,.1f}" for k, v in self.gpu_hours.items())
            lines.append(f"estimate: {total:,.1f} GPU-hours ({parts})")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _shape(config: MatrixConfig) -> tuple[dict[str, Any] | None, str | None]:
    """The model's shape and family, from its config.json where it can be read offline."""
    data: dict[str, Any] | None = None
    path = model_path(config)
    if config.model == "e5":
        return None, "encoder"
    if path is not None and (path / "config.json").is_file():
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    else:
        try:
            from transformers import AutoConfig

            data = AutoConfig.from_pretrained(config.model, local_files_only=True).to_dict()
        except Exception:  # not in the local cache: a known shape, or none
            data = None
    if data is None:
        shape = KNOWN_SHAPES.get(config.model)
        return shape, "encoder_decoder" if shape else None
    from xlt.hosts import host_class

    try:
        family = host_class(str(data.get("model_type"))).family
    except Exception:
        family = None
    if "d_model" in data:
        shape = {
            "d_model": data["d_model"],
            "d_ff": data.get("d_ff", 4 * data["d_model"]),
            "num_layers": data.get("num_layers", 0),
            "num_decoder_layers": data.get("num_decoder_layers") or data.get("num_layers", 0),
            "inner": data.get("num_heads", 1) * data.get("d_kv", data["d_model"]),
            "vocab": data.get("vocab_size", 0),
        }
        return shape, family
    return None, family


def _flops_per_input_token(shape: dict[str, Any]) -> float:
    """Multiply-adds per input token of span corruption (encoder over the input, decoder and vocabulary
    projection over the targets); gated feed-forward layers have three matrices."""
    d, ff, inner = shape["d_model"], shape["d_ff"], shape["inner"]
    encoder = shape["num_layers"] * (4 * d * inner + 3 * d * ff)
    decoder = shape["num_decoder_layers"] * (8 * d * inner + 3 * d * ff) + d * shape["vocab"]
    return encoder + decoder * TARGET_TOKENS / 256


def plan(config: MatrixConfig) -> DryRun:
    configurations = resolve_configurations(config.configurations, config.custom_configurations)
    shape, family = _shape(config)
    tasks: dict[str, Task] = {}
    result = DryRun(config.model, family, lm_head=False)
    for name, spec in config.tasks.items():
        tasks[name] = build_task(name, resolved_spec(config, spec))
    targets = config.target_languages()
    heads = family == "encoder"
    language_pairs: dict[tuple[str, str], None] = {}
    for conf in configurations:
        if conf.language is not None:
            for language in dict.fromkeys([*config.sources, *targets]):
                language_pairs[(language, conf.language)] = None
    result.language_runs = list(language_pairs)
    result.aligned_runs = list(
        dict.fromkeys(
            (target, str(conf.language), source)
            for conf in configurations
            if conf.align
            for source in config.sources
            for target in targets
            if target != source
        )
    )
    result.lm_head = heads and config.model == "e5" and bool(language_pairs) and config.lm_head.path is None
    for name in tasks:
        for source in config.sources:
            trained = {c.trains_with.name: c.trains_with for c in configurations}  # -avg tests its twin's
            for conf in trained.values():
                if _trains(conf, heads):
                    result.task_runs += [(name, source, conf.name, seed) for seed in config.seeds]
    result.cells = len(tasks) * len(config.sources) * len(targets) * len(configurations) * len(config.seeds)
    _downloads(config, tasks, language_pairs, result)
    if shape is not None:
        per_test_set = len(config.sources) * len(configurations) * len(config.seeds)  # cells sharing a test set
        # an -ens cell runs its test set once per member: at most every other language of the grid
        members = max(len(dict.fromkeys([*config.sources, *targets])) - 1, 1)
        passes = len(config.sources) * len(config.seeds) * sum(members if c.ensemble else 1 for c in configurations)
        _estimate(config, tasks, shape, per_test_set, result, passes)
    else:
        result.notes.append("no compute estimate: the model's shape is unknown offline (fetch its config.json)")
    return result


def _trains(conf: Configuration, heads: bool) -> bool:
    return not (conf.task == "probe" and not heads)


def _downloads(
    config: MatrixConfig, tasks: dict[str, Task], language_pairs: dict[tuple[str, str], None], result: DryRun
) -> None:
    if config.model != "e5" and model_path(config) is None:
        result.downloads.append(f"model {config.model}")
    languages = dict.fromkeys(lang for lang, _ in language_pairs)
    if isinstance(config.corpora, dict):
        for language in languages:
            spec = config.corpora.get(language) or {}
            if spec.get("dataset"):
                subset = f" ({spec['subset']})" if spec.get("subset") else ""
                how = ", streamed" if spec.get("streaming") else ""
                result.downloads.append(f"corpus {language}: {spec['dataset']}{subset}{how}")
            for path in spec.get("files") or []:
                if not config.path(path).is_file():
                    result.needs.append(f"corpus {language}: {config.path(path)}")
    all_languages = list(dict.fromkeys([*config.sources, *config.target_languages()]))
    for name, task in tasks.items():
        fetch = getattr(task, "downloads", None)
        if fetch is not None and getattr(task, "hub", False):
            fetched, missing = fetch(all_languages)
            result.downloads += [f"task {name}: {item}" for item in fetched]
            result.needs += [f"task {name} {why}" for why in missing]
            continue
        for split in ("train", "dev"):
            absent = [source for source in config.sources if not Path(task.path(source, split)).is_file()]
            if absent:
                pattern = getattr(task, "files", {}).get(split, "")
                result.needs.append(f"task {name} {split} files for {', '.join(absent)}: {config.path(pattern)}")
        missing = [t for t in config.target_languages() if not Path(task.path(t, "test")).is_file()]
        if missing:
            result.needs.append(f"task {name} test files for {', '.join(missing)} (their cells are reported missing)")


def count_rows(path: Path) -> int | None:
    """The examples in a task file, where that is cheap to know: the non-empty lines of JSON lines (``.jsonl``,
    ``.json``), the records of CSV / TSV less their header, a parquet file's row count from its metadata; None for
    a file that is not there or not one of these."""
    path = Path(path)
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return int(pq.read_metadata(path).num_rows)
        if suffix in (".jsonl", ".json"):
            with path.open("rb") as handle:
                return sum(1 for line in handle if line.strip())
        if suffix in (".csv", ".tsv"):
            import csv

            with path.open(encoding="utf-8", errors="replace", newline="") as handle:
                records = sum(1 for row in csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ",") if row)
            return max(0, records - 1)
    except Exception:  # unreadable or not parquet after all: the matrix itself will name it; the estimate assumes
        return None
    return None


def _rows_of(task: Task, language: str, split: Split) -> int | None:
    try:
        return count_rows(Path(task.path(language, split)))
    except XLTError:  # a language code no file can be named by: its cells report it
        return None


def _dev_evaluations(steps: int, every: int) -> int:
    """How many times task training evaluates on dev: every ``every`` steps and at the last step (as the loop
    does), never with ``every`` 0."""
    if every <= 0 or steps <= 0:
        return 0
    return steps // every + (1 if steps % every else 0)


def _estimate(
    config: MatrixConfig,
    tasks: dict[str, Task],
    shape: dict[str, Any],
    per_test_set: int,
    result: DryRun,
    passes: int | None = None,
) -> None:
    speed = MEASURED_TOKENS_PER_S * _flops_per_input_token(MT5_SMALL) / _flops_per_input_token(shape)
    lt, tt = config.language_training, config.task_training
    # An aligned run reads a batch of pairs (at most alignment.max_length tokens each) beside each LM batch.
    per_run = lt.train.steps * lt.train.batch_size
    language_tokens = len(result.language_runs) * per_run * lt.objective.max_length
    language_tokens += len(result.aligned_runs) * per_run * (lt.objective.max_length + lt.alignment.max_length)
    # Task inputs are padded to their batch's longest row: the paper's 256 bounds them from above.
    task_tokens = len(result.task_runs) * tt.train.steps * tt.train.batch_size * tt.max_length
    # Evaluation: forward passes over every cell's test set; a test set serves all cells of its (task, target).
    test_examples, assumed_cells = 0, 0
    for task in tasks.values():
        for target in config.target_languages():
            rows = _rows_of(task, target, "test")
            if rows is None:
                rows, assumed_cells = ASSUMED_EXAMPLES, assumed_cells + per_test_set
            test_examples += rows * (passes or per_test_set)
    eval_tokens = test_examples * tt.max_length * FORWARD_SHARE
    # Dev evaluation: forward passes over the source's dev set, every eval_every steps of each task run.
    evaluations = _dev_evaluations(tt.train.steps, tt.train.eval_every)
    dev_examples, assumed_runs = 0, 0
    if evaluations:
        for name, source, _, _ in result.task_runs:
            rows = _rows_of(tasks[name], source, "dev")
            if rows is None:
                rows, assumed_runs = ASSUMED_EXAMPLES, assumed_runs + 1
            dev_examples += rows * evaluations
    dev_tokens = dev_examples * tt.max_length * FORWARD_SHARE
    result.gpu_hours = {
        "language": language_tokens / speed / 3600,
        "task": task_tokens / speed / 3600,
        "dev evaluation": dev_tokens / speed / 3600,
        "evaluation": eval_tokens / speed / 3600,
    }
    dev_note = (
        f"dev evaluation {evaluations} times per task run, {assumed_runs} of {len(result.task_runs)} task runs "
        f"at {ASSUMED_EXAMPLES} dev examples (dev set not there yet)"
        if evaluations
        else "no dev evaluation (eval_every 0)"
    )
    result.notes.append(
        f"estimated at {speed:,.0f} input tokens/s: {MEASURED_TOKENS_PER_S:,.0f} measured with xlt on "
        f"{MEASURED_DEVICE} (mT5-small shape, span corruption, fp32; benchmarks/README.md), scaled by the "
        "model's matrix multiplications per token; task inputs counted at max_length, evaluation at the test "
        f"sets' row counts, {assumed_cells} of {result.cells} cells at {ASSUMED_EXAMPLES} examples (test set not "
        f"there yet), with generation steps not counted; {dev_note}"
    )
