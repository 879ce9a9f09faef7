"""A base model by the name a user gives it: the embedded e5, a Hugging Face id or a local directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from xlt.model import XLTModel

DTYPES = ("float32", "bfloat16", "float16")  # what ``load_model``'s dtype may be


def load_model(
    name: str,
    threads: int | None = None,
    device: str | None = None,
    *,
    path: str | Path | None = None,
    dtype: str | None = None,
) -> XLTModel:
    """``e5`` (the embedded multilingual-e5-small), a Hugging Face id or a local model directory.

    ``path``: where a local model named ``name`` lies (e.g. a config's relative path resolved against the
    config's directory); the model keeps ``name`` as its identity, so that representations trained on it
    still fit once the directory holding both is moved. ``dtype``: "float32", "bfloat16" or "float16" (default:
    the checkpoint's own)."""
    import torch

    from xlt.errors import XLTError

    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise XLTError(f"threads must be a positive integer, got {threads!r} (or leave it unset for torch's choice)")
    if device is not None:
        try:
            torch.device(device)
        except (RuntimeError, TypeError):
            raise XLTError(f"device {device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:N'") from None
    torch_dtype = None
    if dtype is not None:
        if dtype not in DTYPES:
            raise XLTError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        torch_dtype = getattr(torch, dtype)
    if threads:
        torch.set_num_threads(threads)
    if name == "e5":
        from xlt.e5 import E5_MODEL_ID, load_e5

        base, tokenizer = load_e5()
        model = XLTModel(base.to(torch_dtype) if torch_dtype is not None else base, tokenizer, name=E5_MODEL_ID)
    else:
        model = XLTModel.from_pretrained(path if path is not None else name, dtype=torch_dtype)
        if path is not None:
            model.fingerprint = dataclasses.replace(model.fingerprint, name=name)
    if device is None and torch.cuda.is_available():
        device = "cuda"
    return model.to(device) if device else model
