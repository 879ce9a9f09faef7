"""One torch thread: tiny models gain nothing from intra-op threads (which slow a shared 2-core machine), and
in-process runs then compare bitwise with the one-thread subprocess runs of the resume, DDP and kill tests."""

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_torch_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
