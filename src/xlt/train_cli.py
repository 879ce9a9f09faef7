"""``xlt train-language``, ``xlt train-task`` and ``xlt train-lm-head``: a run dataclass as the command line.

Every field of the verb's run dataclass is an option (``--train.steps 500``); ``--config run.yaml`` reads any of
them from YAML (later options override earlier ones); ``--preset paper|fast`` sets the defaults first (see
``training.presets``), from the command line or from a ``--config`` file. The verbs are entries of ``xlt.cli.VERBS``.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from xlt.paths import writing_under
from xlt.training.presets import Role, is_preset, preset

DEFAULT_PRESET = "fast"


@dataclass(frozen=True)
class Training:
    """What a run verb trains: its run dataclass, the checks that need no model, and the training function."""

    run_class: type
    check: Callable[[Any], None]
    train: Callable[..., Path]


@dataclass(frozen=True)
class RunVerb:
    """A ``train-*`` verb of ``xlt.cli.VERBS``: the fields of a run dataclass are its options.

    Args:
        summary: what ``xlt --help`` says of the verb.
        role: whose preset values are the run's defaults.
        training: the run dataclass and its functions, imported only when the verb is the one being run.
    """

    summary: str
    role: Role
    training: Callable[[], Training]

    def parser(self, argv: list[str] | None) -> ArgumentParser:
        """The verb's options, with the defaults of the preset ``argv`` asks for; without ``argv`` (another verb
        is being run) its summary alone, since declaring the options imports the training modules."""
        parser = ArgumentParser(description=self.summary, exit_on_error=False)
        if argv is None:
            return parser
        run_class = self.training().run_class
        parser.add_argument(
            "--config", action=_ConfigFile, help="a YAML file of any of the options below, or a preset file"
        )
        parser.add_argument(
            "--preset", type=str, default=DEFAULT_PRESET, help="defaults to start from: fast, paper or a preset file"
        )
        parser.add_argument(
            "--model",
            type=str,
            default="e5",
            help="e5 (the embedded multilingual-e5-small), a Hugging Face model id or a local model directory",
        )
        parser.add_argument("--load", type=list[str], default=[], help="representation directories to load first")
        parser.add_class_arguments(run_class, None)
        values = preset(preset_asked(argv), self.role)  # type: ignore[arg-type]
        for section in ("train", "objective"):
            if section in _init_parameters(run_class):
                parser.set_defaults({f"{section}.{k}": v for k, v in values[section].items()})
        return parser

    def run(self, options: Namespace) -> None:
        """Check the run, load the model and the representations to load first, and train; prints the result."""
        training = self.training()
        run = training.run_class(**{name: options[name] for name in _init_parameters(training.run_class)})
        if getattr(run, "kind", None) == "prompt":
            run.rep = {**preset(options.preset, self.role)["prompt"], **run.rep}
        training.check(run)  # before the model loads: a bad language or template is refused in a second
        model = _model(options.model, options.load)
        log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
        with writing_under(Path(run.output_dir)):  # a run writes its own directory, nothing else
            print(training.train(model, run, log=log))


def _language() -> Training:
    from xlt.training.language import LanguageRun, check_language_run, train_language

    return Training(LanguageRun, check_language_run, train_language)


def _task() -> Training:
    from xlt.training.task import TaskRun, check_file_task_run, train_task

    return Training(TaskRun, check_file_task_run, train_task)


def _lm_head() -> Training:
    from xlt.training.language import LMHeadRun, check_lm_head_run, train_lm_head

    return Training(LMHeadRun, check_lm_head_run, train_lm_head)


TRAIN_LANGUAGE = RunVerb("Train a language representation with a language-modelling objective.", "language", _language)
TRAIN_TASK = RunVerb("Train a task representation in a source language.", "task", _task)
# The LM head is trained on language-modelling text like a language representation: the language preset's values.
TRAIN_LM_HEAD = RunVerb("Train the shared masked-LM head of an encoder that ships none (e5).", "language", _lm_head)
TRAIN_VERBS: dict[str, RunVerb] = {
    "train-language": TRAIN_LANGUAGE,
    "train-task": TRAIN_TASK,
    "train-lm-head": TRAIN_LM_HEAD,
}


def parser_for(verb: str, argv: list[str]) -> ArgumentParser:
    """The parser of a ``train-*`` verb alone, as ``xlt VERB ARGV`` parses ARGV (with the preset's defaults)."""
    parser = TRAIN_VERBS[verb].parser(argv)
    parser.prog = f"xlt {verb}"
    return parser


class _PresetScan(argparse.Action):
    """Follows ``--preset`` and ``--config`` in command-line order, as the verb's parser will apply them."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any, option: str | None = None
    ) -> None:
        if self.dest == "config":
            data = _read_config(Path(value))
            if not is_preset(data):  # a preset file given to --config is that preset
                value = data.get("preset", namespace.preset) if isinstance(data, dict) else namespace.preset
        elif str(value).endswith((".yaml", ".yml")):
            _read_config(Path(value))  # a preset file is read bounded and alias-safe like any config
        namespace.preset = value


class _ConfigFile(ActionConfigFile):
    """``--config FILE``: a file of the run's options, or a preset file (whose values are the parser's defaults
    already, see ``preset_asked``: it then stands for ``--preset FILE``)."""

    def __call__(self, parser: Any, cfg: Any, values: Any, option_string: str | None = None) -> None:
        if isinstance(values, str) and is_preset(_read_config(Path(values))):
            cfg["preset"] = values
            return
        super().__call__(parser, cfg, values, option_string)


def preset_asked(argv: list[str]) -> str:
    """The preset a verb's arguments ask for, by ``--preset`` or in a ``--config`` file, the last one winning.
    It is needed before the verb's parser exists, since it sets that parser's defaults."""
    scan = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    scan.add_argument("--preset", action=_PresetScan, default=DEFAULT_PRESET)
    scan.add_argument("--config", action=_PresetScan)
    try:
        return scan.parse_known_args(argv)[0].preset
    except argparse.ArgumentError:  # e.g. --preset without a value: the verb's parser names the problem
        return DEFAULT_PRESET


def _read_config(path: Path) -> Any:
    """A ``--config`` file's data, read bounded and alias-safe before jsonargparse reads it."""
    from xlt.matrix.config import read_yaml

    return read_yaml(path)


def _init_parameters(run_class: type) -> list[str]:
    # The run dataclass's constructor arguments, as add_class_arguments declared them (fields come and go).
    return list(inspect.signature(run_class).parameters)


def _model(name: str, load: list[str]) -> Any:
    from xlt.formats.interop import import_rep
    from xlt.loading import load_model

    model = load_model(name)
    for directory in load:
        import_rep(model, Path(directory))
    return model
