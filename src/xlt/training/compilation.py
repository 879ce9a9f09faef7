"""``compile: true``: the frozen base compiled with ``torch.compile``, once per input shape, for the training steps.

The representations' hooks are traced into the compiled graph with the base (a run's route is Python state that
stays the same from step to step, so it costs guards, not recompilations). Only the training steps run compiled:
the first micro-batch of a process runs eagerly (its FLOPs are counted on the eager ops), and evaluation stays
eager, as its inputs take any length. Shapes are static: task batches are padded to their length bucket's bound
(``xlt.training.task``), so every bucket compiles once; other inputs (language-modelling rows shorter than a
segment, alignment pairs, an encoder-decoder's target lengths) compile once per new shape, up to
``RECOMPILE_LIMIT``, and run eagerly beyond it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn

from xlt.errors import XLTError
from xlt.training.precision import training_device

# torch.compile's backend; its default (inductor) generates Triton kernels on a GPU and C++ on a CPU
BACKEND = "inductor"
# Shapes one run may compile per module: every length bucket, times the few target lengths of an
# encoder-decoder's task labels, with room to spare (dynamo's own default is 8).
RECOMPILE_LIMIT = 64


def check_compiler(device: torch.device) -> None:
    """Refuse ``compile: true`` where inductor cannot build its kernels: a CPU without the C++ compiler inductor
    would call (``$CXX``, else g++)."""
    if BACKEND != "inductor" or device.type != "cpu":
        return
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        found = get_cpp_compiler()
        # older torch returns $CXX or a default name without looking for it
        reason = None if shutil.which(found) else f"{found!r} is not on PATH"
    except Exception as exc:  # inductor's own check: a missing or unusable compiler, in its words
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if reason is not None:
        raise XLTError(
            f"compile: true needs a C++ compiler on a CPU ({reason}); install g++ or set $CXX, or set compile: false"
        )


def check_compile(enabled: bool) -> None:
    """``check_compiler`` for the training device, when ``compile: true``: run by every run's checks in the
    process that trains, before it claims a directory or loads data."""
    if enabled:
        check_compiler(training_device())


def compiled_modules(model: nn.Module) -> list[nn.Module]:
    """What ``compile: true`` compiles: an ``XLTModel``'s base, as its family's host calls it; another module
    (a probe, an LM head being fitted) whole."""
    host, base = getattr(model, "host", None), getattr(model, "base", None)
    if host is not None and base is not None:
        return list(host.compiled_modules(base))
    return [model]


def _limits() -> dict[str, int]:
    # recompile_limit was cache_size_limit before torch 2.7; the accumulated limit is process-wide, and a matrix
    # trains many runs in one process
    names = torch._dynamo.config.get_config_copy()
    limit = "recompile_limit" if "recompile_limit" in names else "cache_size_limit"
    limits = {limit: RECOMPILE_LIMIT}
    if "accumulated_recompile_limit" in names:
        limits["accumulated_recompile_limit"] = 1 << 20
    elif "accumulated_cache_size_limit" in names:
        limits["accumulated_cache_size_limit"] = 1 << 20
    return limits


class Compilation:
    """The compiled forwards of ``modules``, switched on inside :meth:`active`; built once per run, so every step
    reuses what earlier steps compiled, and :meth:`release`\\ d at its end."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.modules = modules
        self._limits = _limits()
        self._calls: list[Callable[..., Any]] = [
            torch.compile(module._call_impl, backend=BACKEND, dynamic=False) for module in modules
        ]

    @contextmanager
    def active(self) -> Iterator[None]:
        # nn.Module.compile() sets a module's _compiled_call_impl for good; setting it here and restoring what it
        # was keeps the module as its owner left it outside the training steps (evaluation, generation, the
        # caller's own use afterwards).
        with ExitStack() as stack:
            stack.enter_context(torch._dynamo.config.patch(**self._limits))
            if BACKEND == "inductor":
                # dropout draws from torch's generator, as the eager ops do, not from inductor's own
                import torch._inductor.config as inductor_config

                stack.enter_context(inductor_config.patch(fallback_random=True))
            previous = [module._compiled_call_impl for module in self.modules]
            for module, call in zip(self.modules, self._calls, strict=True):
                module._compiled_call_impl = call
            try:
                yield
            finally:
                for module, before in zip(self.modules, previous, strict=True):
                    module._compiled_call_impl = before

    def release(self) -> None:
        """Drop what this run compiled, so that every run starts with the whole ``RECOMPILE_LIMIT`` (a matrix
        trains many in one process). Dynamo keeps its graphs on the code of the first frame it traces, which is
        each module's ``forward`` (nn.Module's call machinery is torch's own, which it steps through)."""
        # (A graph break would leave the code that resumes after it compiled too; no family's base has one.)
        from torch._dynamo.eval_frame import reset_code

        for module in self.modules:
            reset_code(type(module).forward.__code__)
