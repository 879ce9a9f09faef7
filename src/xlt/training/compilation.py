"""``compile: true``: the frozen base compiled with ``torch.compile``, once per input shape, for the training steps.

The representations' hooks are traced into the compiled graph with the base (their route is Python state that
stays the same through a run, so it costs guards, not recompilations). Only the training steps run compiled:
the first micro-batch runs eagerly (its FLOPs are counted on the eager ops) and evaluation stays eager, as its
inputs take lengths no bucket bounds. Shapes are static: every length bucket compiles once (batches are padded
to the bucket's bound, ``xlt.training.buckets``), which is what a GPU's kernels and a CPU's generated code are
specialised for.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from xlt.errors import XLTError

# torch.compile's backend; its default (inductor) generates Triton kernels on a GPU and C++ on a CPU
BACKEND = "inductor"
# shapes compiled per module before the rest run eagerly: every length bucket (for each of the few target
# lengths an encoder-decoder's task labels take) with room to spare; dynamo's own default is 8
RECOMPILE_LIMIT = 64


def check_compiler(device: torch.device) -> None:
    """Refuse ``compile: true`` where inductor cannot build its kernels: a CPU without a C++ compiler."""
    if BACKEND != "inductor" or device.type != "cpu":
        return
    if not any(shutil.which(name) for name in (os.environ.get("CXX", ""), "c++", "g++", "clang++") if name):
        raise XLTError("compile: true needs a C++ compiler on a CPU (install g++ or clang++, or set compile: false)")


def compiled_modules(model: nn.Module) -> list[nn.Module]:
    """What ``compile: true`` compiles: an ``XLTModel``'s base, as its family's host calls it; another module
    (a probe, an LM head being fitted) whole."""
    host, base = getattr(model, "host", None), getattr(model, "base", None)
    if host is not None and base is not None:
        return list(host.compiled_modules(base))
    return [model]


class Compilation:
    """Switches the compiled forwards of ``modules`` on inside :meth:`active`; built once per run, so every step
    reuses what earlier steps compiled."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.modules = modules
        self._calls: list[Callable[..., Any]] = [
            torch.compile(module._call_impl, backend=BACKEND, dynamic=False) for module in modules
        ]

    @contextmanager
    def active(self) -> Iterator[None]:
        # nn.Module.compile() sets the module's _compiled_call_impl for good; setting and clearing it here keeps
        # the module eager outside training steps (evaluation, generation, the caller's own use afterwards).
        with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
            for module, call in zip(self.modules, self._calls, strict=True):
                module._compiled_call_impl = call
            try:
                yield
            finally:
                for module in self.modules:
                    module._compiled_call_impl = None
