"""What ``xlt serve`` is told: the base model, the directories of representations it offers, where and how it
computes, its batching and cache limits, its request limits and an optional bearer token. Read from a YAML file
or options, every value checked before anything loads (one error naming the key and what it takes)."""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from xlt.errors import XLTError
from xlt.loading import DTYPES
from xlt.paths import short

Batching = Literal["routed", "per-plan", "none"]
TOKEN_ENV = "XLT_SERVE_TOKEN"


@dataclass
class ServeConfig:
    """``xlt serve``'s settings (the YAML keys and the command line's options).

    Args:
        reps: directories whose representations are offered: a matrix output directory (its configurations
            become servable by name) or any directory holding representations saved by xlt (``xlt_rep.json``
            and ``rep.safetensors``), searched recursively. Nothing outside them is ever read as a rep.
        model: the base model (``e5``, a Hugging Face id or a local directory); by default the model of the
            offered matrix.
        device, dtype: where and in which precision the base model computes (default: CUDA when visible, else
            CPU; the model's own dtype).
        host, port: where the server listens (loopback by default).
        token: a bearer token every endpoint but ``/health`` requires (default: ``$XLT_SERVE_TOKEN``, else none).
        batching: ``routed`` (requests for any plans in one batch, each row under its own plan), ``per-plan``
            (a batch holds one plan, as servers that multiplex per adapter batch) or ``none`` (one input at a time).
        max_batch_size, max_wait_ms: a batch is computed when it holds ``max_batch_size`` inputs or its first
            input has waited ``max_wait_ms``.
        max_inputs: inputs per request; max_input_chars: characters per text; max_length: tokens per input
            (default: the matrix's ``task_training.max_length``, else 256).
        max_new_tokens: the most tokens a generation may ask for (per input, ``max_new_tokens`` in the request).
        max_reps, max_memory_mb: the representation cache's limits (least recently used evicted first).
        threads: torch's CPU threads.
    """

    reps: list[str] = field(default_factory=list)
    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    batching: str = "routed"
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_inputs: int = 64
    max_input_chars: int = 4000
    max_length: int | None = None
    max_new_tokens: int = 64
    max_reps: int = 256
    max_memory_mb: float | None = None
    threads: int | None = None
    base_dir: Path = field(default_factory=Path.cwd, repr=False)  # where relative paths in a file start

    def __post_init__(self) -> None:
        if not isinstance(self.reps, list) or not self.reps or not all(isinstance(r, str) and r for r in self.reps):
            raise XLTError(
                f"reps: {short(self.reps)} is not a list of directories; give at least one directory of "
                "representations (e.g. a matrix output directory: `xlt serve xlt-demo`)"
            )
        for key in ("model", "device", "token"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise XLTError(f"{key}: {short(value)} is not a non-empty string (or leave it unset)")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise XLTError(f"dtype: {short(self.dtype)} is not one of {', '.join(DTYPES)} (or leave it unset)")
        if self.batching not in ("routed", "per-plan", "none"):
            raise XLTError(f"batching: {short(self.batching)} is not one of routed, per-plan, none")
        if not isinstance(self.host, str) or not self.host:
            raise XLTError(f"host: {short(self.host)} is not an interface address (e.g. 127.0.0.1 or 0.0.0.0)")
        _integer("port", self.port, 0, 65535)
        for key, low in (("max_batch_size", 1), ("max_inputs", 1), ("max_input_chars", 1), ("max_new_tokens", 1)):
            _integer(key, getattr(self, key), low)
        _integer("max_reps", self.max_reps, 1)
        for key in ("max_length", "threads"):
            if getattr(self, key) is not None:
                _integer(key, getattr(self, key), 1)
        _number("max_wait_ms", self.max_wait_ms, 0.0)
        if self.max_memory_mb is not None:
            _number("max_memory_mb", self.max_memory_mb, 0.0, strict=True)

    def directories(self) -> list[Path]:
        """The offered directories, resolved (relative ones from the config file's directory)."""
        return [(self.base_dir / Path(r).expanduser()).resolve() for r in self.reps]

    @classmethod
    def options(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "base_dir"]


def _integer(key: str, value: Any, low: int, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise XLTError(f"{key}: {short(value)} is not an integer {bound}")


def _number(key: str, value: Any, low: float, *, strict: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or (strict and value == low):
        raise XLTError(f"{key}: {short(value)} is not a finite number {'>' if strict else '>='} {low:g}")


def serve_config(data: dict[str, Any], base_dir: Path | None = None, where: str = "the serve config") -> ServeConfig:
    """A ``ServeConfig`` from a mapping (a YAML file's, or the command line's options); unknown keys refused."""
    if not isinstance(data, dict):
        raise XLTError(f"{where} must be a mapping of keys (reps:, model:, port:, ...), not {short(data)}")
    unknown = sorted(str(k) for k in data if k not in ServeConfig.options())
    if unknown:
        raise XLTError(f"{where}: {unknown[0][:60]}: unknown key (allowed: {', '.join(ServeConfig.options())})")
    if isinstance(data.get("reps"), str):
        data = {**data, "reps": [data["reps"]]}
    config = ServeConfig(**data)
    if base_dir is not None:
        config.base_dir = base_dir
    return config


EXTRA = ("fastapi", "uvicorn", "prometheus_client")  # what the serve extra installs


def missing_extra() -> list[str]:
    """The serve extra's modules that cannot be imported here."""
    lacking = []
    for module in EXTRA:
        try:
            importlib.import_module(module)
        except ImportError:
            lacking.append(module)
    return lacking
