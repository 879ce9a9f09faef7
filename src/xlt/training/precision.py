"""Which precision a run computes in: bf16 autocast where the device multiplies bf16 natively, fp32 elsewhere.

``precision: auto`` (the default) is resolved once, where the settings are read, to "bf16" on a CUDA GPU with
bf16 tensor cores (compute capability 8.0 and up) or a CPU with bf16 matrix instructions (x86 AVX512-BF16 or
AMX-BF16, Arm's BF16 extension), and to "fp32" everywhere else: a CPU that only emulates bf16 multiplies it
tens of times slower than fp32. Runs record the resolved value, so a run directory says what it computed in
and one made on an fp32 machine stays valid there. Weights, losses and optimiser states stay fp32 under bf16
autocast; ``precision: fp32`` reproduces a run exactly.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["fp32", "bf16"]
CHOICES = ("auto", "fp32", "bf16")

# CPU feature flags (Linux /proc/cpuinfo) that mean native bf16 matrix arithmetic.
_CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):  # x86 and Arm spell the list differently
            flags.update(value.split())
    return frozenset(flags)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware (not by emulation)."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        major, _ = torch.cuda.get_device_capability(device)
        return major >= 8
    if device.type == "cpu":
        return bool(_cpu_flags() & _CPU_BF16_FLAGS)
    return False


def training_device() -> torch.device:
    """Where a run trains: the GPU when one is visible (as Accelerate chooses), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve(precision: str, device: torch.device | str | None = None) -> Precision:
    """``precision`` with "auto" made concrete for ``device`` (default: the training device)."""
    if precision != "auto":
        return "bf16" if precision == "bf16" else "fp32"
    return "bf16" if native_bf16(device if device is not None else training_device()) else "fp32"


@contextlib.contextmanager
def autocast(precision: str, device: torch.device | str) -> Iterator[None]:
    """bf16 autocast on ``device`` for a resolved "bf16"; nothing for "fp32"."""
    device = torch.device(device)
    if precision != "bf16":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield
