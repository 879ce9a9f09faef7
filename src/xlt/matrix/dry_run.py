"""``xlt matrix CONFIG --dry-run``: what a matrix would train, evaluate and download, and what it would cost,
without loading a model or reading a dataset.

The compute estimate is stated with its source: training throughput measured with xlt on one NVIDIA H200
(``benchmarks/README.md``: span corruption on an mT5-small-shaped model with a 50-token prompt, fp32, 91,653
input tokens per second), scaled to the config's model by the ratio of the matrix multiplications per input
token of the two shapes. It is an estimate for planning, not a measurement of the config's model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlt.matrix.checks import model_path, resolved_spec
from xlt.matrix.config import MatrixConfig
from xlt.matrix.configurations import Configuration, resolve_configurations
from xlt.tasks.base import Task
from xlt.tasks.registry import build_task

# The measurement the estimate scales from: device, model shape, input tokens per second (fp32, xlt's side).
MEASURED_DEVICE = "one NVIDIA H200"
MEASURED_TOKENS_PER_S = 91_653.0
MT5_SMALL = {"d_model": 512, "d_ff": 1024, "num_layers": 8, "num_decoder_layers": 8, "inner": 384, "vocab": 250_112}
# Shapes of well-known models, for a dry run that cannot read the model's config.json (not downloaded yet).
KNOWN_SHAPES: dict[str, dict[str, Any]] = {
    "bigscience/mt0-small": MT5_SMALL,
    "google/mt5-small": MT5_SMALL,
    "bigscience/mt0-base": {
        "d_model": 768,
        "d_ff": 2048,
        "num_layers": 12,
        "num_decoder_layers": 12,
        "inner": 768,
        "vocab": 250_112,
    },
    "google/mt5-base": {
        "d_model": 768,
        "d_ff": 2048,
        "num_layers": 12,
        "num_decoder_layers": 12,
        "inner": 768,
        "vocab": 250_112,
    },
    "bigscience/mt0-large": {
        "d_model": 1024,
        "d_ff": 2816,
        "num_layers": 24,
        "num_decoder_layers": 24,
        "inner": 1024,
        "vocab": 250_112,
    },
}
TARGET_TOKENS = 58  # span corruption's targets per 256 input tokens (noise 0.15, mean span 3)
ASSUMED_TEST_EXAMPLES = 1000  # per cell, where the test sets are not fetched yet


@dataclass
class DryRun:
    """What a matrix would do: its runs, its cells, what it would fetch, what it needs, and the estimate."""

    model: str
    family: str | None
    lm_head: bool
    language_runs: list[tuple[str, str]] = field(default_factory=list)  # (language, kind)
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
    result.lm_head = heads and config.model == "e5" and bool(language_pairs) and config.lm_head.path is None
    for name in tasks:
        for source in config.sources:
            for conf in configurations:
                if _trains(conf, heads):
                    result.task_runs += [(name, source, conf.name, seed) for seed in config.seeds]
    result.cells = len(tasks) * len(config.sources) * len(targets) * len(configurations) * len(config.seeds)
    _downloads(config, tasks, language_pairs, result)
    if shape is not None:
        _estimate(config, tasks, shape, result)
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


def _estimate(config: MatrixConfig, tasks: dict[str, Task], shape: dict[str, Any], result: DryRun) -> None:
    speed = MEASURED_TOKENS_PER_S * _flops_per_input_token(MT5_SMALL) / _flops_per_input_token(shape)
    lt, tt = config.language_training, config.task_training
    language_tokens = len(result.language_runs) * lt.train.steps * lt.train.batch_size * lt.objective.max_length
    # Task inputs are padded to their batch's longest row: the paper's 256 bounds them from above.
    task_tokens = len(result.task_runs) * tt.train.steps * tt.train.batch_size * tt.max_length
    # Evaluation: forward passes only (about a third of a training step's work) over every cell's test set.
    eval_tokens = result.cells * ASSUMED_TEST_EXAMPLES * tt.max_length / 3
    result.gpu_hours = {
        "language": language_tokens / speed / 3600,
        "task": task_tokens / speed / 3600,
        "evaluation": eval_tokens / speed / 3600,
    }
    result.notes.append(
        f"estimated at {speed:,.0f} input tokens/s: {MEASURED_TOKENS_PER_S:,.0f} measured with xlt on "
        f"{MEASURED_DEVICE} (mT5-small shape, span corruption, fp32; benchmarks/README.md), scaled by the "
        "model's matrix multiplications per token; task inputs counted at max_length, evaluation at "
        f"{ASSUMED_TEST_EXAMPLES} examples per cell with generation steps not counted"
    )
