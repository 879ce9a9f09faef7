"""How much of the hardware a run uses: the FLOPs a step computes, counted by torch's ``FlopCounterMode`` on
one step (the frozen base's forward and the backward it needs: activation gradients, no weight gradients, since
its weights do not require them), against the device's dense matrix-multiply peak for the dtype in use,
measured by a short probe once per process and device."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


@contextmanager
def counting() -> Iterator[Callable[[], int]]:
    """Count the FLOPs of the matrix multiplies, convolutions and attention run inside (forward and backward);
    yields a function that returns the count so far."""
    mode = FlopCounterMode(display=False)
    with mode:
        yield mode.get_total_flops


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@functools.cache
def _peak(device_type: str, index: int | None, dtype: torch.dtype, threads: int) -> float:
    device = torch.device(device_type, index) if index is not None else torch.device(device_type)
    g = torch.Generator(device=device).manual_seed(0)

    def timed(n: int, repeats: int) -> float:
        a = torch.randn(n, n, device=device, generator=g).to(dtype)
        b = torch.randn(n, n, device=device, generator=g).to(dtype)
        a @ b  # the first call pays for kernel selection and allocation
        best = float("inf")
        for _ in range(3):
            _sync(device)
            start = time.perf_counter()
            for _ in range(repeats):
                a @ b
            _sync(device)
            best = min(best, (time.perf_counter() - start) / repeats)
        return best

    with torch.inference_mode():
        # The matrices grow until one multiply takes a few tens of milliseconds: large enough to reach the
        # peak, small enough that a dtype the device only emulates (bf16 on a CPU without it) stays quick.
        n, largest = 256, 8192 if device.type == "cuda" else 2048
        while n < largest and timed(n, 1) < 0.02:
            n *= 2
        return 2 * n**3 / timed(n, 20 if device.type == "cuda" else 3)


def dense_peak(device: torch.device, dtype: torch.dtype) -> float:
    """The FLOP/s of a large square matrix multiply in ``dtype`` on ``device`` (best of three timings), with this
    process's CPU threads; measured once per process and (device, dtype, threads)."""
    threads = torch.get_num_threads() if device.type == "cpu" else 0
    return _peak(device.type, device.index, dtype, threads)


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


@dataclass(frozen=True)
class Utilisation:
    """A run's achieved compute against its device's measured peak."""

    flops_per_token: float
    tokens_per_second: float
    peak_flops: float
    dtype: str
    device: str

    @property
    def flops_per_second(self) -> float:
        return self.flops_per_token * self.tokens_per_second

    @property
    def fraction(self) -> float:
        return self.flops_per_second / self.peak_flops if self.peak_flops else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "flops_per_token": self.flops_per_token,
            "flops_per_second": self.flops_per_second,
            "peak_flops": self.peak_flops,
            "fraction_of_peak": self.fraction,
            "dtype": self.dtype,
            "device": self.device,
        }

    def line(self) -> str:
        return (
            f"{self.tokens_per_second:.0f} tokens/s x {self.flops_per_token / 1e9:.3g} GFLOP/token = "
            f"{self.flops_per_second / 1e9:.3g} GFLOP/s, {100 * self.fraction:.1f}% of {self.device}'s measured "
            f"{self.dtype} peak ({self.peak_flops / 1e9:.3g} GFLOP/s)"
        )


def utilisation(flops_per_token: float, tokens_per_second: float, device: torch.device, precision: str) -> Utilisation:
    """``Utilisation`` of a run computing in ``precision`` ("fp32" or "bf16") on ``device``."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    name = "bf16" if precision == "bf16" else "fp32"
    return Utilisation(flops_per_token, tokens_per_second, dense_peak(device, dtype), name, device_label(device))
