"""``xlt train-language``, ``xlt train-task`` and ``xlt train-lm-head``: a run dataclass as the command line.

Every field is an option (``--train.steps 500``); ``--config run.yaml`` reads any of them from YAML (later
options override earlier ones); ``--preset paper|fast`` sets the defaults first (see ``training.presets``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser

from xlt.loading import load_model
from xlt.model import XLTModel
from xlt.paths import writing_under
from xlt.training.language import LanguageRun, LMHeadRun
from xlt.training.presets import preset
from xlt.training.task import TaskRun

RUNS: dict[str, tuple[type, str | None, str]] = {
    "train-language": (LanguageRun, "language", "Train a language representation with a language-modelling objective."),
    "train-task": (TaskRun, "task", "Train a task representation in a source language."),
    "train-lm-head": (LMHeadRun, None, "Train the shared masked-LM head of an encoder that ships none (e5)."),
}


def _preset_name(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--preset="):
            return arg.split("=", 1)[1]
    return "fast"


def parser_for(verb: str, argv: list[str]) -> ArgumentParser:
    run_cls, role, description = RUNS[verb]
    parser = ArgumentParser(prog=f"xlt {verb}", description=description, exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of any of the options below")
    parser.add_argument("--preset", type=str, default="fast", help="defaults to start from: fast or paper")
    parser.add_argument(
        "--model",
        type=str,
        default="e5",
        help="e5 (the embedded multilingual-e5-small), a Hugging Face model id or a local model directory",
    )
    parser.add_argument("--load", type=list[str], default=[], help="representation directories to load first")
    parser.add_class_arguments(run_cls, None)
    values = preset(_preset_name(argv), role or "language")  # type: ignore[arg-type]
    parser.set_defaults({f"train.{k}": v for k, v in values["train"].items()})
    if "objective" in {a.name for a in run_cls.__dataclass_fields__.values()}:
        parser.set_defaults({f"objective.{k}": v for k, v in values["objective"].items()})
    return parser


def _check(verb: str, run: object) -> None:
    if verb == "train-language":
        from xlt.training.language import check_language_run

        check_language_run(run)  # type: ignore[arg-type]
    elif verb == "train-task":
        from xlt.training.task import check_task_run

        check_task_run(run)  # type: ignore[arg-type]


def _config_files(argv: list[str]) -> list[Path]:
    files = [Path(argv[i + 1]) for i, arg in enumerate(argv[:-1]) if arg == "--config"]
    return files + [Path(arg.split("=", 1)[1]) for arg in argv if arg.startswith("--config=")]


def main(verb: str, argv: list[str]) -> None:
    from xlt.matrix.config import read_yaml

    for path in _config_files(argv):  # bounded and alias-safe before jsonargparse reads it
        read_yaml(path)
    parser = parser_for(verb, argv)
    cfg = parser.parse_args(argv)
    init = parser.instantiate_classes(cfg)
    fields = RUNS[verb][0].__dataclass_fields__
    run = RUNS[verb][0](**{name: init[name] for name in fields})
    if getattr(run, "kind", None) == "prompt":
        run.rep = {**preset(cfg.preset, RUNS[verb][1] or "language")["prompt"], **run.rep}  # type: ignore[arg-type]
    _check(verb, run)  # before the model loads: a bad language or template is refused in a second
    model = load_model(cfg.model)
    from xlt.formats.interop import import_rep

    for directory in cfg.load:
        import_rep(model, Path(directory))
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    with writing_under(Path(run.output_dir)):  # a run writes its own directory, nothing else
        _train(verb, model, run, log)


def _train(verb: str, model: XLTModel, run: Any, log: Callable[[str], None]) -> None:
    if verb == "train-language":
        from xlt.training.language import train_language

        print(train_language(model, run, log=log))
    elif verb == "train-task":
        from xlt.training.task import train_task

        print(train_task(model, run, log=log))
    else:
        from xlt.training.language import train_lm_head

        print(train_lm_head(model, run, log=log))
